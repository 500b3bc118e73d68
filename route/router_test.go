package route

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc"
)

// col builds a column the way cdc renders it: JSON token plus text.
func col(name, jsonTok string) cdc.Column {
	c := cdc.Column{Name: name, JSON: []byte(jsonTok)}
	if jsonTok == "null" {
		c.Null = true
		return c
	}
	var s string
	if json.Unmarshal([]byte(jsonTok), &s) == nil {
		c.Text = []byte(s)
	} else {
		c.Text = []byte(jsonTok)
	}
	return c
}

func change(table string, op cdc.Op, newRow, oldRow []cdc.Column) *cdc.Change {
	schema, name, _ := strings.Cut(table, ".")
	return &cdc.Change{Table: cdc.Table{Schema: schema, Name: name}, Op: op, New: newRow, Old: oldRow, OldIsFull: op != cdc.OpInsert && len(oldRow) > 1}
}

func donation(id, member, amount string) []cdc.Column {
	return []cdc.Column{col("id", id), col("member_id", member), col("amount", amount), col("fund", `"Tithes"`), col("notes", "null"), col("entered_by", `"superadmin"`), col("donation_date", `"2026-01-15T00:00:00.000Z"`)}
}

func newRouter(t *testing.T, cfg Config) *Router {
	t.Helper()
	r, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(r *Router, changes ...*cdc.Change) Batch {
	r.Begin(cdc.TxInfo{})
	for _, c := range changes {
		r.Change(c)
	}
	return r.Commit(cdc.TxInfo{})
}

var staff = []string{"role:super_admin", "role:admin", "role:manager", "role:data_entry"}

func TestGraceGiverEvents(t *testing.T) {
	userRow := []cdc.Column{col("id", "3"), col("username", `"bob"`), col("password_hash", `"$2b$secret"`), col("email", `"b@x.org"`), col("role", `"viewer"`), col("member_id", `"m1"`), col("must_change_password", "false"), col("password_history", `["old"]`), col("failed_login_attempts", "0"), col("locked_until", "null"), col("last_login_at", "null"), col("created_at", `"2026-01-01T00:00:00.000Z"`)}
	cases := []struct {
		name   string
		change *cdc.Change
		want   []Emit
	}{
		{"member insert", change("public.members", cdc.OpInsert, []cdc.Column{col("id", `"m1"`), col("first_name", `"Ann"`), col("skills", `["a","b"]`)}, nil),
			[]Emit{{Event: "member:update", Rooms: append(slices.Clone(staff), "member:m1"), Payload: []byte(`{"type":"CREATE","data":{"id":"m1","first_name":"Ann","skills":["a","b"]}}`)}}},
		{"member delete, key only", change("public.members", cdc.OpDelete, nil, []cdc.Column{col("id", `"m1"`)}),
			[]Emit{{Event: "member:update", Rooms: append(slices.Clone(staff), "member:m1"), Payload: []byte(`{"type":"DELETE","id":"m1","data":{"id":"m1"}}`)}}},
		{"donation insert", change("public.donations", cdc.OpInsert, donation("1", `"m1"`, `"100.00"`), nil),
			[]Emit{{Event: "donation:update", Rooms: append(slices.Clone(staff), "member:m1"), Payload: []byte(`{"type":"CREATE","data":{"id":1,"member_id":"m1","amount":"100.00","fund":"Tithes","notes":null,"entered_by":"superadmin","donation_date":"2026-01-15T00:00:00.000Z"}}`)}}},
		{"guest donation has no member room", change("public.donations", cdc.OpInsert, donation("2", "null", `"5.00"`), nil),
			[]Emit{{Event: "donation:update", Rooms: staff, Payload: []byte(`{"type":"CREATE","data":{"id":2,"member_id":null,"amount":"5.00","fund":"Tithes","notes":null,"entered_by":"superadmin","donation_date":"2026-01-15T00:00:00.000Z"}}`)}}},
		{"donation delete, full old row, numeric id", change("public.donations", cdc.OpDelete, nil, donation("1", `"m1"`, `"100.00"`)),
			[]Emit{{Event: "donation:update", Rooms: append(slices.Clone(staff), "member:m1"), Payload: []byte(`{"type":"DELETE","id":1,"data":{"id":1}}`)}}},
		{"user insert: allow-list only", change("public.users", cdc.OpInsert, userRow, nil),
			[]Emit{{Event: "user:update", Rooms: []string{"role:super_admin", "role:admin", "user:3"}, Payload: []byte(`{"type":"CREATE","data":{"id":3,"username":"bob","email":"b@x.org","role":"viewer","member_id":"m1","must_change_password":false,"created_at":"2026-01-01T00:00:00.000Z"}}`)}}},
		{"settings update: flat, renamed", change("public.settings", cdc.OpUpdate, []cdc.Column{col("singleton_id", "true"), col("name", `"Grace"`), col("address", `"1 Main"`), col("phone", "null"), col("email", `"g@x.org"`), col("tax_id", `"12-3"`), col("updated_at", `"2026-01-01T00:00:00.000Z"`)}, nil),
			[]Emit{{Event: "settings:update", All: true, Payload: []byte(`{"name":"Grace","address":"1 Main","phone":null,"email":"g@x.org","taxId":"12-3"}`)}}},
		{"settings delete: nothing", change("public.settings", cdc.OpDelete, nil, []cdc.Column{col("singleton_id", "true")}), nil},
		{"unrouted table: nothing", change("public.export_logs", cdc.OpInsert, []cdc.Column{col("id", "1")}, nil), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := run(newRouter(t, GraceGiver()), tc.change)
			if len(b.Emits) != len(tc.want) {
				t.Fatalf("emits = %s", dump(b.Emits))
			}
			for i, want := range tc.want {
				got := b.Emits[i]
				if got.Event != want.Event || got.All != want.All || !reflect.DeepEqual(got.Rooms, want.Rooms) || string(got.Payload) != string(want.Payload) {
					t.Errorf("emit %d:\n got %s\nwant %s", i, dump([]Emit{got}), dump([]Emit{want}))
				}
				if !json.Valid(got.Payload) {
					t.Errorf("payload is not JSON: %s", got.Payload)
				}
			}
		})
	}
}

