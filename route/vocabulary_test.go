package route

import (
	"slices"
	"testing"

	"github.com/walcast/walcast/cdc"
)

func TestTokenRooms(t *testing.T) {
	cases := []struct {
		id, role, member string
		want             []string
	}{
		{"7", "admin", "", []string{"user:7", "role:admin"}},
		{"7", "viewer", "m-1", []string{"user:7", "role:viewer", "member:m-1"}},
		{"7", "", "", []string{"user:7"}},
	}
	for _, tc := range cases {
		if got := TokenRooms(tc.id, tc.role, tc.member); !slices.Equal(got, tc.want) {
			t.Errorf("TokenRooms(%q, %q, %q) = %v, want %v", tc.id, tc.role, tc.member, got, tc.want)
		}
	}
}

func TestReservedRooms(t *testing.T) {
	reserved := GraceGiver().ReservedRooms()
	for room, want := range map[string]bool{
		"user:7": true, "role:admin": true, "member:m-1": true, "role:": true,
		"donations-page": false, "users": false, "Role:admin": false, "": false,
	} {
		if got := reserved.Contains(room); got != want {
			t.Errorf("Contains(%q) = %v, want %v", room, got, want)
		}
	}
}

// TestReservedRoomsOfAudiences: every room a routing file sends rows to is
// reserved, fixed names exactly and templates by their fixed start.
func TestReservedRoomsOfAudiences(t *testing.T) {
	cfg, err := Parse([]byte(`
tables:
  members:
    event: member:update
    audience: [staff, "family:{family_id}", "org:{org}:team:{team}"]
  notes:
    event: note:update
    audience: [all]
`))
	if err != nil {
		t.Fatal(err)
	}
	reserved := cfg.ReservedRooms()
	for room, want := range map[string]bool{
		"staff": true, "family:f-1": true, "family:": true, "org:1:team:2": true, "org:x": true,
		"user:7": true, "role:admin": true, "member:m-1": true,
		"staffroom": false, "Staff": false, "families": false, "all": false, "dashboard": false,
	} {
		if got := reserved.Contains(room); got != want {
			t.Errorf("Contains(%q) = %v, want %v", room, got, want)
		}
	}
}

func TestResyncNotice(t *testing.T) {
	b := run(newRouter(t, GraceGiver()), &cdc.Change{Op: cdc.OpTruncate, Truncated: []cdc.Table{{Schema: "public", Name: "members"}}})
	if len(b.Emits) != 1 || !IsResyncNotice(b.Emits[0].Payload) {
		t.Fatalf("TRUNCATE sent %s, want the RESYNC notice", dump(b.Emits))
	}
	if IsResyncNotice([]byte(`{"type":"UPDATE"}`)) {
		t.Error("an UPDATE taken for the RESYNC notice")
	}
}
