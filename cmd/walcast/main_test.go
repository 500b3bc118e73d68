package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/logbuf"
	"github.com/walcast/walcast/internal/loopback"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

// The end-to-end tests run the real binary against one shared PostgreSQL
// (a fresh database per test) and talk to it with the official
// socket.io-client, because the product is the process, not its functions.
var (
	pg         *pgtest.Server
	walcastBin string
)

const testSecret = "test-secret-of-the-gracegiver-app"

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "walcast-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	walcastBin = filepath.Join(dir, "walcast")
	args := []string{"build", "-o", walcastBin}
	if raceEnabled {
		// The server's goroutines are where races would be: run it under
		// the detector whenever the tests are.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build ./cmd/walcast:", err)
		return 1
	}
	// Every test makes its own slot (they are cluster-wide); the default
	// of 10 is too few even with each test dropping its slot at the end.
	opts := pgtest.Options{Settings: map[string]string{"max_replication_slots": "40", "max_wal_senders": "40"}}
	if pg, err = pgtest.Start(opts); err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		return 1
	}
	defer pg.Close()
	return m.Run()
}

// newDB creates a fresh database holding the example GraceGiver schema.
func newDB(t *testing.T) string {
	t.Helper()
	dsn := pg.NewDatabase(t)
	pgtest.Exec(t, dsn, sql.GraceGiverSchema)
	return dsn
}

