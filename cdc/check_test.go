package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/pgtest"
)

// findingsOf lists the findings of severity sev as "check: message".
func findingsOf(fs []Finding, sev Severity) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == sev {
			out = append(out, f.Check+": "+f.Message)
		}
	}
	return out
}

// wantFinding fails unless fs holds one finding of check with severity
// sev whose message contains msg (and fix, when given).
func wantFinding(t *testing.T, fs []Finding, check string, sev Severity, msg, fix string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check && f.Severity == sev && strings.Contains(f.Message, msg) && strings.Contains(f.Fix, fix) {
			return f
		}
	}
	t.Fatalf("no %s %s finding with %q (fix %q) among:\n%s", sev, check, msg, fix, dumpFindings(fs))
	return Finding{}
}

func dumpFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s: %s | fix: %s\n", f.Severity, f.Check, f.Subject, f.Message, f.Fix)
	}
	return b.String()
}

// TestCheckHealthy: a database Setup prepared has no problem and one
// warning (max_slot_wal_keep_size unlimited on the shared test server);
// Check changes nothing.
func TestCheckHealthy(t *testing.T) {
	dsn, _ := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY, secret text)")
	cfg := testConfig(t, dsn, "items(id)")
	ctx := context.Background()

	// Before Setup: walcast would create the publication and the slot.
	fs := Check(ctx, cfg)
	if p := findingsOf(fs, SeverityProblem); len(p) != 0 {
		t.Fatalf("problems before setup: %q", p)
	}
	wantFinding(t, fs, CheckPublication, SeverityOK, "walcast creates it at start", "")
	wantFinding(t, fs, CheckSlot, SeverityOK, "walcast creates it at start", "")
	if n := queryCount(t, dsn, "SELECT count(*) FROM pg_publication") + queryCount(t, dsn, fmt.Sprintf("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'", cfg.Slot)); n != 0 {
		t.Fatalf("Check created %d publication or slot", n)
	}

	mustSetup(t, cfg)
	fs = Check(ctx, cfg)
	if p := findingsOf(fs, SeverityProblem); len(p) != 0 {
		t.Fatalf("problems after setup: %q", p)
	}
	if w := findingsOf(fs, SeverityWarning); len(w) != 1 || !strings.Contains(w[0], "max_slot_wal_keep_size is unlimited") {
		t.Errorf("warnings %q, want the unlimited max_slot_wal_keep_size", w)
	}
	for _, c := range []string{CheckConnection, CheckWALLevel, CheckReplicationRole, CheckReplicationConnection, CheckTable, CheckSelect} {
		wantFinding(t, fs, c, SeverityOK, "", "")
	}
	wantFinding(t, fs, CheckPublication, SeverityOK, "publishes the configured tables and columns", "")
	wantFinding(t, fs, CheckSlot, SeverityOK, "behind, keeps", "")
}

