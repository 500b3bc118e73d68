package main

import (
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
)

// TestAudience: each socket gets what its token may see and nothing else;
// the original sent every row to every socket.
func TestAudience(t *testing.T) {
	dsn := newDB(t)
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name, created_at) VALUES
		('m-ann', 'Ann', 'Lee', '2026-01-01T00:00:00Z'), ('m-bob', 'Bob', 'Ray', '2026-01-01T00:00:00Z'), ('m-carl', 'Carl', 'Orr', '2026-01-01T00:00:00Z')`)
	in := startWalcast(t, dsn, serveOpts{})
	const admin, ann, carl, bob = 0, 1, 2, 3
	c := connect(t, in,
		mint(t, 9001, "adm", "admin", nil, time.Hour),
		mint(t, 9002, "ann", "viewer", "m-ann", time.Hour),
		mint(t, 9003, "carl", "viewer", "m-carl", time.Hour),
		mint(t, 9004, "bob", "viewer", "m-bob", time.Hour),
	)

	// A viewer may not put itself into a reserved room, nor into another
	// socket's own room; other rooms are fine, with or without an ack.
	for _, tc := range []struct {
		room any
		want string
	}{
		{"role:admin", `{"success":false,"error":"reserved room"}`},
		{"role:super_admin", `{"success":false,"error":"reserved room"}`},
		{"member:m-ann", `{"success":false,"error":"reserved room"}`},
		{"user:9001", `{"success":false,"error":"reserved room"}`},
		{"", `{"success":false,"error":"invalid room"}`},
		{42, `{"success":false,"error":"invalid room"}`},
		{"dashboard", `{"success":true}`},
	} {
		l := c.EmitWithAck(carl, 5*time.Second, "join_room", tc.room)
		if l.Error != "" || len(l.Args) != 1 || !jsonEqual(t, l.Args[0], tc.want) {
			t.Errorf("join_room(%v) acked %s, want %s", tc.room, l.Raw, tc.want)
		}
	}
	otherID := c.WaitFor(time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == admin }).ID
	if l := c.EmitWithAck(carl, 5*time.Second, "join_room", otherID); len(l.Args) != 1 || !jsonEqual(t, l.Args[0], `{"success":false,"error":"reserved room"}`) {
		t.Errorf("join_room(another socket's id) acked %s, want reserved room", l.Raw)
	}
	c.Emit(carl, "join_room", "role:admin") // the contract's form: no ack callback

	pgtest.Exec(t, dsn,
		`INSERT INTO donations (member_id, amount, fund, donation_date) VALUES ('m-bob', 10, 'Tithes', '2026-02-01T00:00:00Z')`, // 1
		`INSERT INTO donations (member_id, amount, fund, donation_date) VALUES ('m-ann', 20, 'Tithes', '2026-02-01T00:00:00Z')`, // 2
		`UPDATE donations SET amount = 25 WHERE id = 2`,
		`UPDATE donations SET amount = 11 WHERE id = 1`,
		`INSERT INTO users (username, password_hash, role, created_at) VALUES ('zed', 'x', 'viewer', '2026-01-01T00:00:00Z')`,
		`UPDATE members SET city = 'Ogden' WHERE id = 'm-bob'`,
		`DELETE FROM donations WHERE id = 2`,
		`INSERT INTO donations (member_id, amount, fund, donation_date) VALUES ('m-ann', 30, 'Building', '2026-02-02T00:00:00Z')`, // 3
		`UPDATE donations SET member_id = 'm-bob' WHERE id = 3`,                                                                   // moved: Ann must hear it is gone
	)
	barrier(t, dsn, c, admin, ann, carl, bob)

	d := func(typ, id, member, amount, fund, date string) [2]string {
		return [2]string{"donation:update", `{"type":"` + typ + `","data":{"id":` + id + `,"member_id":"` + member + `","amount":"` + amount + `","fund":"` + fund + `","notes":null,"entered_by":null,"donation_date":"` + date + `T00:00:00.000Z"}}`}
	}
	del := func(id string) [2]string {
		return [2]string{"donation:update", `{"type":"DELETE","id":` + id + `,"data":{"id":` + id + `}}`}
	}
	bobMember := [2]string{"member:update", `{"type":"UPDATE","data":{"id":"m-bob","first_name":"Bob","last_name":"Ray","email":null,"telephone":null,"address":null,"city":"Ogden","state":null,"zip":null,"family_id":null,"skills":[],"interests":[],"joined_at":null,"created_at":"2026-01-01T00:00:00.000Z"}}`}
	zed := [2]string{"user:update", `{"type":"CREATE","data":{"id":1,"username":"zed","role":"viewer","email":null,"created_at":"2026-01-01T00:00:00.000Z","must_change_password":false,"member_id":null}}`}

	wantPayloads(t, "admin", withoutBarriers(events(c, admin, "")), [][2]string{
		d("CREATE", "1", "m-bob", "10.00", "Tithes", "2026-02-01"),
		d("CREATE", "2", "m-ann", "20.00", "Tithes", "2026-02-01"),
		d("UPDATE", "2", "m-ann", "25.00", "Tithes", "2026-02-01"),
		d("UPDATE", "1", "m-bob", "11.00", "Tithes", "2026-02-01"),
		zed,
		bobMember,
		del("2"),
		d("CREATE", "3", "m-ann", "30.00", "Building", "2026-02-02"),
		d("UPDATE", "3", "m-bob", "30.00", "Building", "2026-02-02"),
	})
	wantPayloads(t, "viewer ann", withoutBarriers(events(c, ann, "")), [][2]string{
		d("CREATE", "2", "m-ann", "20.00", "Tithes", "2026-02-01"),
		d("UPDATE", "2", "m-ann", "25.00", "Tithes", "2026-02-01"),
		del("2"),
		d("CREATE", "3", "m-ann", "30.00", "Building", "2026-02-02"),
		del("3"),
	})
	wantPayloads(t, "viewer bob", withoutBarriers(events(c, bob, "")), [][2]string{
		d("CREATE", "1", "m-bob", "10.00", "Tithes", "2026-02-01"),
		d("UPDATE", "1", "m-bob", "11.00", "Tithes", "2026-02-01"),
		bobMember,
		d("UPDATE", "3", "m-bob", "30.00", "Building", "2026-02-02"),
	})
	wantPayloads(t, "viewer carl, after join_room(role:admin)", withoutBarriers(events(c, carl, "")), nil)
}
