package route

import (
	"slices"
	"strings"
)

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
// (join_room, leave_room): an audience is an authorization, so a viewer
// must not listen in on role:admin, nor on any room a routing file sends
// rows to.
type ReservedRooms struct {
	prefixes []string
	names    []string
}

// ReservedRooms are the rooms walcast fills itself or sends rows to: the
// token rooms (user:, role:, member:), every fixed audience room of the
// routing file, and every room starting like one of its audience
// templates ("family:" for "family:{family_id}"). validate refuses a
// template without a fixed start, which could not be reserved.
func (c Config) ReservedRooms() ReservedRooms {
	r := ReservedRooms{prefixes: []string{UserRoomPrefix, RoleRoomPrefix, MemberRoomPrefix}}
	for _, name := range sortedKeys(c.Tables) {
		t := c.Tables[name]
		if t == nil {
			continue
		}
		for _, room := range t.Audience {
			tpl, err := parseRoomTemplate(room)
			if err != nil || room == AudienceAll {
				continue
			}
			switch {
			case tpl.static():
				if !r.Contains(room) {
					r.names = append(r.names, room)
				}
			case tpl.prefix() != "" && !r.Contains(tpl.prefix()):
				r.prefixes = append(r.prefixes, tpl.prefix())
			}
		}
	}
	return r
}

// Contains reports whether room is reserved.
func (r ReservedRooms) Contains(room string) bool {
	for _, p := range r.prefixes {
		if strings.HasPrefix(room, p) {
			return true
		}
	}
	return slices.Contains(r.names, room)
}

// ResyncNotice is the payload of the notice that tells a table's clients
// to refetch it (TRUNCATE, a flood of rows, a recreated slot): it carries
// no row, so every socket may hear it.
const ResyncNotice = `{"type":"RESYNC"}`

// IsResyncNotice reports whether an event's payload is the RESYNC notice.
func IsResyncNotice(payload []byte) bool { return string(payload) == ResyncNotice }
