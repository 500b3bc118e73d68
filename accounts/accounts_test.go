package accounts

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }

var gracegiver = Columns{Table: "public.users", ID: "id", Role: "role", MemberID: "member_id"}

func newDB(t *testing.T) string {
	dsn := pg.NewDatabase(t)
	pgtest.Exec(t, dsn, sql.GraceGiverSchema,
		`ALTER TABLE users ALTER COLUMN id TYPE bigint`, // an id above 2^53
		`INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'B'), ('m-2', 'C', 'D')`,
		`INSERT INTO users (id, username, password_hash, role, member_id, locked_until) VALUES
			(1, 'admin', 'x', 'admin', NULL, NULL),
			(2, 'viewer', 'x', 'viewer', 'm-1', now() + interval '1 hour'),
			(9007199254740993, 'big', 'x', 'manager', NULL, NULL)`)
	return dsn
}

func ptr[T any](v T) *T { return &v }

// recorder collects what OnChange reports.
type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) add(ids []string) {
	r.mu.Lock()
	r.ids = append(r.ids, ids...)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ids
	r.ids = nil
	slices.Sort(out)
	return out
}

func TestLoadAndAdmit(t *testing.T) {
	dsn := newDB(t)
	d := New(gracegiver)
	now := time.Now()
	if d.Admits("1", "admin", "", now) {
		t.Fatal("admitted before Load")
	}
	if err := d.Load(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, role, member string
		want             bool
	}{
		{"1", "admin", "", true},
		{"1", "super_admin", "", false}, // a role the row does not have
		{"1", "admin", "m-1", false},    // a member id the row does not have
		{"2", "viewer", "m-1", true},    // locked_until is not read: GraceGiver's is a login throttle
		{"2", "viewer", "", false},
		{"9007199254740993", "manager", "", true}, // digits kept
		{"9007199254740992", "manager", "", false},
		{"3", "viewer", "", false}, // no such user
	} {
		if got := d.Admits(tc.id, tc.role, tc.member, now); got != tc.want {
			t.Errorf("Admits(%q, %q, %q) = %v, want %v", tc.id, tc.role, tc.member, got, tc.want)
		}
	}
	if d.Queries() != 1 || d.Len() != 3 {
		t.Errorf("queries %d, users %d; want 1 and 3", d.Queries(), d.Len())
	}

	// With a lock-out column, a lock-out in force refuses.
	lo := gracegiver
	lo.LockedUntil = "locked_until"
	d = New(lo)
	if err := d.Load(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	if d.Admits("2", "viewer", "m-1", now) {
		t.Error("a locked-out user admitted")
	}
	if !d.Admits("2", "viewer", "m-1", now.Add(2*time.Hour)) {
		t.Error("refused after the lock-out ended")
	}
}

func TestApplyAndWatch(t *testing.T) {
	dsn := newDB(t)
	d := New(gracegiver)
	var rec recorder
	d.OnChange(rec.add)
	// Changes that arrive before the SELECT are replayed on top of it:
	// the snapshot may be older than them.
	d.Apply([]Change{{ID: "1", Role: ptr("viewer")}})
	if err := d.Load(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if d.Admits("1", "admin", "", now) || !d.Admits("1", "viewer", "", now) {
		t.Error("a change applied before Load was lost under its snapshot")
	}
	if got := rec.take(); !slices.Equal(got, []string{"1"}) {
		t.Errorf("changed ids after Load = %v, want [1]", got)
	}
	d.Apply([]Change{
		{ID: "2", MemberID: ptr("m-2")},
		{ID: "1", Deleted: true},
		{ID: "5", Role: ptr("data_entry"), MemberID: ptr("")},
	})
	if !d.Admits("2", "viewer", "m-2", now) || d.Admits("2", "viewer", "m-1", now) {
		t.Error("member id change not applied")
	}
	if d.Admits("1", "viewer", "", now) {
		t.Error("deleted user admitted")
	}
	if !d.Admits("5", "data_entry", "", now) {
		t.Error("new user not admitted")
	}
	if got := rec.take(); !slices.Equal(got, []string{"1", "2", "5"}) {
		t.Errorf("changed ids = %v, want [1 2 5]", got)
	}
}

// TestReload: a reload (pub/sub, where changes can be lost) replaces the
// projection and reports who differs.
func TestReload(t *testing.T) {
	dsn := newDB(t)
	d := New(gracegiver)
	var rec recorder
	d.OnChange(rec.add)
	if err := d.Load(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	rec.take()
	// Changes the directory never heard of.
	pgtest.Exec(t, dsn, `UPDATE users SET role = 'manager' WHERE id = 1`, `DELETE FROM users WHERE id = 2`)
	if err := d.Load(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("reload reported %v, want [1 2]", got)
	}
	if !d.Admits("1", "manager", "", time.Now()) || d.Admits("2", "viewer", "m-1", time.Now()) {
		t.Error("reload did not replace the projection")
	}
	if d.Queries() != 2 {
		t.Errorf("queries = %d, want 2", d.Queries())
	}
}

func TestLoadErrors(t *testing.T) {
	dsn := newDB(t)
	d := New(Columns{Table: "public.users", ID: "id", Role: "no_such_column"})
	if err := d.Load(context.Background(), dsn); err == nil {
		t.Fatal("Load with a missing column succeeded")
	}
	if d.Admits("1", "admin", "", time.Now()) {
		t.Error("admitted after a failed Load")
	}
}

func TestEncodeDecode(t *testing.T) {
	at := time.Date(2099, 1, 2, 3, 4, 5, 6000, time.UTC)
	in := []Change{
		{ID: "1", Role: ptr("admin"), MemberID: ptr("")},
		{ID: "u-2", Deleted: true},
		{ID: "3", LockedUntil: &at},
		{ID: "4", LockedUntil: &time.Time{}},
	}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || *out[0].Role != "admin" || *out[0].MemberID != "" || out[0].LockedUntil != nil ||
		!out[1].Deleted || out[1].Role != nil || !out[2].LockedUntil.Equal(at) || !out[3].LockedUntil.IsZero() {
		t.Fatalf("round trip %s = %+v", b, out)
	}
	for _, bad := range []string{
		``, `{}`, `[{"role":"x"}]`, `[{"id":""}]`, `[{"id":"1","extra":1}]`, `[{"id":"1","deleted":true,"role":"x"}]`,
		`[{"id":"1","lockedUntil":"yesterday"}]`, `[] []`, `[{"id":1}]`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
	if _, err := Encode([]Change{{ID: ""}}); err == nil {
		t.Error("Encode accepted an empty id")
	}
}

// FuzzDecode: whatever is on the wire, Decode answers without panicking,
// and what it accepts encodes back to something it accepts alike.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`[{"id":"1","role":"admin","member":""},{"id":"2","deleted":true}]`))
	f.Add([]byte(`[{"id":"3","lockedUntil":"2099-01-01T00:00:00Z"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		changes, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(changes)
		if err != nil {
			t.Fatalf("Encode of decoded %q: %v", b, err)
		}
		back, err := Decode(again)
		if err != nil || len(back) != len(changes) {
			t.Fatalf("round trip of %q: %v, %d changes, want %d", b, err, len(back), len(changes))
		}
	})
}
