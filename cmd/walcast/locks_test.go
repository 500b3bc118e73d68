package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/redistest"
)

var memberM1 = map[string]any{"resourceType": "member", "resourceId": "m-1"}

// ack sends event from socket i with an ack callback and returns the ack's
// single argument.
func ack(t *testing.T, c *sioclient.Client, i int, event string, args ...any) sioclient.Line {
	t.Helper()
	l := c.EmitWithAck(i, 5*time.Second, event, args...)
	if l.Error != "" || len(l.Args) != 1 {
		t.Fatalf("%s from socket %d: ack %s", event, i, l.Raw)
	}
	return l
}

func wantAck(t *testing.T, step string, l sioclient.Line, want string) {
	t.Helper()
	if !jsonEqual(t, l.Args[0], want) {
		t.Errorf("%s: ack %s, want %s", step, l.Args[0], want)
	}
}

// TestLockContract runs the contract's sequence with two users and checks
// every ack and the lock:update events each socket sees.
func TestLockContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) { lockContract(t, startWalcast(t, newDB(t), serveOpts{})) })
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Run(t, redistest.Options{})
		lockContract(t, startWalcast(t, newDB(t), serveOpts{env: []string{"REDIS_URL=" + rs.URL()}}))
	})
}

func lockContract(t *testing.T, in *instance) {
	const alice, bob = 0, 1
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour), mint(t, 2, "bob", "manager", nil, time.Hour))
	const ev = "lock:update:member:m-1"
	updates := func(i, n int) []sioclient.Line { return waitEvents(t, c, i, ev, n, 5*time.Second) }

	wantAck(t, "check, free", ack(t, c, alice, "lock:check", memberM1), `{"isLocked":false}`)
	wantAck(t, "alice acquires", ack(t, c, alice, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	for _, i := range []int{alice, bob} {
		wantPayloads(t, fmt.Sprintf("socket %d after the acquire", i), updates(i, 1), [][2]string{{ev, `{"isLocked":true,"lockedBy":"alice"}`}})
	}
	wantAck(t, "bob acquires the held lock", ack(t, c, bob, "lock:acquire", memberM1), `{"success":false,"lockedBy":"alice"}`)
	check := ack(t, c, bob, "lock:check", memberM1)
	var held struct {
		IsLocked   bool    `json:"isLocked"`
		LockedBy   string  `json:"lockedBy"`
		AcquiredAt float64 `json:"acquiredAt"`
	}
	if err := check.Arg(0, &held); err != nil || !held.IsLocked || held.LockedBy != "alice" || time.Since(time.UnixMilli(int64(held.AcquiredAt))).Abs() > time.Minute {
		t.Errorf("bob checks: %s, want isLocked by alice with acquiredAt (epoch ms) about now", check.Args[0])
	}
	wantAck(t, "alice re-acquires", ack(t, c, alice, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	wantAck(t, "check after re-acquire keeps acquiredAt", ack(t, c, bob, "lock:check", memberM1),
		fmt.Sprintf(`{"isLocked":true,"lockedBy":"alice","acquiredAt":%d}`, int64(held.AcquiredAt)))
	wantAck(t, "bob releases alice's lock", ack(t, c, bob, "lock:release", memberM1), `{"success":false,"lockedBy":"alice"}`)
	wantAck(t, "still alice's", ack(t, c, bob, "lock:check", memberM1), fmt.Sprintf(`{"isLocked":true,"lockedBy":"alice","acquiredAt":%d}`, int64(held.AcquiredAt)))
	wantAck(t, "alice releases", ack(t, c, alice, "lock:release", memberM1), `{"success":true}`)
	for _, i := range []int{alice, bob} {
		updates(i, 2)
	}
	wantAck(t, "release when free", ack(t, c, alice, "lock:release", memberM1), `{"success":true}`)
	wantAck(t, "check, free again", ack(t, c, bob, "lock:check", memberM1), `{"isLocked":false}`)

	// Nothing else was announced: a second lock's announcement, which both
	// see after everything above, fences the count.
	ack(t, c, bob, "lock:acquire", map[string]any{"resourceType": "member", "resourceId": "fence"})
	for _, i := range []int{alice, bob} {
		waitEvents(t, c, i, "lock:update:member:fence", 1, 5*time.Second)
		wantPayloads(t, fmt.Sprintf("socket %d", i), events(c, i, ev), [][2]string{
			{ev, `{"isLocked":true,"lockedBy":"alice"}`},
			{ev, `{"isLocked":false,"lockedBy":null}`},
		})
	}
}

// TestLockBadInput: malformed requests ack "invalid resource" and touch
// nothing; an acquire without an ack callback still works.
func TestLockBadInput(t *testing.T) {
	dsn := newDB(t)
	// Every lock call counts against the socket's rate limit, the refused
	// ones too; this test makes 45 at once (TestLockFloodBounded tests the limit).
	in := startWalcast(t, dsn, serveOpts{args: []string{"--lock-burst", "100"}})
	const alice, bob = 0, 1
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour), mint(t, 2, "bob", "manager", nil, time.Hour))

	bad := []struct {
		name string
		args []any
	}{
		{"no payload", nil},
		{"null", []any{nil}},
		{"empty object", []any{map[string]any{}}},
		{"a string", []any{"member:m-1"}},
		{"missing resourceId", []any{map[string]any{"resourceType": "member"}}},
		{"missing resourceType", []any{map[string]any{"resourceId": "m-1"}}},
		{"resourceType not a string", []any{map[string]any{"resourceType": 7, "resourceId": "m-1"}}},
		{"resourceId an object", []any{map[string]any{"resourceType": "member", "resourceId": map[string]any{"$ne": 1}}}},
		{"resourceId a boolean", []any{map[string]any{"resourceType": "member", "resourceId": true}}},
		{"unknown type", []any{map[string]any{"resourceType": "widget", "resourceId": "m-1"}}},
		{"colon in id", []any{map[string]any{"resourceType": "member", "resourceId": "m:1"}}},
		{"star in id", []any{map[string]any{"resourceType": "member", "resourceId": "*"}}},
		{"empty id", []any{map[string]any{"resourceType": "member", "resourceId": ""}}},
		{"129-char id", []any{map[string]any{"resourceType": "member", "resourceId": strings.Repeat("a", 129)}}},
	}
	for _, ev := range []string{"lock:acquire", "lock:release", "lock:check"} {
		want := `{"success":false,"error":"invalid resource"}`
		if ev == "lock:check" {
			want = `{"success":false,"isLocked":false,"error":"invalid resource"}`
		}
		for _, b := range bad {
			wantAck(t, ev+" with "+b.name, ack(t, c, alice, ev, b.args...), want)
		}
	}
	// The contract's client code never passes a callback for some calls.
	c.Emit(alice, "lock:acquire", memberM1)
	waitEvents(t, c, bob, "lock:update:member:m-1", 1, 5*time.Second)
	wantHeldBy(t, "check after an acquire without ack", ack(t, c, bob, "lock:check", memberM1), "alice")
	for _, b := range bad[:3] {
		c.Emit(alice, "lock:release", b.args...)
	}
	wantAck(t, "alice releases", ack(t, c, alice, "lock:release", memberM1), `{"success":true}`)
	waitEvents(t, c, bob, "lock:update:member:m-1", 2, 5*time.Second)
	// Only the valid acquire and release were announced.
	for _, i := range []int{alice, bob} {
		for _, l := range events(c, i, "") {
			if l.Event != "lock:update:member:m-1" {
				t.Errorf("socket %d got %s %s", i, l.Event, joinRaw(l.Args))
			}
		}
	}
	if strings.Contains(in.logs.String(), "level=ERROR") || strings.Contains(in.logs.String(), "panic") {
		t.Errorf("walcast logged an error:\n%s", in.logs.String())
	}
}

// wantHeldBy checks a lock:check ack says the lock is held by username.
func wantHeldBy(t *testing.T, step string, l sioclient.Line, username string) {
	t.Helper()
	var st struct {
		IsLocked   bool    `json:"isLocked"`
		LockedBy   string  `json:"lockedBy"`
		AcquiredAt float64 `json:"acquiredAt"`
	}
	if err := l.Arg(0, &st); err != nil || !st.IsLocked || st.LockedBy != username || st.AcquiredAt == 0 {
		t.Errorf("%s: ack %s, want isLocked by %s with acquiredAt", step, l.Args[0], username)
	}
}

// TestLockRoles: a viewer may lock its own member record and nothing else.
func TestLockRoles(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	const ann, staff = 0, 1
	c := connect(t, in, mint(t, 7, "ann", "viewer", "m-ann", time.Hour), mint(t, 8, "dee", "data_entry", nil, time.Hour))
	for _, tc := range []struct {
		socket  int
		typ, id string
		want    string
	}{
		{ann, "member", "m-bob", `{"success":false,"error":"forbidden"}`},
		{ann, "donation", "5", `{"success":false,"error":"forbidden"}`},
		{ann, "user", "7", `{"success":false,"error":"forbidden"}`},
		{ann, "settings", "main", `{"success":false,"error":"forbidden"}`},
		{ann, "member", "m-ann", `{"success":true,"lockedBy":"ann"}`},
		{staff, "member", "m-bob", `{"success":true,"lockedBy":"dee"}`},
		{staff, "donation", "5", `{"success":true,"lockedBy":"dee"}`},
	} {
		wantAck(t, fmt.Sprintf("socket %d locks %s:%s", tc.socket, tc.typ, tc.id),
			ack(t, c, tc.socket, "lock:acquire", map[string]any{"resourceType": tc.typ, "resourceId": tc.id}), tc.want)
	}
	// A refused request announces nothing: only the three granted locks.
	waitEvents(t, c, ann, "", 3, 5*time.Second)
	ack(t, c, staff, "lock:acquire", map[string]any{"resourceType": "member", "resourceId": "fence"})
	got := waitEvents(t, c, ann, "", 4, 5*time.Second)
	if len(got) != 4 {
		t.Errorf("ann saw %d lock:update events, want 4:\n%s", len(got), dumpLines(c))
	}
}

// TestLockRace: 100 clients race for one lock; exactly one wins, in memory
// and with Redis shared by two walcast processes.
func TestLockRace(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		dsn := newDB(t)
		in := startWalcast(t, dsn, serveOpts{})
		race(t, in, in)
	})
	t.Run("redis, two instances", func(t *testing.T) {
		rs := redistest.Run(t, redistest.Options{})
		dsn := newDB(t)
		env := []string{"REDIS_URL=" + rs.URL()}
		a := startWalcast(t, dsn, serveOpts{env: env})
		// The second shares the slot, so it is standby: with REDIS_URL it
		// is ready, serving sockets, shared locks and, through the Redis
		// stream, every instance's events.
		b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
		waitReadyz(t, b, 200, "standby")
		race(t, a, b)
	})
}