func queryInt(t testing.TB, dsn, q string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

var slotSeq atomic.Int64

// uniqueSlot names a slot no other test uses: slots are cluster-wide while
// databases are per test.
func uniqueSlot() string { return fmt.Sprintf("walcast_t%d_%d", os.Getpid(), slotSeq.Add(1)) }

// instance is one `walcast serve` subprocess.
type instance struct {
	t   *testing.T
	cmd *exec.Cmd
	URL string // http://127.0.0.1:port
	// AdminURL is the operator listener's (http://127.0.0.1:port), empty
	// when the test turned it off.
	AdminURL string
	DSN      string
	Slot     string
	Pub      string
	logs     *logbuf.Buffer
	done     chan struct{}
	err      error // set when done is closed
}

type serveOpts struct {
	slot, pub string   // default: a unique slot, publication "walcast"
	args      []string // extra flags
	env       []string // extra environment
	notReady  bool     // do not wait for /readyz (e.g. a standby)
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startWalcast runs `walcast serve` on a free port and waits until it
// answers /healthz (and /readyz unless o.notReady). It is stopped with
// SIGTERM when the test ends; its log is printed if the test failed.
func startWalcast(t *testing.T, dsn string, o serveOpts) *instance {
	t.Helper()
	if o.slot == "" {
		o.slot = uniqueSlot()
	}
	if o.pub == "" {
		o.pub = "walcast"
	}
	port := freePort(t)
	args := []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--slot", o.slot, "--publication", o.pub, "--log-level", "debug"}
	adminURL := ""
	if !slices.ContainsFunc(o.args, func(a string) bool { return strings.HasPrefix(a, "--admin-listen") }) {
		// Every instance gets an operator listener of its own (the
		// default address would be shared by all of them).
		adminPort := freePort(t)
		args = append(args, "--admin-listen", fmt.Sprintf("127.0.0.1:%d", adminPort))
		adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	}
	args = append(args, o.args...)
	cmd := exec.Command(walcastBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATABASE_URL=" + dsn, "JWT_SECRET=" + testSecret}, o.env...)
	in := &instance{t: t, cmd: cmd, URL: fmt.Sprintf("http://127.0.0.1:%d", port), AdminURL: adminURL, DSN: dsn, Slot: o.slot, Pub: o.pub, logs: &logbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start walcast: %v", err)
	}
	go func() { in.err = cmd.Wait(); close(in.done) }()
	t.Cleanup(func() {
		in.stop()
		dropSlot(t, dsn, o.slot)
		if t.Failed() {
			t.Logf("walcast %s log:\n%s", in.URL, in.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := in.get("/readyz")
		if code == http.StatusOK || (o.notReady && code != 0) {
			break
		}
		select {
		case <-in.done:
			t.Fatalf("walcast exited before it was ready (%v):\n%s", in.err, in.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("walcast not ready after 60s (last /readyz %d %s):\n%s", code, body, in.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return in
}

// dropSlot drops a test's slot once no walcast reads it: a slot left
// behind pins WAL and counts against max_replication_slots.
func dropSlot(t *testing.T, dsn, slot string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Logf("drop slot %s: %v", slot, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot); err != nil {
		t.Logf("drop slot %s: %v", slot, err)
	}
}

// get returns the status and body of an HTTP GET, or 0 when it failed.
func (in *instance) get(path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(in.URL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (in *instance) stop() error {
	select {
	case <-in.done:
		return in.err
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		in.t.Errorf("walcast did not exit 20s after SIGTERM; killing it")
		_ = in.cmd.Process.Kill()
		<-in.done
	}
	return in.err
}

// mint mints a token shaped like GraceGiver's: {id, username, role,
// memberId, iat, exp}, HS256.
func mint(t testing.TB, id any, username, role string, memberID any, ttl time.Duration) string {
	t.Helper()
	return signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), gracegiverClaims(id, username, role, memberID, ttl))
}

func gracegiverClaims(id any, username, role string, memberID any, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"id": id, "username": username, "role": role, "memberId": memberID, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

func signClaims(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

func authOf(tok string) map[string]any { return map[string]any{"token": tok} }

// connect starts one official-client process with one socket per token and
// fails unless every socket connected. Each token's user gets a users row
// that matches it first (ensureUsers): walcast refuses tokens whose user's
// row is absent or says something else.
func connect(t *testing.T, in *instance, tokens ...string) *sioclient.Client {
	t.Helper()
	return connectWith(t, in, sioclient.ClientConfig{}, tokens...)
}

// connectWith is connect with client options (Reconnection, Transports...).
func connectWith(t *testing.T, in *instance, cfg sioclient.ClientConfig, tokens ...string) *sioclient.Client {
	t.Helper()
	ensureUsers(t, in, tokens...)
	auths := make([]any, len(tokens))
	for i, tok := range tokens {
		auths[i] = authOf(tok)
	}
	cfg.Count, cfg.Auths = len(tokens), auths
	c := sioclient.Start(t, in.URL, cfg)
	for i := range tokens {
		l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool {
			return l.Client == i && (l.Kind == "connect" || l.Kind == "connect_error")
		})
		if l.Kind != "connect" {
			t.Fatalf("socket %d refused: %s", i, l.Raw)
		}
	}
	return c
}

// events returns the events named name (all when "") that socket i got,
// leaving out walcast:offset (connection state recovery's keep-alive) and
// the offset that recovery appends to every broadcast's arguments.
func events(c *sioclient.Client, i int, name string) []sioclient.Line {
	var out []sioclient.Line
	for _, l := range c.Lines() {
		if l.Kind == "event" && l.Client == i && l.Event != "walcast:offset" && (name == "" || l.Event == name) {
			l.Args = withoutOffset(l.Args)
			out = append(out, l)
		}
	}
	return out
}

// withoutOffset drops the recovery offset, a JSON string after the
// contract's single payload argument.
func withoutOffset(args []json.RawMessage) []json.RawMessage {
	if len(args) == 2 && len(args[1]) > 0 && args[1][0] == '"' {
		return args[:1]
	}
	return args
}

// waitEvents waits until socket i got n events named name and returns them.
func waitEvents(t *testing.T, c *sioclient.Client, i int, name string, n int, timeout time.Duration) []sioclient.Line {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := events(c, i, name)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %d: %d %q events after %s, want %d; all lines:\n%s", i, len(got), name, timeout, n, dumpLines(c))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dumpLines(c *sioclient.Client) string {
	var b strings.Builder
	for _, l := range c.Lines() {
		b.Write(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// barrierSeq numbers sentinel settings updates.
var barrierSeq atomic.Int64

// barrier commits a settings change (audience: everyone) and waits until
// every listed socket got it. Events reach a socket in commit order, so
// whatever an earlier transaction sent a socket has arrived by then: the
// "got nothing else" checks need no sleeps.
func barrier(t *testing.T, dsn string, c *sioclient.Client, sockets ...int) {
	t.Helper()
	name := fmt.Sprintf("barrier-%d", barrierSeq.Add(1))
	pgtest.Exec(t, dsn, fmt.Sprintf(`INSERT INTO settings (name) VALUES ('%s')
		ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name`, name))
	for _, i := range sockets {
		c.WaitFor(15*time.Second, func(l sioclient.Line) bool {
			if l.Kind != "event" || l.Client != i || l.Event != "settings:update" {
				return false
			}
			var p struct{ Name string }
			return l.Arg(0, &p) == nil && p.Name == name
		})
	}
}

// withoutBarriers drops the sentinel settings events.
func withoutBarriers(ls []sioclient.Line) []sioclient.Line {
	var out []sioclient.Line
	for _, l := range ls {
		var p struct{ Name string }
		if l.Event == "settings:update" && l.Arg(0, &p) == nil && strings.HasPrefix(p.Name, "barrier-") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// jsonEqual compares JSON by value with types kept: 1 and "1" differ.
func jsonEqual(t testing.TB, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("decode want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// wantPayloads checks events' names and first arguments in order.
func wantPayloads(t *testing.T, who string, got []sioclient.Line, want [][2]string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Event == want[i][0] && len(got[i].Args) == 1 && jsonEqual(t, got[i].Args[0], want[i][1])
	}
	if ok {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: events differ\n got:\n", who)
	for _, l := range got {
		fmt.Fprintf(&b, "   %s %s\n", l.Event, joinRaw(l.Args))
	}
	b.WriteString(" want:\n")
	for _, w := range want {
		fmt.Fprintf(&b, "   %s %s\n", w[0], w[1])
	}
	t.Error(b.String())
}

func joinRaw(args []json.RawMessage) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, string(a))
	}
	return strings.Join(parts, ", ")
}

// tokenUser is what a test token says of its user.
type tokenUser struct {
	id             int64
	username, role string
	memberID       *string
}

func userOf(t testing.TB, tok string) (tokenUser, bool) {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(tok, claims); err != nil {
		t.Fatalf("parse test token: %v", err)
	}
	n, ok := claims["id"].(json.Number)
	if !ok {
		return tokenUser{}, false
	}
	id, err := n.Int64()
	if err != nil {
		return tokenUser{}, false
	}
	u := tokenUser{id: id}
	u.username, _ = claims["username"].(string)
	u.role, _ = claims["role"].(string)
	switch m := claims["memberId"].(type) {
	case string:
		u.memberID = &m
	case json.Number:
		s := m.String()
		u.memberID = &s
	}
	return u, true
}

// addUsers inserts, for each token with a numeric id, a users row matching
// it (and its member's row) when the id has none; a row that exists is
// left as it is, so a test that wants a mismatch writes it. It reports
// whether it inserted anything. Called before walcast starts, the rows are
// in the users table walcast loads; afterwards they reach it through the
// WAL, with the user:update (and member:update) events of an insert.
func addUsers(t testing.TB, dsn string, tokens ...string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	inserted := false
	for _, tok := range tokens {
		u, ok := userOf(t, tok)
		if !ok {
			continue
		}
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM users WHERE id = $1)`, u.id).Scan(&exists); err != nil {
			t.Fatalf("look up user %d: %v", u.id, err)
		}
		if exists {
			continue
		}
		if u.memberID != nil {
			if _, err := conn.Exec(ctx, `INSERT INTO members (id, first_name, last_name) VALUES ($1, 'Member', $1) ON CONFLICT DO NOTHING`, *u.memberID); err != nil {
				t.Fatalf("insert member %s: %v", *u.memberID, err)
			}
		}
		// usernames are unique; a test may give two ids the same one
		var taken bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM users WHERE username = $1)`, u.username).Scan(&taken); err != nil {
			t.Fatalf("look up username %q: %v", u.username, err)
		}
		name := u.username
		if taken {
			name = fmt.Sprintf("%s#%d", u.username, u.id)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO users (id, username, password_hash, role, member_id) VALUES ($1, $2, 'x', $3, $4)`,
			u.id, name, u.role, u.memberID); err != nil {
			t.Fatalf("insert user %d: %v", u.id, err)
		}
		inserted = true
	}
	return inserted
}

// ensureUsers adds the tokens' users (addUsers) and, when it inserted
// any, waits until walcast admits every token: the rows reach its
// handshake check through the WAL.
func ensureUsers(t testing.TB, in *instance, tokens ...string) {
	t.Helper()
	ensureUsersAt(t, in.DSN, []*instance{in}, tokens...)
}

// ensureUsersAt is ensureUsers for several instances sharing a database.
func ensureUsersAt(t testing.TB, dsn string, ins []*instance, tokens ...string) {
	t.Helper()
	if !addUsers(t, dsn, tokens...) {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, in := range ins {
		waitAdmitted(t, in.URL, deadline, tokens...)
	}
}

// waitAdmitted waits until the walcast at url admits every token.
func waitAdmitted(t testing.TB, url string, deadline time.Time, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		for {
			reply, err := rawConnect(url, tok)
			if err == nil && strings.HasPrefix(reply, "0") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("walcast still refuses a token after its user was added: %q %v", reply, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// rawConnect makes a long-polling Engine.IO session, sends a Socket.IO
// CONNECT with the token, returns the Socket.IO reply ("0{...}" connected,
// "4{...}" refused) and
// closes the session: a handshake without the official client, for
// probing and for attacks it cannot express.
func rawConnect(baseURL, token string) (string, error) {
	hc := http.Client{Timeout: 10 * time.Second}
	base := baseURL + "/socket.io/?EIO=4&transport=polling"
	resp, err := hc.Get(base)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != '0' {
		return "", fmt.Errorf("handshake: %d %q %v", resp.StatusCode, body, err)
	}
	var open struct{ SID string }
	if err := json.Unmarshal(body[1:], &open); err != nil {
		return "", fmt.Errorf("open packet %q: %w", body, err)
	}
	sess := base + "&sid=" + open.SID
	defer func() {
		if resp, err := hc.Post(sess, "text/plain;charset=UTF-8", strings.NewReader("1")); err == nil {
			resp.Body.Close()
		}
	}()
	auth, _ := json.Marshal(map[string]string{"token": token})
	resp, err = hc.Post(sess, "text/plain;charset=UTF-8", strings.NewReader("40"+string(auth)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	for {
		resp, err := hc.Get(sess)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		for _, pkt := range strings.Split(string(body), "\x1e") {
			if strings.HasPrefix(pkt, "40") || strings.HasPrefix(pkt, "44") {
				return pkt[1:], nil
			}
		}
	}
}

// waitCutToInvalidToken waits until socket i (of a client with
// Reconnection) was cut the way an authentication cut must reach the
// official client: its connection closed ("transport close", not the final
// "io server disconnect"), then, reconnecting by itself, the contract's
// connect_error "Authentication error: Invalid token". It returns the
// disconnect line.
func waitCutToInvalidToken(t *testing.T, c *sioclient.Client, i int, timeout time.Duration) sioclient.Line {
	t.Helper()
	d := c.WaitFor(timeout, func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i })
	if d.Reason != "transport close" {
		t.Errorf("socket %d disconnected with %q, want transport close (the client reconnects and re-authenticates)", i, d.Reason)
	}
	after := false // WaitFor scans the lines in order, once
	e := c.WaitFor(timeout, func(l sioclient.Line) bool {
		if l.Client != i {
			return false
		}
		if l.Kind == "disconnect" {
			after = true
			return false
		}
		return after && (l.Kind == "connect_error" || l.Kind == "connect")
	})
	if e.Kind != "connect_error" || e.Message != msgInvalidToken {
		t.Errorf("socket %d after the cut: %s, want connect_error %q", i, e.Raw, msgInvalidToken)
	}
	return d
}
