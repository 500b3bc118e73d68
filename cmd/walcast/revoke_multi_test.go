package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/redistest"
)

// TestRevocationAcrossInstances: two instances share the slot and Redis;
// the WAL's account changes, read by the leader, cut the matching sockets
// connected to the standby (and to the leader) with a Socket.IO DISCONNECT,
// whichever Redis adapter carries them, and nobody else's.
func TestRevocationAcrossInstances(t *testing.T) {
	for _, adapter := range []string{"streams", "pubsub"} {
		t.Run(adapter, func(t *testing.T) {
			rs := redistest.Run(t, redistest.Options{})
			dsn := newDB(t)
			execSQLT(t, dsn, `INSERT INTO users (username, password_hash, role) VALUES ('a', 'x', 'viewer'), ('b', 'x', 'manager'), ('c', 'x', 'viewer'), ('d', 'x', 'viewer')`)
			env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_REDIS_ADAPTER=" + adapter}
			leader := startWalcast(t, dsn, serveOpts{env: env})
			standby := startWalcast(t, dsn, serveOpts{slot: leader.Slot, env: env})
			waitReadyz(t, standby, http.StatusOK, `"reader":"standby"`)

			c := connect(t, standby,
				mint(t, 1, "a", "viewer", nil, time.Hour),  // 0: role changes to admin
				mint(t, 1, "a", "viewer", nil, time.Hour),  // 1: a's second tab
				mint(t, 2, "b", "manager", nil, time.Hour), // 2: deleted
				mint(t, 3, "c", "viewer", nil, time.Hour),  // 3: locked out
				mint(t, 4, "d", "viewer", nil, time.Hour),  // 4: unaffected
				mint(t, 1, "a", "admin", nil, time.Hour),   // 5: a's token already carries the new role: stays
			)
			onLeader := connect(t, leader, mint(t, 2, "b", "manager", nil, time.Hour)) // deleted too
			disconnected := func(c *sioclient.Client, i int) sioclient.Line {
				return c.WaitFor(15*time.Second, func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i })
			}
			for _, step := range []struct {
				sql     string
				sockets []int
			}{
				{`UPDATE users SET role = 'admin' WHERE id = 1`, []int{0, 1}},
				{`DELETE FROM users WHERE id = 2`, []int{2}},
				{`UPDATE users SET locked_until = now() + interval '15 minutes', failed_login_attempts = 5 WHERE id = 3`, []int{3}},
			} {
				execSQLT(t, dsn, step.sql)
				for _, i := range step.sockets {
					if l := disconnected(c, i); l.Reason != "io server disconnect" {
						t.Errorf("%s: standby socket %d disconnected with %q, want io server disconnect", step.sql, i, l.Reason)
					}
				}
			}
			if l := disconnected(onLeader, 0); l.Reason != "io server disconnect" {
				t.Errorf("deleted user's socket on the leader disconnected with %q, want io server disconnect", l.Reason)
			}
			// d's own row changing harmlessly (same role) keeps it connected.
			execSQLT(t, dsn, `UPDATE users SET email = 'd@example.org' WHERE id = 4`)
			barrier(t, dsn, c, 4, 5)
			for _, i := range []int{4, 5} {
				if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i }); n != 0 {
					t.Errorf("socket %d should have stayed connected:\n%s", i, dumpLines(c))
				}
			}
			// Nobody reconnected by itself: "io server disconnect" is final.
			for _, i := range []int{0, 1, 2, 3} {
				if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }); n != 1 {
					t.Errorf("socket %d connected %d times, want 1:\n%s", i, n, dumpLines(c))
				}
			}
		})
	}
}

// TestPubSubAdapterDelivers: with --redis-adapter pubsub, a change committed
// while one instance reads the slot reaches the sockets of the standby, once.
func TestPubSubAdapterDelivers(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_REDIS_ADAPTER=pubsub"}
	leader := startWalcast(t, dsn, serveOpts{env: env})
	standby := startWalcast(t, dsn, serveOpts{slot: leader.Slot, env: env})
	waitReadyz(t, standby, http.StatusOK, `"reader":"standby"`)
	onLeader := connect(t, leader, mint(t, 1, "a", "admin", nil, time.Hour))
	onStandby := connect(t, standby, mint(t, 2, "b", "admin", nil, time.Hour), mint(t, 3, "c", "manager", nil, time.Hour))

	execSQLT(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-p', 'P', 'Q')`)
	for _, w := range []struct {
		c *sioclient.Client
		i int
	}{{onLeader, 0}, {onStandby, 0}, {onStandby, 1}} {
		got := waitEvents(t, w.c, w.i, "member:update", 1, 15*time.Second)
		var p struct {
			Type string
			Data struct{ ID string }
		}
		if err := got[0].Arg(0, &p); err != nil || p.Type != "CREATE" || p.Data.ID != "m-p" {
			t.Errorf("socket %d: member:update %s (%v), want CREATE of m-p", w.i, got[0].Raw, err)
		}
	}
	barrier(t, dsn, onStandby, 0, 1)
	for i := range 2 {
		if n := len(events(onStandby, i, "member:update")); n != 1 {
			t.Errorf("standby socket %d got member:update %d times, want 1", i, n)
		}
	}
}
