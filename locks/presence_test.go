package locks

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakePresence is a Presence the test steers: it answers left (or err) and
// counts the questions.
type fakePresence struct {
	mu    sync.Mutex
	left  time.Duration
	err   error
	calls atomic.Int64
}

func (p *fakePresence) set(left time.Duration, err error) {
	p.mu.Lock()
	p.left, p.err = left, err
	p.mu.Unlock()
}

func (p *fakePresence) ask(context.Context) (time.Duration, error) {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.left, p.err
}

func (s *Service) hasSession(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[key] != nil
}

// TestPresenceKeepsLocks: with release on disconnect, a session whose
// presence says its socket lives on elsewhere keeps its locks round after
// round past the grace window (also while the presence cannot be read), and
// they are released, and announced once, when it says the socket is gone.
func TestPresenceKeepsLocks(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			const grace = 100 * time.Millisecond
			svc := newService(t, be.newStore(t), &rec, Config{ReleaseOnDisconnect: true, DisconnectGrace: grace})
			runService(t, svc)
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			p := &fakePresence{left: 50 * time.Millisecond}
			sess := svc.Connect("sock", alice)
			sess.SetPresence(p.ask)
			if a := sess.Acquire(bg, payload("member", "m1")); !a.Success {
				t.Fatalf("acquire: %+v", a)
			}
			rec.take()
			sess.Disconnect()
			waitFor(t, 10*time.Second, "four presence rounds", func() bool { return p.calls.Load() >= 4 })
			if c := svc.Check(bg, bob, payload("member", "m1")); !c.IsLocked {
				t.Fatalf("released while the socket lives on elsewhere: %+v", c)
			}
			p.set(0, errors.New("redis away"))
			n := p.calls.Load()
			waitFor(t, 10*time.Second, "presence asked again after errors", func() bool { return p.calls.Load() >= n+3 })
			if c := svc.Check(bg, bob, payload("member", "m1")); !c.IsLocked {
				t.Fatalf("released while the presence was unknown: %+v", c)
			}
			if ups := rec.take(); len(ups) != 0 {
				t.Fatalf("announced while kept: %v", ups)
			}
			p.set(0, nil)
			waitFor(t, 10*time.Second, "release once gone everywhere", func() bool { return rec.len() >= 1 })
			waitFor(t, 10*time.Second, "session forgotten", func() bool { return !svc.hasSession("sock") })
			if c := svc.Check(bg, bob, payload("member", "m1")); c.IsLocked {
				t.Fatalf("still locked after the session ended everywhere: %+v", c)
			}
			ups := rec.take()
			if len(ups) != 1 || wireUpdate(t, ups[0]) != `lock:update:member:m1 {"isLocked":false,"lockedBy":null}` {
				t.Fatalf("updates %v, want the one release", ups)
			}
		})
	}
}

// TestPresenceComeBack: a session kept for a socket that lives on elsewhere
// is the one a socket with the same key gets when it comes back here; it is
// not released while connected, and released after its final disconnect.
func TestPresenceComeBack(t *testing.T) {
	var rec recorder
	const grace = 100 * time.Millisecond
	svc := newService(t, NewMemoryStore(time.Minute), &rec, Config{ReleaseOnDisconnect: true, DisconnectGrace: grace})
	runService(t, svc)
	alice := caller(t, 1, "alice", "admin", "")
	p := &fakePresence{left: 50 * time.Millisecond}
	sess := svc.Connect("sock", alice)
	sess.SetPresence(p.ask)
	sess.Acquire(bg, payload("member", "m1"))
	rec.take()
	sess.Disconnect()
	waitFor(t, 10*time.Second, "kept away", func() bool { return p.calls.Load() >= 2 })
	if back := svc.Connect("sock", alice); back != sess {
		t.Fatal("coming back did not return the kept session")
	}
	p.set(0, nil)
	n := p.calls.Load()
	time.Sleep(5 * grace) // a negative check: nothing may happen while connected
	if got := p.calls.Load(); got != n {
		t.Fatalf("presence asked %d times while connected", got-n)
	}
	if ups := rec.take(); len(ups) != 0 {
		t.Fatalf("announced while connected: %v", ups)
	}
	sess.Disconnect()
	waitFor(t, 10*time.Second, "release after the final disconnect", func() bool { return rec.len() == 1 })
}

// TestSessionOverlap: a socket that resumes a session may attach before the
// socket it replaces detached; the session stays connected until both left.
func TestSessionOverlap(t *testing.T) {
	var rec recorder
	const grace = 100 * time.Millisecond
	svc := newService(t, NewMemoryStore(time.Minute), &rec, Config{ReleaseOnDisconnect: true, DisconnectGrace: grace})
	runService(t, svc)
	alice := caller(t, 1, "alice", "admin", "")
	oldSock := svc.Connect("sock", alice)
	oldSock.Acquire(bg, payload("member", "m1"))
	rec.take()
	if newSock := svc.Connect("sock", alice); newSock != oldSock {
		t.Fatal("resumed socket got another session")
	}
	oldSock.Disconnect()
	time.Sleep(5 * grace) // a negative check: the new socket is still here
	if svc.Check(bg, alice, payload("member", "m1")); rec.len() != 0 {
		t.Fatalf("released while the resumed socket is connected: %v", rec.take())
	}
	oldSock.Disconnect() // the resumed socket's own disconnect
	waitFor(t, 10*time.Second, "release after both left", func() bool { return rec.len() == 1 })
}

// TestAwayRenewalAndTabs: with Renew on, a session kept for a socket that
// lives on elsewhere has its locks renewed past the TTL, and another tab of
// the same user that also took the lock and left for good does not release
// it.
func TestAwayRenewalAndTabs(t *testing.T) {
	const ttl = 600 * time.Millisecond
	for _, be := range backends(t, ttl) {
		t.Run(be.name, func(t *testing.T) {
			var rec recorder
			const grace = 100 * time.Millisecond
			svc := newService(t, be.newStore(t), &rec, Config{
				ReleaseOnDisconnect: true, DisconnectGrace: grace,
				Renew: true, RenewInterval: ttl / 10, SweepInterval: 50 * time.Millisecond,
			})
			runService(t, svc)
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			p := &fakePresence{left: 100 * time.Millisecond}
			moved := svc.Connect("moved", alice)
			moved.SetPresence(p.ask)
			moved.Acquire(bg, payload("member", "m1"))
			tab := svc.Connect("tab", alice)
			tab.Acquire(bg, payload("member", "m1"))
			rec.take()
			moved.Disconnect()
			tab.Disconnect()
			waitFor(t, 10*time.Second, "the other tab's session ending", func() bool { return !svc.hasSession("tab") })
			// Without renewal the lock would be gone after one TTL.
			n := p.calls.Load()
			waitFor(t, 20*time.Second, "kept for several TTLs", func() bool { return p.calls.Load() >= n+int64(4*ttl/(100*time.Millisecond)) })
			if c := svc.Check(bg, bob, payload("member", "m1")); !c.IsLocked {
				t.Fatalf("kept session's lock lost: %+v", c)
			}
			if ups := rec.take(); len(ups) != 0 {
				t.Fatalf("announced while kept: %v", ups)
			}
			p.set(0, nil)
			waitFor(t, 10*time.Second, "release", func() bool { return rec.len() >= 1 })
			if c := svc.Check(bg, bob, payload("member", "m1")); c.IsLocked {
				t.Fatalf("still locked: %+v", c)
			}
		})
	}
}
