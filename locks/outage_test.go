package locks

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/redistest"
)

// TestRedisOutage: redis-server is SIGKILLed mid-run. Every lock event
// fails closed with an error ack and announces nothing; once the same
// server is back on its port, the same Service recovers by itself,
// including re-sending its Lua scripts to the fresh server.
func TestRedisOutage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      redistest.Options
		keepsLock bool // alice's lock survives the crash
	}{
		{"no persistence", redistest.Options{}, false},
		{"appendfsync always", redistest.Options{AppendOnly: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Run(t, tc.opts)
			var rec recorder
			svc := newService(t, NewRedisStore(redisClient(t, srv), time.Minute), &rec,
				Config{OpTimeout: time.Second, SweepInterval: 50 * time.Millisecond})
			ctx, cancel := context.WithCancel(bg)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); _ = svc.Run(ctx) }()
			defer func() { cancel(); wg.Wait() }()

			alice := caller(t, 1, "alice", "admin", "")
			bob := caller(t, 2, "bob", "admin", "")
			p := payload("member", "m1")
			if got := wire(t, svc.Acquire(bg, alice, p)); got != `{"success":true,"lockedBy":"alice"}` {
				t.Fatalf("acquire before outage: %s", got)
			}
			rec.take()

			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			const down = `{"success":false,"error":"lock service unavailable"}`
			outageStart := time.Now()
			for i := 0; i < 3; i++ {
				for _, c := range []Caller{alice, bob} {
					if got := wire(t, svc.Acquire(bg, c, p)); got != down {
						t.Fatalf("acquire during outage: %s", got)
					}
					if got := wire(t, svc.Acquire(bg, c, payload("member", "free"))); got != down {
						t.Fatalf("acquire of a free lock during outage: %s", got)
					}
					if got := wire(t, svc.Release(bg, c, p)); got != down {
						t.Fatalf("release during outage: %s", got)
					}
					if got := wire(t, svc.Check(bg, c, p)); got != `{"isLocked":false,"error":"lock service unavailable"}` {
						t.Fatalf("check during outage: %s", got)
					}
				}
			}
			if ups := rec.take(); len(ups) != 0 {
				t.Fatalf("announced %v during the outage", ups)
			}
			t.Logf("24 failed acks during the outage took %v", time.Since(outageStart))
			restartStart := time.Now()

			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			// The client reconnects on its own; poll with a read-only call.
			waitFor(t, 10*time.Second, "lock service to recover", func() bool {
				return svc.Check(bg, bob, p).Error == ""
			})
			t.Logf("recovered %v after the restart began", time.Since(restartStart))
			if tc.keepsLock {
				if got := wire(t, svc.Acquire(bg, bob, p)); got != `{"success":false,"lockedBy":"alice"}` {
					t.Fatalf("bob's acquire after restart: %s", got)
				}
				if got := wire(t, svc.Release(bg, alice, p)); got != `{"success":true}` {
					t.Fatalf("alice's release after restart: %s", got)
				}
			}
			if got := wire(t, svc.Acquire(bg, bob, p)); got != `{"success":true,"lockedBy":"bob"}` {
				t.Fatalf("acquire after recovery: %s", got)
			}
			if got := wire(t, svc.Release(bg, alice, p)); got != `{"success":false,"lockedBy":"bob"}` {
				t.Fatalf("non-owner release after recovery: %s", got)
			}
			if got := wire(t, svc.Release(bg, bob, p)); got != `{"success":true}` {
				t.Fatalf("release after recovery: %s", got)
			}
		})
	}
}