// race connects 50 users to each of a and b (100 to a when the same) and
// has them all acquire one lock at once.
func race(t *testing.T, a, b *instance) {
	t.Helper()
	const n = 100
	tokens := func(from int) []string {
		var out []string
		for i := from; i < from+n/2; i++ {
			out = append(out, mint(t, i+1, fmt.Sprintf("user%d", i+1), "manager", nil, time.Hour))
		}
		return out
	}
	ca := connect(t, a, tokens(0)...)
	cb := connect(t, b, tokens(n/2)...)
	res := map[string]any{"resourceType": "donation", "resourceId": "42"}
	type pending struct {
		c   *sioclient.Client
		ref string
	}
	var refs []pending
	// Interleave the two processes' sends so both instances race.
	for i := 0; i < n/2; i++ {
		refs = append(refs, pending{ca, ca.EmitAsync(i, 10*time.Second, "lock:acquire", res)}, pending{cb, cb.EmitAsync(i, 10*time.Second, "lock:acquire", res)})
	}
	winners, losers := 0, map[string]int{}
	var winner string
	for _, p := range refs {
		l := p.c.WaitAck(p.ref, 15*time.Second)
		var r struct {
			Success  bool   `json:"success"`
			LockedBy string `json:"lockedBy"`
			Error    string `json:"error"`
		}
		if l.Error != "" || l.Arg(0, &r) != nil {
			t.Fatalf("ack: %s", l.Raw)
		}
		if r.Success {
			winners++
			winner = r.LockedBy
		} else {
			losers[r.LockedBy+"|"+r.Error]++
		}
	}
	if winners != 1 {
		t.Fatalf("%d clients got the lock, want exactly 1 (losers: %v)", winners, losers)
	}
	if len(losers) != 1 || losers[winner+"|"] != n-1 {
		t.Errorf("losers' acks %v, want all %d to name the winner %s", losers, n-1, winner)
	}
	// Every socket, on either instance, hears the one grant once.
	ev := "lock:update:donation:42"
	for _, c := range []*sioclient.Client{ca, cb} {
		for i := 0; i < n/2; i++ {
			got := waitEvents(t, c, i, ev, 1, 10*time.Second)
			if len(got) != 1 || !jsonEqual(t, got[0].Args[0], `{"isLocked":true,"lockedBy":"`+winner+`"}`) {
				t.Fatalf("socket %d: %s", i, dumpLines(c))
			}
		}
	}
}