func dump(es []Emit) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "{%s all=%v rooms=%v except=%v %s} ", e.Event, e.All, e.Rooms, e.Except, e.Payload)
	}
	return b.String()
}

func TestDonationMovedToAnotherMember(t *testing.T) {
	r := newRouter(t, GraceGiver())
	b := run(r, change("public.donations", cdc.OpUpdate, donation("1", `"m2"`, `"100.00"`), donation("1", `"m1"`, `"100.00"`)))
	if len(b.Emits) != 2 {
		t.Fatalf("emits = %s", dump(b.Emits))
	}
	upd, del := b.Emits[0], b.Emits[1]
	if !slices.Contains(upd.Rooms, "member:m2") || slices.Contains(upd.Rooms, "member:m1") || !strings.Contains(string(upd.Payload), `"type":"UPDATE"`) {
		t.Errorf("update = %s", dump([]Emit{upd}))
	}
	if !reflect.DeepEqual(del.Rooms, []string{"member:m1"}) || !reflect.DeepEqual(del.Except, upd.Rooms) || string(del.Payload) != `{"type":"DELETE","id":1,"data":{"id":1}}` {
		t.Errorf("delete = %s", dump([]Emit{del}))
	}
}

func TestUnchangedProjectionIsNotSent(t *testing.T) {
	r := newRouter(t, GraceGiver())
	user := func(lastLogin string) []cdc.Column {
		return []cdc.Column{col("id", "3"), col("username", `"bob"`), col("role", `"viewer"`), col("email", "null"), col("member_id", "null"), col("must_change_password", "false"), col("created_at", "null"), col("last_login_at", lastLogin)}
	}
	if b := run(r, change("public.users", cdc.OpInsert, user("null"), nil)); len(b.Emits) != 1 {
		t.Fatalf("insert: %s", dump(b.Emits))
	}
	if b := run(r, change("public.users", cdc.OpUpdate, user(`"2026-02-01T00:00:00.000Z"`), nil)); len(b.Emits) != 0 {
		t.Fatalf("login-only update was sent: %s", dump(b.Emits))
	}
	changed := user("null")
	changed[2] = col("role", `"admin"`)
	if b := run(r, change("public.users", cdc.OpUpdate, changed, nil)); len(b.Emits) != 1 {
		t.Fatalf("role change not sent: %s", dump(b.Emits))
	}
	// After a delete the key is forgotten: re-inserting the same row is sent.
	run(r, change("public.users", cdc.OpDelete, nil, []cdc.Column{col("id", "3")}))
	if b := run(r, change("public.users", cdc.OpUpdate, changed, nil)); len(b.Emits) != 1 {
		t.Fatalf("update after delete not sent: %s", dump(b.Emits))
	}
}

