package route

import "strings"

// The room vocabulary. walcast puts every socket in rooms named after its
// token: user:{id}, role:{role} and, when the token has one,
// member:{memberId}. Audiences in the routing file, revocations and the
// gateway's join rules all spell these rooms through the names below.
const (
	UserRoomPrefix   = "user:"
	RoleRoomPrefix   = "role:"
	MemberRoomPrefix = "member:"
)

// UserRoom is the room of every socket of user id.
func UserRoom(id string) string { return UserRoomPrefix + id }

// RoleRoom is the room of every socket whose token carries role.
func RoleRoom(role string) string { return RoleRoomPrefix + role }

// MemberRoom is the room of every socket whose token carries member id.
func MemberRoom(id string) string { return MemberRoomPrefix + id }

// TokenRooms are the rooms a token's sockets are put in: its user's room,
// its role's room when it has a role and its member's room when it has a
// member id.
func TokenRooms(userID, role, memberID string) []string {
	rooms := []string{UserRoom(userID)}
	if role != "" {
		rooms = append(rooms, RoleRoom(role))
	}
	if memberID != "" {
		rooms = append(rooms, MemberRoom(memberID))
	}
	return rooms
}

// ReservedRooms says which rooms a client may not join or leave by itself
// (join_room, leave_room), so that a viewer cannot listen in on role:admin.
type ReservedRooms struct {
	prefixes []string
}

// ReservedRooms are the rooms walcast fills itself: the token rooms.
func (c Config) ReservedRooms() ReservedRooms {
	return ReservedRooms{prefixes: []string{UserRoomPrefix, RoleRoomPrefix, MemberRoomPrefix}}
}

// Contains reports whether room is reserved.
func (r ReservedRooms) Contains(room string) bool {
	for _, p := range r.prefixes {
		if strings.HasPrefix(room, p) {
			return true
		}
	}
	return false
}

// ResyncNotice is the payload of the notice that tells a table's clients
// to refetch it (TRUNCATE, a flood of rows, a recreated slot): it carries
// no row, so every socket may hear it.
const ResyncNotice = `{"type":"RESYNC"}`

// IsResyncNotice reports whether an event's payload is the RESYNC notice.
func IsResyncNotice(payload []byte) bool { return string(payload) == ResyncNotice }