// TestLockExpiry: a lock that outlives its TTL is announced free, once,
// to every socket, and can then be taken by someone else.
func TestLockExpiry(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{args: []string{"--lock-ttl", "2s"}})
	const alice, bob = 0, 1
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour), mint(t, 2, "bob", "manager", nil, time.Hour))
	wantAck(t, "alice acquires", ack(t, c, alice, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	const ev = "lock:update:member:m-1"
	for _, i := range []int{alice, bob} {
		got := waitEvents(t, c, i, ev, 2, 15*time.Second)
		wantPayloads(t, fmt.Sprintf("socket %d", i), got, [][2]string{
			{ev, `{"isLocked":true,"lockedBy":"alice"}`},
			{ev, `{"isLocked":false,"lockedBy":null}`},
		})
	}
	wantAck(t, "check after expiry", ack(t, c, bob, "lock:check", memberM1), `{"isLocked":false}`)
	wantAck(t, "bob takes the expired lock", ack(t, c, bob, "lock:acquire", memberM1), `{"success":true,"lockedBy":"bob"}`)
	for _, i := range []int{alice, bob} {
		got := waitEvents(t, c, i, ev, 3, 5*time.Second)
		if len(got) != 3 || !jsonEqual(t, got[2].Args[0], `{"isLocked":true,"lockedBy":"bob"}`) {
			t.Errorf("socket %d: the expiry was announced more than once or bob's grant is missing:\n%s", i, dumpLines(c))
		}
	}
}

// TestLockCap: one user holds at most 50 locks at once.
func TestLockCap(t *testing.T) {
	// 53 lock calls at once: above the rate limit's burst (TestLockFloodBounded).
	in := startWalcast(t, newDB(t), serveOpts{args: []string{"--lock-burst", "100"}})
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour))
	res := func(i int) map[string]any {
		return map[string]any{"resourceType": "donation", "resourceId": fmt.Sprint(i)}
	}
	for i := range 50 {
		wantAck(t, fmt.Sprintf("lock %d", i+1), ack(t, c, 0, "lock:acquire", res(i)), `{"success":true,"lockedBy":"alice"}`)
	}
	wantAck(t, "lock 51", ack(t, c, 0, "lock:acquire", res(50)), `{"success":false,"error":"lock limit reached"}`)
	wantAck(t, "re-acquire a held one at the cap", ack(t, c, 0, "lock:acquire", res(0)), `{"success":true,"lockedBy":"alice"}`)
	wantAck(t, "release one", ack(t, c, 0, "lock:release", res(0)), `{"success":true}`)
	wantAck(t, "lock 51 after a release", ack(t, c, 0, "lock:acquire", res(50)), `{"success":true,"lockedBy":"alice"}`)
}

// TestLockRedisOutage: with Redis gone every lock request fails closed,
// and walcast recovers by itself when Redis is back.
func TestLockRedisOutage(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	in := startWalcast(t, newDB(t), serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour))
	wantAck(t, "acquire with Redis up", ack(t, c, 0, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	other := map[string]any{"resourceType": "member", "resourceId": "m-2"}
	wantAck(t, "acquire with Redis down", ack(t, c, 0, "lock:acquire", other), `{"success":false,"error":"lock service unavailable"}`)
	wantAck(t, "release with Redis down", ack(t, c, 0, "lock:release", memberM1), `{"success":false,"error":"lock service unavailable"}`)
	wantAck(t, "check with Redis down", ack(t, c, 0, "lock:check", memberM1), `{"isLocked":false,"error":"lock service unavailable"}`)
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := ack(t, c, 0, "lock:acquire", other)
		if jsonEqual(t, l.Args[0], `{"success":true,"lockedBy":"alice"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 15s after Redis came back: last ack %s", l.Args[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
}
