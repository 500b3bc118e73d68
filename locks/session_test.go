package locks

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

func runService(t *testing.T, svc *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestRenewal: with Renew on, a connected holder keeps its lock well past
// the TTL; once it disconnects, renewal stops and the lock expires (and is
// announced).
func TestRenewal(t *testing.T) {
	// Renewal runs ten times per TTL, so a loaded machine stalling it for a
	// few rounds does not lose the lock.
	const ttl = 600 * time.Millisecond
	for _, be := range backends(t, ttl) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			svc := newService(t, be.newStore(t), &rec, Config{
				Renew: true, RenewInterval: ttl / 10, SweepInterval: 50 * time.Millisecond,
				DisconnectGrace: time.Hour,
			})
			runService(t, svc)
			alice := caller(t, 1, "alice", "admin", "")
			sess := svc.Connect("sock-1", alice)
			if a := sess.Acquire(bg, payload("member", "m1")); !a.Success {
				t.Fatalf("acquire: %+v", a)
			}
			// Without renewal it would be gone after one TTL.
			time.Sleep(4 * ttl)
			if c := sess.Check(bg, payload("member", "m1")); !c.IsLocked {
				t.Fatalf("renewed lock lost: %+v", c)
			}
			if ups := rec.take(); len(ups) != 1 {
				t.Fatalf("updates while renewing: %v, want only the acquire", ups)
			}
			sess.Disconnect()
			waitFor(t, 10*time.Second, "expiry after disconnect", func() bool { return rec.len() >= 1 })
			if n := rec.len(); n != 1 {
				t.Fatalf("%d updates after disconnect, want the one expiry: %v", n, rec.take())
			}
			if u := wireUpdate(t, rec.take()[0]); u != `lock:update:member:m1 {"isLocked":false,"lockedBy":null}` {
				t.Fatalf("update %s", u)
			}
		})
	}
}

func TestReleaseOnDisconnect(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			const grace = 500 * time.Millisecond
			svc := newService(t, be.newStore(t), &rec, Config{ReleaseOnDisconnect: true, DisconnectGrace: grace})
			runService(t, svc)
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")

			// 1. Gone for good: released after the grace window, announced.
			s1 := svc.Connect("s1", alice)
			s1.Acquire(bg, payload("member", "a"))
			rec.take()
			s1.Disconnect()
			waitFor(t, 10*time.Second, "release after grace", func() bool { return rec.len() == 1 })
			if u := wireUpdate(t, rec.take()[0]); u != `lock:update:member:a {"isLocked":false,"lockedBy":null}` {
				t.Fatalf("update %s", u)
			}
			if c := svc.Check(bg, bob, payload("member", "a")); c.IsLocked {
				t.Fatalf("still locked after release on disconnect: %+v", c)
			}

			// 2. A blip: reconnecting within the grace keeps the lock.
			s2 := svc.Connect("s2", alice)
			s2.Acquire(bg, payload("member", "b"))
			s2.Disconnect()
			if back := svc.Connect("s2", alice); back != s2 {
				t.Fatal("reconnect within grace returned a new session")
			}
			time.Sleep(2 * grace)
			if c := svc.Check(bg, bob, payload("member", "b")); !c.IsLocked {
				t.Fatalf("lock dropped despite reconnect: %+v", c)
			}

			// 3. Another open tab of the same user that also took the lock keeps it.
			tab1, tab2 := svc.Connect("t1", alice), svc.Connect("t2", alice)
			tab1.Acquire(bg, payload("member", "c"))
			tab2.Acquire(bg, payload("member", "c"))
			tab1.Disconnect()
			time.Sleep(2 * grace)
			if c := svc.Check(bg, bob, payload("member", "c")); !c.IsLocked {
				t.Fatalf("lock dropped while another tab holds it: %+v", c)
			}

			// 4. A lock released by hand is not released again for the session.
			s4 := svc.Connect("s4", alice)
			s4.Acquire(bg, payload("member", "d"))
			s4.Release(bg, payload("member", "d"))
			if len(s4.Held()) != 0 {
				t.Fatalf("held after release: %v", s4.Held())
			}
			// Bob takes it; alice's disconnect must not touch bob's lock.
			svc.Acquire(bg, bob, payload("member", "d"))
			rec.take()
			s4.Disconnect()
			time.Sleep(2 * grace)
			if c := svc.Check(bg, bob, payload("member", "d")); !c.IsLocked || *c.LockedBy != "bob" {
				t.Fatalf("bob's lock after alice's disconnect: %+v", c)
			}
			if ups := rec.take(); len(ups) != 0 {
				t.Fatalf("unexpected updates %v", ups)
			}
		})
	}
}

