package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// TestRevocationAcrossInstances: two instances share the slot and Redis;
// the WAL's account changes, read by the leader, cut the matching sockets
// connected to the standby (and to the leader), whichever Redis adapter
// carries them, and nobody else's. The cut closes the connection: the
// official client reconnects by itself, and its handshake, checked on the
// standby against the users the WAL keeps current there, gets the
// contract's connect_error "Authentication error: Invalid token". On the
// standby the cut comes within a second of the commit.
func TestRevocationAcrossInstances(t *testing.T) {
	for _, adapter := range []string{"streams", "pubsub"} {
		t.Run(adapter, func(t *testing.T) {
			rs := redistest.Run(t, redistest.Options{})
			dsn := newDB(t)
			pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'A'), ('m-2', 'B', 'B')`,
				`INSERT INTO users (username, password_hash, role, member_id) VALUES ('a', 'x', 'viewer', NULL), ('b', 'x', 'manager', NULL), ('c', 'x', 'viewer', NULL), ('d', 'x', 'viewer', NULL), ('e', 'x', 'viewer', 'm-1')`)
			env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_REDIS_ADAPTER=" + adapter}
			leader := startWalcast(t, dsn, serveOpts{env: env})
			standby := startWalcast(t, dsn, serveOpts{slot: leader.Slot, env: env})
			waitReadyz(t, standby, http.StatusOK, "standby")

			reconnecting := sioclient.ClientConfig{Reconnection: true}
			c := connectWith(t, standby, reconnecting,
				mint(t, 1, "a", "viewer", nil, time.Hour),   // 0: role changes to admin
				mint(t, 1, "a", "viewer", nil, time.Hour),   // 1: a's second tab
				mint(t, 2, "b", "manager", nil, time.Hour),  // 2: deleted
				mint(t, 3, "c", "viewer", nil, time.Hour),   // 3: locked_until set: not a revocation
				mint(t, 4, "d", "viewer", nil, time.Hour),   // 4: unaffected
				mint(t, 5, "e", "viewer", "m-1", time.Hour), // 5: its member changes
			)
			onLeader := connectWith(t, leader, reconnecting, mint(t, 2, "b", "manager", nil, time.Hour)) // deleted too
			for _, step := range []struct {
				sql     string
				sockets []int
			}{
				{`UPDATE users SET role = 'admin' WHERE id = 1`, []int{0, 1}},
				{`DELETE FROM users WHERE id = 2`, []int{2}},
				{`UPDATE users SET member_id = 'm-2' WHERE id = 5`, []int{5}},
			} {
				pgtest.Exec(t, dsn, step.sql)
				committed := time.Now()
				for _, i := range step.sockets {
					waitCutToInvalidToken(t, c, i, 15*time.Second)
				}
				// Measured to the last cut's line from the Node client, so
				// it includes that process's own output latency.
				if took := time.Since(committed); took > time.Second {
					t.Errorf("%s: the standby's sockets were cut %s after the commit, want within a second", step.sql, took)
				} else {
					t.Logf("%s: standby sockets cut and refused %s after the commit", step.sql, took.Round(time.Millisecond))
				}
			}
			waitCutToInvalidToken(t, onLeader, 0, 15*time.Second)
			pgtest.Exec(t, dsn, `UPDATE users SET locked_until = now() + interval '15 minutes', failed_login_attempts = 5 WHERE id = 3`)
			// d's own row changing harmlessly (same role) keeps it connected.
			pgtest.Exec(t, dsn, `UPDATE users SET email = 'd@example.org' WHERE id = 4`)
			barrier(t, dsn, c, 3, 4)
			for _, i := range []int{3, 4} {
				if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i }); n != 0 {
					t.Errorf("socket %d should have stayed connected:\n%s", i, dumpLines(c))
				}
			}
			// The cut sockets did not get back in: each connected once.
			for _, i := range []int{0, 1, 2, 5} {
				if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }); n != 1 {
					t.Errorf("socket %d connected %d times, want 1:\n%s", i, n, dumpLines(c))
				}
			}
			// A token that says what the row says now connects, on either.
			connect(t, standby, mint(t, 1, "a", "admin", nil, time.Hour), mint(t, 5, "e", "viewer", "m-2", time.Hour))
			connect(t, leader, mint(t, 1, "a", "admin", nil, time.Hour))
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
	waitReadyz(t, standby, http.StatusOK, "standby")
	onLeader := connect(t, leader, mint(t, 1, "a", "admin", nil, time.Hour))
	onStandby := connect(t, standby, mint(t, 2, "b", "admin", nil, time.Hour), mint(t, 3, "c", "manager", nil, time.Hour))

	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-p', 'P', 'Q')`)
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
