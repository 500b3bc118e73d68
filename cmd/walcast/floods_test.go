package main

import (
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
)

// TestFloodsAndNoise: a bulk UPDATE is one RESYNC, a login is nothing.
func TestFloodsAndNoise(t *testing.T) {
	dsn := newDB(t)
	// Written before walcast starts, so none of it is streamed.
	pgtest.Exec(t, dsn,
		`INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'B')`,
		`INSERT INTO donations (member_id, amount, fund) SELECT 'm-1', g, 'Tithes' FROM generate_series(1, 5000) g`,
		`INSERT INTO users (username, password_hash, role) VALUES ('old', 'x', 'viewer')`, // id 1
	)
	in := startWalcast(t, dsn, serveOpts{})
	const admin, viewer = 0, 1
	c := connect(t, in, mint(t, 9001, "adm", "super_admin", nil, time.Hour), mint(t, 9002, "v", "viewer", "m-2", time.Hour))

	pgtest.Exec(t, dsn, `UPDATE donations SET notes = 'bulk'`)
	barrier(t, dsn, c, admin, viewer)
	for _, i := range []int{admin, viewer} {
		wantPayloads(t, "after a 5,000-row UPDATE", withoutBarriers(events(c, i, "")), [][2]string{{"donation:update", `{"type":"RESYNC"}`}})
	}

	// TRUNCATE is a RESYNC too; a flat-row table (settings) sends nothing
	// for DELETE or TRUNCATE, as there is no envelope to say it in.
	pgtest.Exec(t, dsn, `TRUNCATE donations`)
	barrier(t, dsn, c, admin)
	pgtest.Exec(t, dsn, `DELETE FROM settings`, `INSERT INTO settings (name) VALUES ('after-delete')`)
	waitEvents(t, c, admin, "settings:update", 3, 10*time.Second) // two barriers, then this one
	wantPayloads(t, "after TRUNCATE donations and DELETE FROM settings", withoutBarriers(events(c, admin, "")), [][2]string{
		{"donation:update", `{"type":"RESYNC"}`},
		{"donation:update", `{"type":"RESYNC"}`},
		{"settings:update", `{"name":"after-delete","address":null,"phone":null,"email":null,"taxId":null}`},
	})

	// A user created while walcast runs, then logins: only the columns
	// outside the allow-list change, so nothing goes out.
	pgtest.Exec(t, dsn, `INSERT INTO users (username, password_hash, role, created_at) VALUES ('new', 'x', 'viewer', '2026-01-01T00:00:00Z')`) // id 2
	waitEvents(t, c, admin, "user:update", 1, 10*time.Second)
	pgtest.Exec(t, dsn,
		`UPDATE users SET last_login_at = now(), failed_login_attempts = 0 WHERE id = 2`,
		`UPDATE users SET last_login_at = now(), failed_login_attempts = 0, updated_at = now() WHERE id = 2`,
		`UPDATE users SET failed_login_attempts = failed_login_attempts + 1 WHERE id = 2`,
	)
	barrier(t, dsn, c, admin)
	if got := events(c, admin, "user:update"); len(got) != 1 {
		t.Errorf("login-only UPDATEs of a user walcast has seen sent user:update: %s", dumpLines(c))
	}

	// A user that existed before walcast started: walcast has no memory of
	// what it last sent for it and, without REPLICA IDENTITY FULL on users,
	// no old row, so its first login after start goes out once (a known
	// limitation, reported); from then on logins send nothing.
	pgtest.Exec(t, dsn, `UPDATE users SET last_login_at = now(), failed_login_attempts = 0 WHERE id = 1`)
	barrier(t, dsn, c, admin)
	pgtest.Exec(t, dsn, `UPDATE users SET last_login_at = now(), failed_login_attempts = 0 WHERE id = 1`)
	barrier(t, dsn, c, admin)
	if got := events(c, admin, "user:update"); len(got) != 2 {
		t.Errorf("logins of a user that existed before walcast started: %d user:update events, want 2 (its first login only):\n%s", len(got), dumpLines(c))
	}
}

// TestRevocation: the WAL cuts a deleted, demoted or re-membered user's
// sockets at once, and nobody else's; the cut closes the connection, so the
// official client reconnects by itself and hears the contract's
// connect_error "Authentication error: Invalid token" (a DISCONNECT would
// leave it silently offline). GraceGiver's locked_until, which anyone sets
// for any username with five wrong passwords, cuts nobody.
func TestRevocation(t *testing.T) {
	dsn := newDB(t)
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'A'), ('m-2', 'B', 'B')`,
		`INSERT INTO users (username, password_hash, role, member_id) VALUES ('a', 'x', 'viewer', NULL), ('b', 'x', 'manager', NULL), ('c', 'x', 'viewer', NULL), ('d', 'x', 'viewer', NULL), ('e', 'x', 'viewer', 'm-1')`)
	in := startWalcast(t, dsn, serveOpts{})
	c := connectWith(t, in, sioclient.ClientConfig{Reconnection: true},
		mint(t, 1, "a", "viewer", nil, time.Hour),   // 0: its role changes
		mint(t, 1, "a", "viewer", nil, time.Hour),   // 1: a's second tab
		mint(t, 2, "b", "manager", nil, time.Hour),  // 2: deleted
		mint(t, 3, "c", "viewer", nil, time.Hour),   // 3: five wrong passwords: locked_until set
		mint(t, 4, "d", "viewer", nil, time.Hour),   // 4: unaffected
		mint(t, 5, "e", "viewer", "m-1", time.Hour), // 5: its member changes
	)
	for _, step := range []struct {
		sql     string
		sockets []int
	}{
		{`UPDATE users SET role = 'admin' WHERE id = 1`, []int{0, 1}},
		{`DELETE FROM users WHERE id = 2`, []int{2}},
		{`UPDATE users SET member_id = 'm-2' WHERE id = 5`, []int{5}},
	} {
		pgtest.Exec(t, dsn, step.sql)
		for _, i := range step.sockets {
			waitCutToInvalidToken(t, c, i, 10*time.Second)
		}
	}
	pgtest.Exec(t, dsn, `UPDATE users SET locked_until = now() + interval '15 minutes', failed_login_attempts = 5 WHERE id = 3`)
	// d's own row changing harmlessly keeps it connected.
	pgtest.Exec(t, dsn, `UPDATE users SET email = 'd@example.org' WHERE id = 4`)
	barrier(t, dsn, c, 3, 4)
	for _, i := range []int{3, 4} {
		if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i }); n != 0 {
			t.Errorf("socket %d was cut:\n%s", i, dumpLines(c))
		}
	}
	// The cut sockets stay refused: each connected once.
	for _, i := range []int{0, 1, 2, 5} {
		if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }); n != 1 {
			t.Errorf("socket %d connected %d times, want once:\n%s", i, n, dumpLines(c))
		}
	}
	// Tokens that say what the rows say now connect.
	connect(t, in, mint(t, 1, "a", "admin", nil, time.Hour), mint(t, 5, "e", "viewer", "m-2", time.Hour), mint(t, 3, "c", "viewer", nil, time.Hour))
}