func TestCallerFromClaims(t *testing.T) {
	cases := []struct {
		name    string
		claims  map[string]any
		wantID  string
		member  string
		wantErr bool
	}{
		{"numeric id", map[string]any{"id": float64(1), "username": "admin", "role": "admin"}, `1`, "", false},
		{"string id", map[string]any{"id": "u-1", "username": "x"}, `"u-1"`, "", false},
		{"sub fallback", map[string]any{"sub": "42", "username": "x"}, `42`, "", false},
		{"string id with an integer's digits", map[string]any{"id": "7"}, `7`, "", false},
		{"string id not in canonical form", map[string]any{"id": "07"}, `"07"`, "", false},
		{"id above 2^53 keeps its digits", map[string]any{"id": json.Number("9007199254740993")}, `9007199254740993`, "", false},
		{"string id above 2^53", map[string]any{"id": "9007199254740993"}, `9007199254740993`, "", false},
		{"float id above 2^53 refused", map[string]any{"id": float64(1 << 54)}, ``, "", true},
		{"id wins over sub", map[string]any{"id": float64(7), "sub": "42"}, `7`, "", false},
		{"member id string", map[string]any{"id": float64(7), "memberId": "m-uuid"}, `7`, "m-uuid", false},
		{"member id number", map[string]any{"id": float64(7), "memberId": float64(12)}, `7`, "12", false},
		{"fractional id", map[string]any{"id": 1.5}, ``, "", true},
		{"no id", map[string]any{"username": "x"}, ``, "", true},
		{"empty id", map[string]any{"id": ""}, ``, "", true},
		{"bool id", map[string]any{"id": true}, ``, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CallerFromClaims(tc.claims)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (c.UserID.JSON() != tc.wantID || c.MemberID != tc.member) {
				t.Fatalf("caller %+v, want id %s member %q", c, tc.wantID, tc.member)
			}
		})
	}
}

// TestReleaseOnDisconnectAcrossInstances: two tabs of one user, each on its
// own instance (two Services sharing the store), hold the same lock; the
// first tab leaving for good does not release it, the second does, once.
func TestReleaseOnDisconnectAcrossInstances(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			var recA, recB recorder
			const grace = 300 * time.Millisecond
			cfg := Config{ReleaseOnDisconnect: true, DisconnectGrace: grace}
			a := newService(t, be.newStore(t), &recA, cfg)
			b := newService(t, be.newStore(t), &recB, cfg)
			runService(t, a)
			runService(t, b)
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			res := payload("member", "shared")

			tab1, tab2 := a.Connect("t1", alice), b.Connect("t2", alice)
			if !tab1.Acquire(bg, res).Success || !tab2.Acquire(bg, res).Success {
				t.Fatal("acquire from both tabs")
			}
			recA.take()
			tab1.Disconnect()
			time.Sleep(4 * grace) // well past A's grace: A's session ended
			if c := b.Check(bg, bob, res); !c.IsLocked {
				t.Fatalf("the lock was released while the tab on the other instance holds it: %+v", c)
			}
			if ups := append(recA.take(), recB.take()...); len(ups) != 0 {
				t.Fatalf("announced %v while the other tab holds it", ups)
			}
			tab2.Disconnect()
			waitFor(t, 10*time.Second, "release after the last tab left", func() bool { return recB.len() == 1 })
			if u := wireUpdate(t, recB.take()[0]); u != `lock:update:member:shared {"isLocked":false,"lockedBy":null}` {
				t.Fatalf("update %s", u)
			}
			if c := a.Check(bg, bob, res); c.IsLocked {
				t.Fatalf("still locked after both tabs left: %+v", c)
			}
			time.Sleep(2 * grace)
			if n := recA.len() + recB.len(); n != 0 {
				t.Fatalf("%d more announcements, want the release once", n)
			}
		})
	}
}
