package locks

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// op runs one lock event as a caller and renders the ack as sent.
func op(t *testing.T, svc *Service, c Caller, event string, p json.RawMessage) string {
	t.Helper()
	switch event {
	case "lock:acquire":
		return wire(t, svc.Acquire(bg, c, p))
	case "lock:release":
		return wire(t, svc.Release(bg, c, p))
	case "lock:check":
		return wire(t, svc.Check(bg, c, p))
	}
	t.Fatalf("unknown event %q", event)
	return ""
}

var acquiredAtRE = regexp.MustCompile(`"acquiredAt":\d{13}`)

// TestServiceContractSequence mirrors the contract with two users: every
// ack and every announcement, on both backends (for Redis through two
// Service instances, one per user, as if on two walcast processes).
func TestServiceContractSequence(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			svcA := newService(t, be.newStore(t), &rec, Config{})
			svcB := svcA
			if be.multi {
				svcB = newService(t, be.newStore(t), &rec, Config{})
			}
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "data_entry", "")
			p := payload("member", "3f2a-uuid")
			const upd = "lock:update:member:3f2a-uuid "
			steps := []struct {
				who     string
				event   string
				ack     string
				updates []string
			}{
				{"alice", "lock:check", `{"isLocked":false}`, nil},
				{"alice", "lock:acquire", `{"success":true,"lockedBy":"alice"}`, []string{upd + `{"isLocked":true,"lockedBy":"alice"}`}},
				{"bob", "lock:acquire", `{"success":false,"lockedBy":"alice"}`, nil},
				{"bob", "lock:check", `{"isLocked":true,"lockedBy":"alice","acquiredAt":T}`, nil},
				{"alice", "lock:acquire", `{"success":true,"lockedBy":"alice"}`, nil},
				{"bob", "lock:release", `{"success":false,"lockedBy":"alice"}`, nil},
				{"bob", "lock:check", `{"isLocked":true,"lockedBy":"alice","acquiredAt":T}`, nil},
				{"alice", "lock:release", `{"success":true}`, []string{upd + `{"isLocked":false,"lockedBy":null}`}},
				{"alice", "lock:release", `{"success":true}`, nil},
				{"bob", "lock:check", `{"isLocked":false}`, nil},
				{"bob", "lock:acquire", `{"success":true,"lockedBy":"bob"}`, []string{upd + `{"isLocked":true,"lockedBy":"bob"}`}},
				{"alice", "lock:acquire", `{"success":false,"lockedBy":"bob"}`, nil},
			}
			var firstAt string
			for i, s := range steps {
				svc, c := svcA, alice
				if s.who == "bob" {
					svc, c = svcB, bob
				}
				got := op(t, svc, c, s.event, p)
				if at := acquiredAtRE.FindString(got); at != "" {
					// acquiredAt is kept across refreshes: one value throughout.
					if firstAt == "" {
						firstAt = at
					} else if at != firstAt {
						t.Errorf("step %d: %s changed from %s", i, at, firstAt)
					}
					got = acquiredAtRE.ReplaceAllString(got, `"acquiredAt":T`)
				}
				if got != s.ack {
					t.Errorf("step %d %s %s: ack %s, want %s", i, s.who, s.event, got, s.ack)
				}
				var ups []string
				for _, u := range rec.take() {
					ups = append(ups, wireUpdate(t, u))
				}
				if strings.Join(ups, "\n") != strings.Join(s.updates, "\n") {
					t.Errorf("step %d %s %s: updates %q, want %q", i, s.who, s.event, ups, s.updates)
				}
			}
		})
	}
}

// countingStore wraps a Store and counts calls, to prove bad input never
// reaches it.
type countingStore struct {
	Store
	calls atomic.Int64
}

