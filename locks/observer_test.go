package locks

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// opRecorder is an Observer keeping "op result" lines and expiry counts.
type opRecorder struct {
	mu      sync.Mutex
	ops     []string
	expired int
	zero    int // operations reported as taking no time
}

func (r *opRecorder) LockOperation(op, result string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op+" "+result)
	if took <= 0 {
		r.zero++
	}
}

func (r *opRecorder) LocksExpired(n int) {
	r.mu.Lock()
	r.expired += n
	r.mu.Unlock()
}

func (r *opRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

// TestObserverResults: every operation is reported once with its result,
// on both stores; Held counts the live locks across instances; an expiry
// is counted once when announced.
func TestObserverResults(t *testing.T) {
	const ttl = 300 * time.Millisecond
	for _, b := range backends(t, ttl) {
		t.Run(b.name, func(t *testing.T) {
			rec := &opRecorder{}
			a := newService(t, b.newStore(t), nil, Config{Observer: rec})
			other := newService(t, b.newStore(t), nil, Config{Observer: rec})
			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			viewer := caller(t, 3, "vic", "viewer", "")

			steps := []struct {
				do   func()
				want string
			}{
				{func() { a.Acquire(bg, alice, payload("member", "m1")) }, "acquire taken"},
				{func() { other.Acquire(bg, bob, payload("member", "m1")) }, "acquire held_by_other"},
				{func() { a.Acquire(bg, alice, payload("member", "m1")) }, "acquire refreshed"},
				{func() { a.Acquire(bg, alice, payload("nope", "m1")) }, "acquire invalid"},
				{func() { a.Acquire(bg, viewer, payload("donation", "d1")) }, "acquire forbidden"},
				{func() { other.Check(bg, bob, payload("member", "m1")) }, "check locked"},
				{func() { other.Release(bg, bob, payload("member", "m1")) }, "release not_owner"},
				{func() { a.Release(bg, alice, payload("member", "m1")) }, "release released"},
				{func() { a.Release(bg, alice, payload("member", "m1")) }, "release was_free"},
				{func() { a.Check(bg, alice, payload("member", "m1")) }, "check free"},
				{func() { a.Check(bg, alice, []byte(`{}`)) }, "check invalid"},
			}
			for _, s := range steps {
				s.do()
				if got := rec.take(); !slices.Equal(got, []string{s.want}) {
					t.Fatalf("reported %q, want [%q]", got, s.want)
				}
			}
			if rec.zero != 0 {
				t.Errorf("%d operations reported taking no time", rec.zero)
			}

			a.Acquire(bg, alice, payload("member", "m2"))
			other.Acquire(bg, bob, payload("member", "m3"))
			rec.take()
			for _, svc := range []*Service{a, other} {
				if n, err := svc.Held(bg); err != nil || n != 2 {
					t.Errorf("Held: %d, %v; want the 2 locks of both instances", n, err)
				}
			}

			// Both expire; the two instances sweep, each expiry is counted once.
			time.Sleep(ttl + 50*time.Millisecond)
			if n, err := a.Held(bg); err != nil || n != 0 {
				t.Errorf("Held after the TTL: %d, %v; want 0", n, err)
			}
			for _, svc := range []*Service{a, other, a} {
				if _, err := svc.SweepOnce(bg); err != nil {
					t.Fatal(err)
				}
			}
			rec.mu.Lock()
			expired := rec.expired
			rec.mu.Unlock()
			if expired != 2 {
				t.Errorf("expiries counted %d, want 2", expired)
			}
		})
	}
}

// TestObserverStoreDown: with the store gone, requests are reported
// unavailable.
func TestObserverStoreDown(t *testing.T) {
	b := backends(t, time.Minute)[1]
	rec := &opRecorder{}
	svc := newService(t, b.newStore(t), nil, Config{Observer: rec, OpTimeout: 300 * time.Millisecond})
	if err := b.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	svc.Acquire(bg, caller(t, 1, "alice", "admin", ""), payload("member", "m1"))
	svc.Check(bg, caller(t, 1, "alice", "admin", ""), payload("member", "m1"))
	if got := rec.take(); !slices.Equal(got, []string{"acquire unavailable", "check unavailable"}) {
		t.Errorf("reported %q with Redis down", got)
	}
	if _, err := svc.Held(bg); err == nil || !strings.Contains(err.Error(), "count held locks") {
		t.Errorf("Held with Redis down: %v", err)
	}
}