func TestRecentPayloadsIsBounded(t *testing.T) {
	rp := newRecentPayloads(3)
	for i := range 10 {
		rp.remember(fmt.Sprint(i), []byte("p"))
	}
	if len(rp.byKey) != 3 || !rp.same("9", []byte("p")) || rp.same("0", []byte("p")) {
		t.Fatalf("byKey = %v", rp.byKey)
	}
}

func TestFloodAndTruncateBecomeOneResync(t *testing.T) {
	cfg := GraceGiver()
	cfg.FloodRows = 10
	r := newRouter(t, cfg)
	var changes []*cdc.Change
	changes = append(changes, change("public.members", cdc.OpInsert, []cdc.Column{col("id", `"a"`)}, nil))
	for i := range 11 {
		changes = append(changes, change("public.donations", cdc.OpUpdate, donation(fmt.Sprint(i), `"m1"`, `"1.00"`), nil))
	}
	changes = append(changes, change("public.members", cdc.OpInsert, []cdc.Column{col("id", `"b"`)}, nil))
	b := run(r, changes...)
	var got []string
	for _, e := range b.Emits {
		got = append(got, e.Event+" "+string(e.Payload[:min(len(e.Payload), 17)]))
	}
	want := []string{`member:update {"type":"CREATE",`, `donation:update {"type":"RESYNC"}`, `member:update {"type":"CREATE",`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("emits = %q", got)
	}
	if !b.Emits[1].All {
		t.Error("RESYNC must reach every socket")
	}
	if b.Emits[0].Resync != "" || b.Emits[1].Resync != ResyncBulk {
		t.Errorf("resync reasons %q, %q: want none for a row event, %q for the flood", b.Emits[0].Resync, b.Emits[1].Resync, ResyncBulk)
	}
	// Exactly at the threshold is not a flood.
	if b := run(r, changes[1:11]...); len(b.Emits) != 10 {
		t.Fatalf("10 rows with flood_rows 10: %d emits", len(b.Emits))
	}
	tr := &cdc.Change{Op: cdc.OpTruncate, Truncated: []cdc.Table{{Schema: "public", Name: "members"}, {Schema: "public", Name: "settings"}}}
	b = run(r, tr)
	if len(b.Emits) != 1 || b.Emits[0].Event != "member:update" || string(b.Emits[0].Payload) != `{"type":"RESYNC"}` || b.Emits[0].Resync != ResyncTruncate {
		t.Fatalf("truncate: %s (reason %q)", dump(b.Emits), b.Emits[0].Resync)
	}
}

func TestSlotRecreatedResyncsEveryEnvelopeTable(t *testing.T) {
	b := run(newRouter(t, GraceGiver()), &cdc.Change{Op: cdc.OpResync})
	var events []string
	for _, e := range b.Emits {
		events = append(events, e.Event)
		if e.Resync != ResyncSlotRecreated {
			t.Errorf("%s: resync reason %q, want %q", e.Event, e.Resync, ResyncSlotRecreated)
		}
	}
	if !reflect.DeepEqual(events, []string{"donation:update", "member:update", "user:update"}) {
		t.Fatalf("events = %v", events)
	}
}