func (c *countingStore) Acquire(ctx context.Context, r Resource, o Owner, limit int) (AcquireResult, error) {
	c.calls.Add(1)
	return c.Store.Acquire(ctx, r, o, limit)
}
func (c *countingStore) Release(ctx context.Context, r Resource, u UserID) (ReleaseResult, error) {
	c.calls.Add(1)
	return c.Store.Release(ctx, r, u)
}
func (c *countingStore) Check(ctx context.Context, r Resource) (Holder, bool, error) {
	c.calls.Add(1)
	return c.Store.Check(ctx, r)
}

func TestServiceBadInput(t *testing.T) {
	long := strings.Repeat("a", 129)
	cases := []struct {
		name    string
		payload string
	}{
		{"no payload", ``},
		{"null", `null`},
		{"empty object", `{}`},
		{"array", `[{"resourceType":"member","resourceId":"1"}]`},
		{"string", `"member:1"`},
		{"number", `42`},
		{"missing type", `{"resourceId":"1"}`},
		{"missing id", `{"resourceType":"member"}`},
		{"unknown type", `{"resourceType":"invoice","resourceId":"1"}`},
		{"type wrong case", `{"resourceType":"Member","resourceId":"1"}`},
		{"type number", `{"resourceType":1,"resourceId":"1"}`},
		{"type null", `{"resourceType":null,"resourceId":"1"}`},
		{"id null", `{"resourceType":"member","resourceId":null}`},
		{"id empty", `{"resourceType":"member","resourceId":""}`},
		{"id too long", `{"resourceType":"member","resourceId":"` + long + `"}`},
		{"id with colon", `{"resourceType":"member","resourceId":"a:b"}`},
		{"id with star", `{"resourceType":"member","resourceId":"*"}`},
		{"id with space", `{"resourceType":"member","resourceId":"a b"}`},
		{"id with slash", `{"resourceType":"member","resourceId":"../x"}`},
		{"id non-ascii", `{"resourceType":"member","resourceId":"é"}`},
		{"id object", `{"resourceType":"member","resourceId":{"a":1}}`},
		{"id bool", `{"resourceType":"member","resourceId":true}`},
		{"id negative", `{"resourceType":"member","resourceId":-1}`},
		{"id fraction", `{"resourceType":"member","resourceId":1.5}`},
		{"id exponent", `{"resourceType":"member","resourceId":1e3}`},
		{"id leading zero", `{"resourceType":"member","resourceId":007}`},
		{"id undefined text", `{"resourceType":"undefined","resourceId":"undefined"}`},
		{"truncated json", `{"resourceType":"member","resourceId":"1"`},
		{"oversized", `{"resourceType":"member","resourceId":"1","pad":"` + strings.Repeat("x", 5000) + `"}`},
	}
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			cs := &countingStore{Store: be.newStore(t)}
			var rec recorder
			svc := newService(t, cs, &rec, Config{})
			admin := caller(t, 1, "admin", "super_admin", "")
			for _, tc := range cases {
				p := json.RawMessage(tc.payload)
				if got := wire(t, svc.Acquire(bg, admin, p)); got != `{"success":false,"error":"invalid resource"}` {
					t.Errorf("%s: acquire ack %s", tc.name, got)
				}
				if got := wire(t, svc.Release(bg, admin, p)); got != `{"success":false,"error":"invalid resource"}` {
					t.Errorf("%s: release ack %s", tc.name, got)
				}
				if got := wire(t, svc.Check(bg, admin, p)); got != `{"success":false,"isLocked":false,"error":"invalid resource"}` {
					t.Errorf("%s: check ack %s", tc.name, got)
				}
			}
			if n := cs.calls.Load(); n != 0 {
				t.Errorf("bad input reached the store %d times", n)
			}
			if n := rec.len(); n != 0 {
				t.Errorf("bad input announced %d updates", n)
			}
			// And the good forms do reach it: the table is not vacuous.
			for _, good := range []string{`{"resourceType":"donation","resourceId":42}`, `{"resourceType":"member","resourceId":"` + long[:128] + `"}`, `{"resourceType":"settings","resourceId":"A-z_0"}`} {
				if got := wire(t, svc.Acquire(bg, admin, json.RawMessage(good))); got != `{"success":true,"lockedBy":"admin"}` {
					t.Errorf("good payload %s: ack %s", good, got)
				}
			}
			// A numeric id is the same lock as its decimal string.
			if got := wire(t, svc.Check(bg, admin, payload("donation", "42"))); !strings.HasPrefix(got, `{"isLocked":true`) {
				t.Errorf("check donation \"42\" after locking 42: %s", got)
			}
			if cs.calls.Load() != 4 || rec.len() != 3 {
				t.Errorf("good payloads: %d store calls, %d updates; want 4 and 3", cs.calls.Load(), rec.len())
			}
		})
	}
}

