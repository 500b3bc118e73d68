package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// checkReport is walcast check --json's output.
type checkReport struct {
	OK       bool `json:"ok"`
	Problems int  `json:"problems"`
	Warnings int  `json:"warnings"`
	Findings []struct {
		Check    string `json:"check"`
		Subject  string `json:"subject"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
		Fix      string `json:"fix"`
	} `json:"findings"`
}

// runCheck runs the binary's check and returns its exit status and what
// it printed on stdout (the report); stderr holds only log lines.
func runCheck(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, walcastBin, append([]string{"check"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		if ee.ExitCode() != 1 {
			t.Logf("walcast check exited %d: %s", ee.ExitCode(), stderr.String())
		}
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("walcast check: %v\n%s", err, stderr.String())
	return 0, ""
}

func checkJSON(t *testing.T, env []string, args ...string) (int, checkReport) {
	t.Helper()
	code, out := runCheck(t, env, append([]string{"--json"}, args...)...)
	var r checkReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("walcast check --json (exit %d) printed no JSON report: %v\n%s", code, err, out)
	}
	return code, r
}

// has reports whether r holds a finding of check with severity whose
// message and fix contain msg and fix.
func (r checkReport) has(check, severity, msg, fix string) bool {
	for _, f := range r.Findings {
		if f.Check == check && f.Severity == severity && strings.Contains(f.Message, msg) && strings.Contains(f.Fix, fix) {
			return true
		}
	}
	return false
}

func (r checkReport) String() string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %-7s %-22s %s | %s\n", f.Severity, f.Check, f.Message, f.Fix)
	}
	return b.String()
}

// aclUser makes a Redis ACL user with rules and returns its REDIS_URL.
func aclUser(t *testing.T, rs *redistest.Server, name string, rules ...any) string {
	t.Helper()
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer admin.Close()
	if err := admin.Do(context.Background(), append([]any{"acl", "setuser", name, "on", ">pw"}, rules...)...).Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("redis://%s:pw@%s", name, rs.Addr())
}

// TestCheckCommand: walcast check, run as the binary against a real
// PostgreSQL and Redis, finds nothing wrong with a database and Redis user
// walcast can use (exit 0, nothing created), and reports each problem it
// can be shown with what fixes it (exit 1).
func TestCheckCommand(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	good := aclUser(t, rs, "walcast", "~socket.io*", "~walcast:*", "~lock:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous")
	dsn := newDB(t)
	slot := uniqueSlot()
	env := []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + testSecret, "REDIS_URL=" + good, "WALCAST_SLOT=" + slot}

	code, out := runCheck(t, env)
	if code != 0 || !strings.Contains(out, "Nothing stops walcast from starting") {
		t.Fatalf("a usable database and Redis user: exit %d\n%s", code, out)
	}
	code, r := checkJSON(t, env)
	if code != 0 || !r.OK || r.Problems != 0 {
		t.Fatalf("--json: exit %d, %+v\n%s", code, r, r)
	}
	for _, want := range [][2]string{
		{"connection", "connected"}, {"wal_level", "logical"}, {"replication_role", "may use replication"},
		{"replication_connection", "works"}, {"select", "may SELECT every table"}, {"routing", "all in the database"},
		{"publication", "walcast creates it at start"}, {"slot", "walcast creates it at start"},
		{"redis", "answers (streams adapter)"}, {"redis_access", `user "walcast" may run everything`},
	} {
		if !r.has(want[0], "ok", want[1], "") {
			t.Errorf("no ok %s finding with %q:\n%s", want[0], want[1], r)
		}
	}
	if !r.has("max_slot_wal_keep_size", "warning", "unlimited", "ALTER SYSTEM SET max_slot_wal_keep_size") {
		t.Errorf("no warning about the unlimited max_slot_wal_keep_size:\n%s", r)
	}
	if n := queryInt(t, dsn, "SELECT count(*) FROM pg_publication") + queryInt(t, dsn, fmt.Sprintf("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'", slot)); n != 0 {
		t.Errorf("walcast check created %d publication or slot", n)
	}
	if n, err := redis.NewClient(&redis.Options{Addr: rs.Addr()}).DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("walcast check left %d Redis keys (%v)", n, err)
	}

	t.Run("Redis user without walcast's keys", func(t *testing.T) {
		limited := aclUser(t, rs, "limited", "~app:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous")
		code, r := checkJSON(t, append(env, "REDIS_URL="+limited))
		if code != 1 || r.OK {
			t.Fatalf("exit %d ok %v, want 1 and false:\n%s", code, r.OK, r)
		}
		for _, what := range []string{"append events to the stream (XADD socket.io)", "run the fenced publish script", "take locks (SET lock:walcast-check:0)"} {
			if !r.has("redis_access", "problem", `Redis user "limited" may not `+what, "ACL SETUSER limited ~socket.io* ~walcast:* ~lock:*") {
				t.Errorf("no problem for %q:\n%s", what, r)
			}
		}
	})
	t.Run("pub/sub adapter without its pattern", func(t *testing.T) {
		nopattern := aclUser(t, rs, "nopattern", "~socket.io*", "~walcast:*", "~lock:*", "&socket.io*", "+@all", "-@dangerous")
		code, r := checkJSON(t, append(env, "REDIS_URL="+nopattern, "WALCAST_REDIS_ADAPTER=pubsub"))
		if code != 1 || r.Problems != 1 || !r.has("redis_access", "problem", "may not hear broadcasts (PSUBSCRIBE socket.io#/#*)", "&socket.io#/#*") {
			t.Fatalf("exit %d, want 1 with the PSUBSCRIBE pattern as the one problem:\n%s", code, r)
		}
	})
	t.Run("Redis unreachable", func(t *testing.T) {
		code, r := checkJSON(t, append(env, fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d", freePort(t))))
		if code != 1 || !r.has("redis", "problem", "Redis does not answer", "check REDIS_URL") {
			t.Fatalf("exit %d:\n%s", code, r)
		}
	})
	t.Run("routing against the schema, settings", func(t *testing.T) {
		code, r := checkJSON(t, []string{"DATABASE_URL=" + dsn, "WALCAST_SLOT=" + slot}, "--config", "testdata/routing-unknown-table.yaml")
		if code != 1 || !r.has("routing", "problem", "pledges", "") || !r.has("settings", "problem", "--jwt-secret (JWT_SECRET) is required", "") {
			t.Fatalf("exit %d, want the unknown table and the missing secret:\n%s", code, r)
		}
		if !r.has("connection", "ok", "connected", "") || !r.has("wal_level", "ok", "", "") {
			t.Errorf("the database was not checked after the settings problem:\n%s", r)
		}
	})
	t.Run("audience needing the old row", func(t *testing.T) {
		db := newDB(t)
		pgtest.Exec(t, db, "ALTER TABLE donations REPLICA IDENTITY DEFAULT")
		code, r := checkJSON(t, []string{"DATABASE_URL=" + db, "JWT_SECRET=" + testSecret, "WALCAST_SLOT=" + slot})
		if code != 0 || !r.has("audience", "warning", "lacks REPLICA IDENTITY FULL", "ALTER TABLE public.donations REPLICA IDENTITY FULL") {
			t.Fatalf("exit %d, want 0 with the audience warning:\n%s", code, r)
		}
	})
	t.Run("database role without rights", func(t *testing.T) {
		role := "norights_" + fmt.Sprint(time.Now().UnixNano()%1e6)
		pgtest.Exec(t, dsn, fmt.Sprintf("CREATE ROLE %s LOGIN", role))
		t.Cleanup(func() { pgtest.Exec(t, dsn, "DROP ROLE IF EXISTS "+role) })
		roleDSN := strings.Replace(dsn, "://", "://"+role+"@", 1)
		if i := strings.Index(dsn, "@"); i > 0 {
			roleDSN = dsn[:strings.Index(dsn, "://")+3] + role + dsn[i:]
		}
		code, out := runCheck(t, append(env, "DATABASE_URL="+roleDSN))
		for _, want := range []string{"may not use replication", "ALTER ROLE", "may not SELECT", "GRANT SELECT ON", "may not create it", "CREATE PUBLICATION"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if code != 1 || !strings.Contains(out, "problem(s) stop walcast from starting") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("slot lost", func(t *testing.T) {
		db := newDB(t)
		in := startWalcast(t, db, serveOpts{})
		if err := in.stop(); err != nil {
			t.Fatal(err)
		}
		dropSlot(t, db, in.Slot)
		env := []string{"DATABASE_URL=" + db, "JWT_SECRET=" + testSecret, "WALCAST_SLOT=" + in.Slot}
		code, r := checkJSON(t, env)
		if code != 1 || !r.has("slot", "problem", "is gone", "--recreate-slot") {
			t.Fatalf("exit %d:\n%s", code, r)
		}
		code, r = checkJSON(t, env, "--recreate-slot")
		if code != 0 || !r.has("slot", "warning", "tells clients to refetch", "") {
			t.Fatalf("with --recreate-slot: exit %d:\n%s", code, r)
		}
	})
}