func TestUserChanges(t *testing.T) {
	// The built-in profile compares role and member id; GraceGiver's
	// locked_until is a login throttle anyone can set, so it is not read.
	r := newRouter(t, GraceGiver())
	b := run(r,
		change("public.users", cdc.OpUpdate, []cdc.Column{col("id", "3"), col("role", `"viewer"`), col("member_id", `"m-3"`), col("locked_until", `"2099-01-01T00:00:00.000Z"`)}, nil),
		change("public.users", cdc.OpUpdate, []cdc.Column{col("id", "5"), col("role", `"admin"`), col("member_id", "null")}, nil),
		change("public.users", cdc.OpDelete, nil, []cdc.Column{col("id", "4")}),
	)
	if len(b.Users) != 3 {
		t.Fatalf("users = %+v", b.Users)
	}
	want := []UserChange{
		{ID: "3", Role: "viewer", RoleKnown: true, MemberID: "m-3", MemberIDKnown: true},
		{ID: "5", Role: "admin", RoleKnown: true, MemberID: "", MemberIDKnown: true},
		{ID: "4", Deleted: true},
	}
	if !reflect.DeepEqual(b.Users, want) {
		t.Errorf("user changes =\n%+v\nwant\n%+v", b.Users, want)
	}

	// A routing file may name an administrator's lock-out column.
	cfg := GraceGiver()
	cfg.Users.LockedUntilColumn = "locked_until"
	b = run(newRouter(t, cfg),
		change("public.users", cdc.OpUpdate, []cdc.Column{col("id", "3"), col("role", `"viewer"`), col("locked_until", `"2099-01-01T00:00:00.000Z"`)}, nil))
	if len(b.Users) != 1 || b.Users[0].LockedUntil.Year() != 2099 {
		t.Errorf("with locked_until_column: %+v, want the lock-out deadline", b.Users)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", "tables:\n  members:\n    event: x\n    audience: [all]\n    colour: red\n", "colour"},
		{"no event", "tables:\n  members:\n    audience: [all]\n", "event is required"},
		{"bad style", "tables:\n  members:\n    event: e\n    style: nested\n    audience: [all]\n", "style"},
		{"no audience", "tables:\n  members:\n    event: e\n", "audience is required"},
		{"all mixed with rooms", "tables:\n  members:\n    event: e\n    audience: [all, role:admin]\n", "combines all"},
		{"bad template", "tables:\n  members:\n    event: e\n    audience: [\"member:{id\"]\n", "unclosed"},
		{"rename outside allow-list", "tables:\n  members:\n    event: e\n    columns: [id]\n    rename: {name: n}\n    audience: [all]\n", "rename of name"},
		{"no tables", "flood_rows: 5\n", "no tables"},
		{"template without a fixed start", "tables:\n  members:\n    event: e\n    audience: [\"{family_id}\"]\n", `audience room "{family_id}" starts with a {column}`},
		{"template starting with a hole", "tables:\n  members:\n    event: e\n    audience: [\"{family_id}:family\"]\n", "fixed prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err == nil {
				_, err = New(cfg, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestCheckSchemaListsWhatExists(t *testing.T) {
	existing := map[string][]string{
		"public.members":   {"id", "first_name"},
		"public.donations": {"id", "amount"},
		"public.users":     {"id", "username", "role", "email", "created_at", "must_change_password", "member_id", "locked_until"},
	}
	err := GraceGiver().CheckSchema(existing)
	if err == nil {
		t.Fatal("CheckSchema accepted a schema without settings and donations.member_id")
	}
	for _, want := range []string{"table public.settings does not exist; tables: public.donations, public.members, public.users", "public.donations has no column member_id; its columns: id, amount"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestTableSpecs(t *testing.T) {
	cfg, err := Parse([]byte("tables:\n  orders:\n    event: order:update\n    audience: [all]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range cfg.TableSpecs(map[string][]string{"public.users": {"id"}}) {
		got = append(got, s.String())
	}
	// A routed table without an allow-list is published whole; the users
	// table, read only for revocation, only with what revocation reads.
	if want := []string{"public.orders", "public.users(id,role)"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("specs = %v, want %v", got, want)
	}

	got = got[:0]
	identity := map[string][]string{"public.members": {"id"}, "public.donations": nil, "public.users": {"id"}, "public.settings": {"singleton_id"}}
	for _, s := range GraceGiver().TableSpecs(identity) {
		got = append(got, s.String())
	}
	want := []string{
		"public.donations",
		"public.members",
		"public.settings(name,address,phone,email,tax_id,singleton_id)",
		"public.users(id,username,role,email,created_at,must_change_password,member_id)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GraceGiver specs =\n%v\nwant\n%v", got, want)
	}
	// Without a known replica identity no column list is possible.
	for _, s := range GraceGiver().TableSpecs(nil) {
		if len(s.Columns) > 0 {
			t.Fatalf("%s has a column list without a known identity", s)
		}
	}
}

// TestAcceptAndDiscard: what a transaction remembered counts for later ones
// at once, but only Accept makes it stick; Discard takes back everything
// since the last Accept, so a transaction that comes again is routed as if
// it had never been seen.
func TestAcceptAndDiscard(t *testing.T) {
	member := func(name string) *cdc.Change {
		return change("public.members", cdc.OpUpdate, []cdc.Column{col("id", `"m1"`), col("first_name", `"`+name+`"`)}, nil)
	}
	sent := func(r *Router, c *cdc.Change) bool { return len(run(r, c).Emits) > 0 }
	cases := []struct {
		name  string
		steps func(r *Router) bool // reports whether the last UPDATE was sent
		sent  bool
	}{
		{"accepted payload suppresses the same UPDATE", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Accept()
			return sent(r, member("Ann"))
		}, false},
		{"a later transaction of the same group sees an earlier one", func(r *Router) bool {
			sent(r, member("Ann"))
			return sent(r, member("Ann"))
		}, false},
		{"discarded payload is forgotten", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Discard()
			return sent(r, member("Ann"))
		}, true},
		{"discard takes back the whole group", func(r *Router) bool {
			sent(r, member("Ann"))
			sent(r, member("Bea"))
			r.Discard()
			return sent(r, member("Bea"))
		}, true},
		{"discard keeps what was accepted", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Accept()
			sent(r, member("Bea"))
			r.Discard()
			return sent(r, member("Ann"))
		}, false},
		{"a discarded DELETE does not forget the accepted row", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Accept()
			run(r, change("public.members", cdc.OpDelete, nil, []cdc.Column{col("id", `"m1"`)}))
			r.Discard()
			return sent(r, member("Ann"))
		}, false},
		{"an accepted DELETE forgets the row", func(r *Router) bool {
			sent(r, member("Ann"))
			run(r, change("public.members", cdc.OpDelete, nil, []cdc.Column{col("id", `"m1"`)}))
			r.Accept()
			return sent(r, member("Ann"))
		}, true},
		{"a discarded TRUNCATE keeps the accepted rows", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Accept()
			run(r, &cdc.Change{Op: cdc.OpTruncate, Truncated: []cdc.Table{{Schema: "public", Name: "members"}}})
			r.Discard()
			return sent(r, member("Ann"))
		}, false},
		{"an accepted TRUNCATE forgets every row", func(r *Router) bool {
			sent(r, member("Ann"))
			r.Accept()
			run(r, &cdc.Change{Op: cdc.OpTruncate, Truncated: []cdc.Table{{Schema: "public", Name: "members"}}})
			r.Accept()
			return sent(r, member("Ann"))
		}, true},
		{"an open transaction's rows are discarded too", func(r *Router) bool {
			r.Begin(cdc.TxInfo{})
			r.Change(member("Ann"))
			r.Discard()
			return sent(r, member("Ann"))
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.steps(newRouter(t, GraceGiver())); got != tc.sent {
				t.Errorf("last UPDATE sent = %v, want %v", got, tc.sent)
			}
		})
	}
}