func queryCount(t *testing.T, dsn, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestCheckProblems: each problem walcast refuses to start on, provoked
// in a real PostgreSQL, is reported with what fixes it.
func TestCheckProblems(t *testing.T) {
	ctx := context.Background()
	t.Run("cannot connect", func(t *testing.T) {
		dsn, _ := newDB(t, srv, "")
		cfg := testConfig(t, strings.Replace(dsn, "://", "://nobody_here@", 1))
		fs := Check(ctx, cfg)
		if len(fs) != 1 {
			t.Fatalf("findings after a failed connection:\n%s", dumpFindings(fs))
		}
		wantFinding(t, fs, CheckConnection, SeverityProblem, "cannot connect", "pg_hba.conf")
	})
	t.Run("table problems", func(t *testing.T) {
		dsn, _ := newDB(t, srv, `CREATE TABLE nokey (a int); CREATE TABLE ok (id int PRIMARY KEY, x text)`)
		fs := Check(ctx, testConfig(t, dsn, "nokey", "ok(x)", "missing"))
		wantFinding(t, fs, CheckTable, SeverityProblem, "has no replica identity", "ADD PRIMARY KEY")
		wantFinding(t, fs, CheckTable, SeverityProblem, "leaves out replica identity column(s) id", "add id")
		wantFinding(t, fs, CheckTable, SeverityProblem, "public.missing does not exist", "")
	})
	t.Run("role without replication and SELECT", func(t *testing.T) {
		dsn, _ := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
		db := pgtest.DatabaseName(dsn)
		role := "plain_" + db
		if err := srv.CreateRole(ctx, role, false); err != nil {
			t.Fatal(err)
		}
		fs := Check(ctx, testConfig(t, srv.ConnStringAs(role, db), "items"))
		wantFinding(t, fs, CheckReplicationRole, SeverityProblem, "may not use replication", "ALTER ROLE")
		wantFinding(t, fs, CheckSelect, SeverityProblem, "may not SELECT \"public\".\"items\"", "GRANT SELECT ON \"public\".\"items\" TO")
		wantFinding(t, fs, CheckPublication, SeverityProblem, "may not create it", `CREATE PUBLICATION "walcast" FOR TABLE "public"."items"`)
		for _, f := range fs {
			if f.Check == CheckReplicationConnection {
				t.Errorf("a replication connection was tried for a role that may not replicate: %+v", f)
			}
		}
	})
	t.Run("publication differs", func(t *testing.T) {
		dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)")
		mustExec(t, conn, `CREATE PUBLICATION walcast FOR TABLE other WITH (publish = 'insert')`)
		fs := Check(ctx, testConfig(t, dsn, "items"))
		f := wantFinding(t, fs, CheckPublication, SeverityProblem, "table public.items is not published", `ALTER PUBLICATION "walcast" SET TABLE "public"."items"`)
		for _, want := range []string{"does not publish update, delete, truncate", "table public.other is published but not configured"} {
			if !strings.Contains(f.Message, want) {
				t.Errorf("publication finding lacks %q: %s", want, f.Message)
			}
		}
	})
	t.Run("slot lost", func(t *testing.T) {
		dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
		cfg := testConfig(t, dsn, "items")
		mustSetup(t, cfg)
		mustExec(t, conn, "SELECT pg_drop_replication_slot($1)", cfg.Slot)
		f := wantFinding(t, Check(ctx, cfg), CheckSlot, SeverityProblem, "is gone: changes made since were lost", "")
		if !errors.Is(f.Err, ErrSlotLost) {
			t.Errorf("lost slot finding carries %v, want ErrSlotLost", f.Err)
		}
		cfg.RecreateSlot = true
		wantFinding(t, Check(ctx, cfg), CheckSlot, SeverityWarning, "walcast creates it again and tells clients to refetch", "")
	})
	t.Run("slot of another plugin", func(t *testing.T) {
		dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
		cfg := testConfig(t, dsn, "items")
		mustExec(t, conn, "SELECT pg_create_logical_replication_slot($1, 'test_decoding')", cfg.Slot)
		t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", cfg.Slot) })
		wantFinding(t, Check(ctx, cfg), CheckSlot, SeverityProblem, `is not a pgoutput slot of database`, "pg_drop_replication_slot")
	})
}

// TestCheckServerSettings: a server without wal_level logical, with every
// replication slot taken, and a slot invalidated past
// max_slot_wal_keep_size.
func TestCheckServerSettings(t *testing.T) {
	ctx := context.Background()
	t.Run("wal_level replica", func(t *testing.T) {
		s, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"wal_level": "replica", "max_slot_wal_keep_size": "'1GB'"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dsn, _ := newDB(t, s, "CREATE TABLE items (id int PRIMARY KEY)")
		fs := Check(ctx, testConfig(t, dsn, "items"))
		wantFinding(t, fs, CheckWALLevel, SeverityProblem, `wal_level is "replica"`, "ALTER SYSTEM SET wal_level = logical")
		wantFinding(t, fs, CheckKeepSize, SeverityOK, "max_slot_wal_keep_size is 1GB", "")
	})
	t.Run("slots taken, then one invalidated", func(t *testing.T) {
		s, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"max_replication_slots": "1", "max_slot_wal_keep_size": "'1MB'"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dsn, conn := newDB(t, s, "CREATE TABLE items (id int PRIMARY KEY, pad text)")
		mustExec(t, conn, "SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')")
		cfg := testConfig(t, dsn, "items")
		wantFinding(t, Check(ctx, cfg), CheckSlot, SeverityProblem, "all 1 replication slots (max_replication_slots) are taken", "max_replication_slots = 2")

		// The other slot, unread, falls past max_slot_wal_keep_size and is
		// invalidated at a checkpoint.
		cfg.Slot = "someone_else"
		for range 3 {
			mustExec(t, conn, "INSERT INTO items SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g ON CONFLICT (id) DO UPDATE SET pad = EXCLUDED.pad || 'y'")
			mustExec(t, conn, "SELECT pg_switch_wal()")
			mustExec(t, conn, "CHECKPOINT")
		}
		f := wantFinding(t, Check(ctx, cfg), CheckSlot, SeverityProblem, "wal_status lost", "pg_drop_replication_slot('someone_else')")
		if !errors.Is(f.Err, ErrSlotInvalidated) {
			t.Errorf("invalidated slot finding carries %v, want ErrSlotInvalidated", f.Err)
		}
	})
}
