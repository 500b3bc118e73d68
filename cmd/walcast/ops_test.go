package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

func TestHealthAndReady(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	if code, body := in.get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	code, body := in.get("/readyz")
	var r struct {
		Ready  bool   `json:"ready"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || !r.Ready {
		t.Errorf("/readyz = %d %s, want 200 with ready:true", code, body)
	}
}

const msgStandby = "Service unavailable: this walcast instance is standby (another instance reads the replication slot and REDIS_URL is not set)"

// TestStandbyWithoutRedis: a second instance on a taken slot, without
// Redis, is not ready and refuses sockets clearly; it takes over when the
// first one stops.
func TestStandbyWithoutRedis(t *testing.T) {
	dsn := newDB(t)
	first := startWalcast(t, dsn, serveOpts{})
	second := startWalcast(t, dsn, serveOpts{slot: first.Slot, notReady: true})
	waitReadyz(t, second, http.StatusServiceUnavailable, "standby")

	c := sioclient.Start(t, second.URL, sioclient.ClientConfig{Auth: authOf(mint(t, 1, "a", "admin", nil, time.Hour))})
	if l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" || l.Kind == "connect_error" }); l.Kind != "connect_error" || l.Message != msgStandby {
		t.Errorf("socket on the standby: %s, want connect_error %q", l.Raw, msgStandby)
	}

	if err := first.stop(); err != nil {
		t.Fatalf("first instance exit: %v", err)
	}
	waitReadyz(t, second, http.StatusOK, "")
	c2 := connect(t, second, mint(t, 1, "a", "admin", nil, time.Hour))
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-s', 'S', 'S')`)
	waitEvents(t, c2, 0, "member:update", 1, 15*time.Second)
}

// waitReadyz polls /readyz until it answers code with a body containing
// substr.
func waitReadyz(t *testing.T, in *instance, code int, substr string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, body := in.get("/readyz")
		if got == code && strings.Contains(body, substr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz of %s: %d %s, want %d containing %q", in.URL, got, body, code, substr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSIGTERM: walcast exits 0, its sockets are closed, and what it
// delivered is confirmed to PostgreSQL (the final standby status), so the
// next start does not send it again.
func TestSIGTERM(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	c := connect(t, in, mint(t, 1, "a", "admin", nil, time.Hour))
	// Where the transaction's row lies in the WAL, read inside it: a slot
	// confirmed at or past it has acknowledged the transaction (other WAL
	// written later by the server cannot make this flaky).
	delivered := queryInt(t, dsn, `WITH ins AS (INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'A') RETURNING id)
		SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint FROM ins`)
	waitEvents(t, c, 0, "member:update", 1, 10*time.Second)

	if err := in.stop(); err != nil {
		t.Fatalf("walcast exit after SIGTERM: %v, want exit status 0\n%s", err, in.logs.String())
	}
	c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "disconnect" })
	confirmed := queryInt(t, dsn, fmt.Sprintf(`SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = '%s'`, in.Slot))
	if confirmed < delivered {
		t.Errorf("slot confirmed %d after shutdown, below %d where the delivered transaction ended", confirmed, delivered)
	}

	again := startWalcast(t, dsn, serveOpts{slot: in.Slot})
	c2 := connect(t, again, mint(t, 1, "a", "admin", nil, time.Hour))
	barrier(t, dsn, c2, 0)
	if got := withoutBarriers(events(c2, 0, "")); len(got) != 0 {
		t.Errorf("restart re-sent delivered events: %s", dumpLines(c2))
	}
}