func TestServiceRoles(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		role   string
		member string
		typ    string
		id     string
		want   string
	}{
		{"super_admin any member", Config{}, "super_admin", "", "member", "m1", `{"success":true,"lockedBy":"u"}`},
		{"admin donation", Config{}, "admin", "", "donation", "5", `{"success":true,"lockedBy":"u"}`},
		{"manager user", Config{}, "manager", "", "user", "5", `{"success":true,"lockedBy":"u"}`},
		{"data_entry settings", Config{}, "data_entry", "", "settings", "1", `{"success":true,"lockedBy":"u"}`},
		{"viewer own member", Config{}, "viewer", "m1", "member", "m1", `{"success":true,"lockedBy":"u"}`},
		{"viewer other member", Config{}, "viewer", "m1", "member", "m2", `{"success":false,"error":"forbidden"}`},
		{"viewer without memberId", Config{}, "viewer", "", "member", "m2", `{"success":false,"error":"forbidden"}`},
		{"viewer donation with own id", Config{}, "viewer", "m1", "donation", "m1", `{"success":false,"error":"forbidden"}`},
		{"viewer own member denied by config", Config{DenyViewerOwnMember: true}, "viewer", "m1", "member", "m1", `{"success":false,"error":"forbidden"}`},
		{"no role", Config{}, "", "", "member", "m1", `{"success":false,"error":"forbidden"}`},
		{"unknown role", Config{}, "auditor", "", "member", "m1", `{"success":false,"error":"forbidden"}`},
		{"configured role", Config{AnyRecordRoles: map[string][]string{"settings": {"super_admin"}}}, "super_admin", "", "settings", "1", `{"success":true,"lockedBy":"u"}`},
		{"configured role excludes admin", Config{AnyRecordRoles: map[string][]string{"settings": {"super_admin"}}}, "admin", "", "settings", "1", `{"success":false,"error":"forbidden"}`},
		{"other types keep defaults", Config{AnyRecordRoles: map[string][]string{"settings": {"super_admin"}}}, "admin", "", "member", "1", `{"success":true,"lockedBy":"u"}`},
		{"custom type", Config{ResourceTypes: []string{"pledge"}}, "admin", "", "pledge", "1", `{"success":true,"lockedBy":"u"}`},
		{"default type not configured", Config{ResourceTypes: []string{"pledge"}}, "admin", "", "member", "1", `{"success":false,"error":"invalid resource"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			svc := newService(t, NewMemoryStore(time.Minute), &rec, tc.cfg)
			c := caller(t, 9, "u", tc.role, tc.member)
			got := wire(t, svc.Acquire(bg, c, payload(tc.typ, tc.id)))
			if got != tc.want {
				t.Fatalf("ack %s, want %s", got, tc.want)
			}
			wantUpdates := 0
			if strings.Contains(tc.want, `"success":true`) {
				wantUpdates = 1
			}
			if n := rec.len(); n != wantUpdates {
				t.Fatalf("%d updates, want %d", n, wantUpdates)
			}
		})
	}
}

func TestServiceConfigErrors(t *testing.T) {
	st := NewMemoryStore(time.Minute)
	for _, cfg := range []Config{
		{ResourceTypes: []string{"a:b"}},
		{ResourceTypes: []string{""}},
		{AnyRecordRoles: map[string][]string{"invoice": {"admin"}}},
		{Renew: true, RenewInterval: time.Minute},
	} {
		if _, err := NewService(st, nil, cfg); err == nil {
			t.Errorf("NewService(%+v) accepted a bad config", cfg)
		}
	}
	if _, err := NewService(nil, nil, Config{}); err == nil {
		t.Error("NewService(nil store) succeeded")
	}
}

func TestServiceUserCap(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			svc := newService(t, be.newStore(t), nil, Config{}) // default cap 50
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			for i := 0; i < 50; i++ {
				if got := wire(t, svc.Acquire(bg, alice, payload("member", fmt.Sprint("m", i)))); got != `{"success":true,"lockedBy":"alice"}` {
					t.Fatalf("lock %d: %s", i, got)
				}
			}
			if got := wire(t, svc.Acquire(bg, alice, payload("member", "m50"))); got != `{"success":false,"error":"lock limit reached"}` {
				t.Fatalf("51st lock: %s", got)
			}
			if got := wire(t, svc.Acquire(bg, alice, payload("member", "m7"))); got != `{"success":true,"lockedBy":"alice"}` {
				t.Fatalf("refresh at the cap: %s", got)
			}
			if got := wire(t, svc.Acquire(bg, bob, payload("member", "m50"))); got != `{"success":true,"lockedBy":"bob"}` {
				t.Fatalf("another user at alice's cap: %s", got)
			}
			if got := wire(t, svc.Release(bg, alice, payload("member", "m0"))); got != `{"success":true}` {
				t.Fatalf("release: %s", got)
			}
			if got := wire(t, svc.Acquire(bg, alice, payload("member", "m51"))); got != `{"success":true,"lockedBy":"alice"}` {
				t.Fatalf("after a release: %s", got)
			}

			small := newService(t, be.newStore(t), nil, Config{MaxLocksPerUser: 1})
			carol := caller(t, 3, "carol", "admin", "")
			small.Acquire(bg, carol, payload("user", "1"))
			if got := wire(t, small.Acquire(bg, carol, payload("user", "2"))); got != `{"success":false,"error":"lock limit reached"}` {
				t.Fatalf("cap 1: %s", got)
			}
		})
	}
}

// TestServiceRace: 100 callers race for one lock through the Service; with
// Redis, through two Service instances on separate clients.
func TestServiceRace(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			svcs := []*Service{newService(t, be.newStore(t), &rec, Config{})}
			if be.multi {
				svcs = append(svcs, newService(t, be.newStore(t), &rec, Config{}))
			}
			acks := make([]Ack, 100)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range acks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					c := caller(t, int64(i+1), fmt.Sprint("user", i+1), "manager", "")
					acks[i] = svcs[i%len(svcs)].Acquire(bg, c, payload("member", "hot"))
				}()
			}
			close(start)
			wg.Wait()
			var winners []string
			for i, a := range acks {
				switch {
				case a.Success:
					winners = append(winners, *a.LockedBy)
				case a.Error != "" || a.LockedBy == nil:
					t.Fatalf("racer %d: ack %+v", i, a)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("%d winners %v, want exactly 1", len(winners), winners)
			}
			for i, a := range acks {
				if !a.Success && *a.LockedBy != winners[0] {
					t.Fatalf("racer %d told %q holds it, winner is %q", i, *a.LockedBy, winners[0])
				}
			}
			ups := rec.take()
			if len(ups) != 1 || wireUpdate(t, ups[0]) != `lock:update:member:hot {"isLocked":true,"lockedBy":"`+winners[0]+`"}` {
				t.Fatalf("updates %v, want one for %s", ups, winners[0])
			}
		})
	}
}

// TestExpiryAnnouncedOnce: locks with a short TTL expire and each expiry
// is announced exactly once, with two instances sweeping one Redis.
func TestExpiryAnnouncedOnce(t *testing.T) {
	// Long enough that all 30 locks are taken (and e0 released) before the
	// first one can expire, even on a loaded machine.
	const ttl = time.Second
	for _, be := range backends(t, ttl) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			cfg := Config{SweepInterval: 50 * time.Millisecond}
			svcs := []*Service{newService(t, be.newStore(t), &rec, cfg)}
			if be.multi {
				svcs = append(svcs, newService(t, be.newStore(t), &rec, cfg))
			}
			ctx, cancel := context.WithCancel(bg)
			var wg sync.WaitGroup
			for _, s := range svcs {
				wg.Add(1)
				go func() { defer wg.Done(); _ = s.Run(ctx) }()
			}
			defer func() { cancel(); wg.Wait() }()

			const n = 30
			for i := 0; i < n; i++ {
				c := caller(t, int64(i%3+1), fmt.Sprint("user", i%3+1), "admin", "")
				if a := svcs[i%len(svcs)].Acquire(bg, c, payload("member", fmt.Sprint("e", i))); !a.Success {
					t.Fatalf("acquire %d: %+v", i, a)
				}
			}
			// One lock released by hand before it expires: announced by the
			// release, never again by the sweep.
			svcs[0].Release(bg, caller(t, 1, "user1", "admin", ""), payload("member", "e0"))
			if got := rec.take(); len(got) != n+1 {
				t.Fatalf("%d updates after acquires and a release, want %d", len(got), n+1)
			}
			waitFor(t, 10*time.Second, "expiry announcements", func() bool { return rec.len() >= n-1 })
			// Give every sweeper several more rounds to double-announce.
			time.Sleep(10 * cfg.SweepInterval)
			seen := map[string]int{}
			for _, u := range rec.take() {
				if u.Payload.IsLocked || u.Payload.LockedBy != nil {
					t.Errorf("expiry update %s", wireUpdate(t, u))
				}
				seen[u.Event()]++
			}
			for i := 1; i < n; i++ {
				if ev := fmt.Sprint("lock:update:member:e", i); seen[ev] != 1 {
					t.Errorf("%s announced %d times, want once", ev, seen[ev])
				}
			}
			if seen["lock:update:member:e0"] != 0 {
				t.Errorf("released lock e0 announced again on expiry")
			}
			// Expired means free: anyone may take it now.
			if a := svcs[0].Acquire(bg, caller(t, 7, "late", "admin", ""), payload("member", "e5")); !a.Success {
				t.Fatalf("acquire after expiry: %+v", a)
			}
		})
	}
}

// TestExpiredThenRetaken: a lock that expires and is taken again before any
// sweep is announced as taken by its new holder, and its old expiry is not
// announced after that (it would wrongly clear the new holder's badge).
func TestExpiredThenRetaken(t *testing.T) {
	// b's grant must outlive the sweep right after it.
	const ttl = 500 * time.Millisecond
	for _, be := range backends(t, ttl) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			svc := newService(t, be.newStore(t), &rec, Config{})
			svc.Acquire(bg, caller(t, 1, "a", "admin", ""), payload("member", "x"))
			waitFor(t, 5*time.Second, "lock to expire", func() bool {
				return !svc.Check(bg, caller(t, 1, "a", "admin", ""), payload("member", "x")).IsLocked
			})
			if a := svc.Acquire(bg, caller(t, 2, "b", "admin", ""), payload("member", "x")); !a.Success {
				t.Fatalf("acquire expired lock: %+v", a)
			}
			if n, err := svc.SweepOnce(bg); err != nil || n != 0 {
				t.Fatalf("sweep = %d, %v; want nothing (the grant was replaced)", n, err)
			}
			ups := rec.take()
			if len(ups) != 2 || wireUpdate(t, ups[1]) != `lock:update:member:x {"isLocked":true,"lockedBy":"b"}` {
				t.Fatalf("updates %v", ups)
			}
		})
	}
}