// TestTeardown: `walcast teardown` says what it drops, then drops the slot
// and the publication.
func TestTeardown(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{pub: "wc_pub"})
	if err := in.stop(); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
	count := func() (slots, pubs int) {
		return queryInt(t, dsn, fmt.Sprintf(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'`, in.Slot)),
			queryInt(t, dsn, `SELECT count(*) FROM pg_publication WHERE pubname = 'wc_pub'`)
	}
	if s, p := count(); s != 1 || p != 1 {
		t.Fatalf("before teardown: %d slots, %d publications, want 1 and 1", s, p)
	}
	run := func(args ...string) string {
		cmd := exec.Command(walcastBin, append([]string{"teardown", "--slot", in.Slot, "--publication", "wc_pub"}, args...)...)
		cmd.Env = []string{"DATABASE_URL=" + dsn}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("walcast teardown %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("--dry-run")
	wantSaid := fmt.Sprintf("will drop replication slot %q and publication %q", in.Slot, "wc_pub")
	if !strings.Contains(out, wantSaid) {
		t.Errorf("dry run said %q, want it to contain %q", out, wantSaid)
	}
	if s, p := count(); s != 1 || p != 1 {
		t.Fatalf("--dry-run dropped something: %d slots, %d publications left", s, p)
	}
	out = run()
	for _, want := range []string{wantSaid, fmt.Sprintf("dropped replication slot %q", in.Slot), `dropped publication "wc_pub"`} {
		if !strings.Contains(out, want) {
			t.Errorf("teardown said %q, want it to contain %q", out, want)
		}
	}
	if s, p := count(); s != 0 || p != 0 {
		t.Errorf("after teardown: %d slots, %d publications, want none", s, p)
	}
	out = run()
	if !strings.Contains(out, "did not exist") {
		t.Errorf("second teardown said %q, want it to say nothing was there", out)
	}
}

// TestStartupRefusals: the binary exits non-zero, before serving, with a
// message naming the setting at fault.
func TestStartupRefusals(t *testing.T) {
	dsn := newDB(t)
	base := []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + testSecret, "PATH=/usr/bin:/bin"}
	cases := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"unknown flag", []string{"--bogus", "1"}, base, []string{"flag provided but not defined: -bogus"}},
		{"unknown WALCAST_ variable", nil, append(base, "WALCAST_LISTNE=:9"), []string{"unknown environment setting WALCAST_LISTNE", "WALCAST_LISTEN"}},
		{"missing DATABASE_URL", nil, []string{"JWT_SECRET=x"}, []string{"--database-url (DATABASE_URL) is required"}},
		{"secret and public key", []string{"--jwt-public-key", "/nonexistent.pem"}, base, []string{"--jwt-secret and --jwt-public-key contradict each other"}},
		{"routing file with unknown table and column", []string{"--config", "testdata/routing-unknown-table.yaml", "--listen", "127.0.0.1:0"}, base,
			[]string{"routing config does not match the database", "pledges", "nickname", "public.donations", "first_name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(walcastBin, append([]string{"serve"}, tc.args...)...)
			cmd.Env = tc.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("walcast serve did not refuse to start:\n%s", stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("exit: %v, want status 2", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestSecretsStayInTheDatabase: the publication walcast creates carries
// column lists for the allow-listed tables, so users.password_hash and
// password_history never enter the replication stream; the lists still
// cover the replica identity, so the application's UPDATEs keep working.
func TestSecretsStayInTheDatabase(t *testing.T) {
	dsn := newDB(t)
	startWalcast(t, dsn, serveOpts{})
	pub := func(table, column string) int {
		return queryInt(t, dsn, fmt.Sprintf(`SELECT count(*) FROM pg_publication_tables
			WHERE tablename = '%s' AND '%s' = ANY(attnames)`, table, column))
	}
	// locked_until is not read either: GraceGiver's is a login throttle,
	// not a revocation.
	for _, c := range []string{"password_hash", "password_history", "failed_login_attempts", "last_login_at", "locked_until"} {
		if pub("users", c) != 0 {
			t.Errorf("users.%s is published", c)
		}
	}
	for _, c := range []struct{ table, column string }{{"users", "id"}, {"users", "username"}, {"users", "role"}, {"users", "member_id"}, {"settings", "singleton_id"}, {"settings", "tax_id"}, {"donations", "member_id"}} {
		if pub(c.table, c.column) != 1 {
			t.Errorf("%s.%s is not published", c.table, c.column)
		}
	}
	// The application's own writes still work under the column lists.
	pgtest.Exec(t, dsn,
		`INSERT INTO users (username, password_hash) VALUES ('u1', 'h')`,
		`UPDATE users SET password_hash = 'h2', last_login_at = now() WHERE username = 'u1'`,
		`INSERT INTO settings (name) VALUES ('s')`,
		`UPDATE settings SET phone = '1'`,
		`DELETE FROM users WHERE username = 'u1'`)
}

// TestStandbyWithRedis: with REDIS_URL, a second instance on a taken slot is
// ready and its sockets get the reader's events through the Redis stream,
// exactly once; lock announcements cross instances the same way.
func TestStandbyWithRedis(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL()}
	first := startWalcast(t, dsn, serveOpts{env: env})
	second := startWalcast(t, dsn, serveOpts{slot: first.Slot, env: env})
	waitReadyz(t, second, http.StatusOK, "standby")

	admin := mint(t, 1, "a", "admin", nil, time.Hour)
	onFirst := connect(t, first, admin)
	onSecond := connect(t, second, admin, mint(t, 2, "b", "manager", nil, time.Hour))
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-r', 'R', 'R')`)
	for _, c := range []*sioclient.Client{onFirst, onSecond} {
		got := waitEvents(t, c, 0, "member:update", 1, 15*time.Second)
		if !jsonEqual(t, got[0].Args[0], `{"type":"CREATE","data":{"id":"m-r","first_name":"R","last_name":"R","email":null,"telephone":null,"address":null,"city":null,"state":null,"zip":null,"family_id":null,"skills":[],"interests":[],"joined_at":null,"created_at":`+string(mustField(t, got[0].Args[0], "created_at"))+`}}`) {
			t.Errorf("payload = %s", got[0].Args[0])
		}
	}
	// A lock taken through the second instance is announced on the first.
	if ack := onSecond.EmitWithAck(1, 5*time.Second, "lock:acquire", map[string]any{"resourceType": "member", "resourceId": "m-r"}); !strings.Contains(joinRaw(ack.Args), `"success":true`) {
		t.Fatalf("acquire ack = %s", ack.Raw)
	}
	waitEvents(t, onFirst, 0, "lock:update:member:m-r", 1, 10*time.Second)
	// Nothing arrives twice.
	time.Sleep(500 * time.Millisecond)
	for i, c := range []*sioclient.Client{onFirst, onSecond} {
		if n := len(events(c, 0, "member:update")); n != 1 {
			t.Errorf("client %d got member:update %d times", i, n)
		}
	}
}

func mustField(t *testing.T, obj json.RawMessage, name string) json.RawMessage {
	t.Helper()
	var env struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(obj, &env); err != nil {
		t.Fatalf("decode %s: %v", obj, err)
	}
	return env.Data[name]
}

// TestSlotLostAdvice: when the slot walcast streamed through is gone, the
// binary refuses to start and says how to accept the gap.
func TestSlotLostAdvice(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	dropSlot(t, dsn, in.Slot)
	cmd := exec.Command(walcastBin, "serve", "--listen", "127.0.0.1:0", "--slot", in.Slot, "--publication", in.Pub)
	cmd.Env = []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + testSecret, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2:\n%s", err, out)
	}
	for _, want := range []string{"replication slot lost", "--recreate-slot"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
