package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/gateway"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// Hostile clients (DESIGN.md decision 10): each test drives one attack with
// real sockets against a real walcast, PostgreSQL and Redis, the official
// client where it can express the attack.

func redisClient(t *testing.T, rs *redistest.Server) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisInputBytes is what Redis has read from its clients so far.
func redisInputBytes(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_net_input_bytes:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no total_net_input_bytes in INFO stats:\n%s", info)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestLockFloodBounded: one viewer sends 2,000 lock calls as fast as the
// official client can (acquire and release of its own member, in turn).
// Past its token bucket (default 5/s, burst 10) the calls are answered
// "rate limited" and announce nothing, so a passive socket hears at most
// the bucket's worth of lock:update events, not one per call.
func TestLockFloodBounded(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	const attacker, passive = 0, 1
	c := connect(t, in, mint(t, 1, "v", "viewer", "m-1", time.Hour), mint(t, 2, "adm", "admin", nil, time.Hour))
	start := time.Now()
	counts := c.Flood(attacker, 60*time.Second, []string{"lock:acquire", "lock:release"}, 2000, 0,
		map[string]any{"resourceType": "member", "resourceId": "m-1"})
	took := time.Since(start)
	limited := 0
	for ack, n := range counts {
		if strings.Contains(ack, `"rate limited"`) {
			limited += n
		}
	}
	passed := 2000 - limited
	allowed := gateway.DefaultLockBurst + int(took.Seconds()*gateway.DefaultLockRate) + 1
	t.Logf("2,000 lock calls in %s: %d passed, %d rate limited (acks %v)", took.Round(time.Millisecond), passed, limited, counts)
	if passed > allowed || limited < 2000-allowed {
		t.Errorf("%d lock calls passed in %s, want at most %d (burst %d + %g/s)", passed, took, allowed, gateway.DefaultLockBurst, gateway.DefaultLockRate)
	}
	// A last announcement of another lock fences the count: updates
	// arrive in order.
	if l := c.EmitWithAck(passive, 5*time.Second, "lock:acquire", map[string]any{"resourceType": "member", "resourceId": "fence"}); l.Error != "" {
		t.Fatal(l.Raw)
	}
	waitEvents(t, c, passive, "lock:update:member:fence", 1, 10*time.Second)
	heard := len(events(c, passive, "lock:update:member:m-1"))
	if heard > passed || heard == 0 {
		t.Errorf("the passive socket heard %d lock:update events for %d calls that passed; want between 1 and %d", heard, passed, passed)
	}
	// The limit is per socket: the passive one was not limited by the flood.
	if l := c.EmitWithAck(passive, 5*time.Second, "lock:check", memberM1); l.Error != "" || strings.Contains(string(l.Args[0]), "rate limited") {
		t.Errorf("another socket's lock:check after the flood: %s", l.Raw)
	}
}

// TestRoomFloodCapped: one socket asks to join 100,000 rooms, then joins
// and leaves one room 20,000 times, as fast as the official client sends.
// It ends up in 100 (--max-rooms), the rest answered "too many rooms", and
// its recoverable session (saved to Redis when its rooms change) costs
// Redis little: saves are at most one per second per socket.
func TestRoomFloodCapped(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	rdb := redisClient(t, rs)
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	c := connect(t, in, mint(t, 1, "v", "viewer", nil, time.Hour))
	before := redisInputBytes(t, rdb)
	start := time.Now()
	// At most 500 requests unanswered at once: a client that sends more
	// than its send queue (1024 packets) of requests without reading the
	// answers is cut as a slow consumer before the cap is reached.
	counts := c.Flood(0, 120*time.Second, []string{"join_room"}, 100_000, 500, "room-{i}")
	want := map[string]int{`[{"success":true}]`: gateway.DefaultMaxRooms, `[{"error":"too many rooms","success":false}]`: 100_000 - gateway.DefaultMaxRooms}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("100,000 join_room: acks %v, want %v", counts, want)
	}
	if got := c.Flood(0, 120*time.Second, []string{"leave_room", "join_room"}, 40_000, 500, "room-0"); got[`[{"success":true}]`] != 40_000 {
		t.Errorf("20,000 leave/join cycles: acks %v, want all successful", got)
	}
	took := time.Since(start)
	time.Sleep(2 * socketioRoomSaveInterval) // the last change's save
	written := redisInputBytes(t, rdb) - before
	t.Logf("140,000 room requests in %s: Redis read %d bytes from its clients meanwhile", took.Round(time.Millisecond), written)
	// Before: every join re-saved the whole list (about 860 MB for 100,000).
	// Now at most one save of at most 100 rooms (~2 KB here) per second,
	// plus walcast's own traffic.
	if limit := int64(256<<10) + int64(took.Seconds()+3)*8<<10; written > limit {
		t.Errorf("Redis read %d bytes during the flood, want at most %d", written, limit)
	}
	// The socket's stored session holds the 100 rooms (and the token's).
	sid := c.WaitFor(time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" }).ID
	keys, err := rdb.Keys(context.Background(), "socket.io:session:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range keys {
		var st struct {
			SID   string
			Rooms []string
		}
		b, _ := rdb.Get(context.Background(), k).Bytes()
		if json.Unmarshal(b, &st) != nil || st.SID != sid {
			continue
		}
		found = true
		if len(st.Rooms) != gateway.DefaultMaxRooms+3 {
			t.Errorf("stored session has %d rooms, want %d joined, the token's two and its own", len(st.Rooms), gateway.DefaultMaxRooms)
		}
	}
	if !found {
		t.Errorf("no stored session for socket %s among %v", sid, keys)
	}
}

// socketioRoomSaveInterval mirrors socketio.RoomSaveInterval for the wait
// above (the test binary does not link the server's packages' internals).
const socketioRoomSaveInterval = time.Second

// TestJoinedRoomsRecoveredAcrossInstances: a client joins a room on
// instance A, which is SIGKILLed at once; it resumes its session on B and
// gets what was sent to that room while it was away: the join was saved to
// Redis when it happened, not folded into a later save that A never made.
func TestJoinedRoomsRecoveredAcrossInstances(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	rdb := redisClient(t, rs)
	dsn := newDB(t)
	tok := mint(t, 1, "user1", "manager", nil, time.Hour)
	addUsers(t, dsn, tok)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_RECOVERY_WINDOW=2m"}
	a := startWalcast(t, dsn, serveOpts{env: env})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
	waitReadyz(t, b, http.StatusOK, "standby")
	ready := filepath.Join(t.TempDir(), "ready")
	res := make(chan sioclient.Result, 1)
	go func() {
		res <- sioclient.Run(context.Background(), "scenarios/recovery-cross.mjs", sioclient.Options{URL: a.URL, Timeout: 60 * time.Second, Env: map[string]string{
			"RECOVERY_TOKEN": tok, "RECOVERY_ARM": "0", "RECOVERY_WELCOME": "walcast:offset", "RECOVERY_JOIN": "team-7",
			"RECOVERY_READY_FILE": ready, "RECOVERY_AWAY_MS": "1000", "RECOVERY_EVENT": "team:news", "RECOVERY_COUNT": "1",
		}}, b.URL, "wait")
	}()
	waitReadyFile(t, ready, res, "connected")
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	// A broadcast to the room, in the Node adapters' stream format, while
	// the client is away.
	data := `{"packet":{"type":2,"data":["team:news",{"n":7}],"nsp":"/"},"opts":{"rooms":["team-7"],"except":[],"flags":{}}}`
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "socket.io", Values: []any{"uid", "test", "nsp", "/", "type", "3", "data", data}}).Err(); err != nil {
		t.Fatal(err)
	}
	got := awayOutcome(t, res)
	if !got.Recovered || !got.SameID || len(got.Names) != 1 || got.Names[0] != "team:news" {
		t.Errorf("resumed on B: recovered %v, same id %v, events %v; want recovered with the room's event", got.Recovered, got.SameID, got.Names)
	}
}

// TestCustomAudiencesReserved: with a routing file whose audiences are a
// fixed room (staff) and a template (family:{family_id}), a viewer cannot
// join_room them and hears none of their rows; a room of another shape is
// fine. A template without a fixed start is refused at start.
func TestCustomAudiencesReserved(t *testing.T) {
	dsn := newDB(t)
	dir := t.TempDir()
	routing := filepath.Join(dir, "routing.yaml")
	if err := os.WriteFile(routing, []byte(`
tables:
  members:
    event: member:update
    audience: [staff, "family:{family_id}"]
  settings:
    event: settings:update
    style: flat
    columns: [name]
    audience: [all]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startWalcast(t, dsn, serveOpts{args: []string{"--config", routing}})
	c := connect(t, in, mint(t, 1, "v", "viewer", nil, time.Hour))
	for room, want := range map[string]string{
		"staff":       `{"success":false,"error":"reserved room"}`,
		"family:f-1":  `{"success":false,"error":"reserved room"}`,
		"family:":     `{"success":false,"error":"reserved room"}`,
		"families":    `{"success":true}`,
		"staff-lunch": `{"success":true}`,
	} {
		if l := c.EmitWithAck(0, 5*time.Second, "join_room", room); len(l.Args) != 1 || !jsonEqual(t, l.Args[0], want) {
			t.Errorf("join_room(%q): %s, want %s", room, l.Raw, want)
		}
	}
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name, family_id) VALUES ('m-f', 'F', 'F', 'f-1')`)
	barrier(t, dsn, c, 0)
	if got := events(c, 0, "member:update"); len(got) != 0 {
		t.Errorf("the viewer heard a family's row: %s", joinRaw(got[0].Args))
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tables:\n  members:\n    event: member:update\n    audience: [\"{family_id}\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(walcastBin, "serve", "--config", bad, "--listen", "127.0.0.1:0")
	cmd.Env = []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + testSecret, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), `audience room "{family_id}" starts with a {column}`) {
		t.Errorf("walcast with an audience without a fixed start: %v\n%s", err, out)
	}
}

// TestOtherInstancesSocketIDsRefused: a socket cannot join the room of a
// socket id, also when that socket is on another instance.
func TestOtherInstancesSocketIDsRefused(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL()}
	a := startWalcast(t, dsn, serveOpts{env: env})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
	waitReadyz(t, b, http.StatusOK, "standby")
	victim := connect(t, b, mint(t, 1, "adm", "admin", nil, time.Hour))
	id := victim.WaitFor(time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" }).ID
	attacker := connect(t, a, mint(t, 2, "v", "viewer", nil, time.Hour))
	if l := attacker.EmitWithAck(0, 5*time.Second, "join_room", id); len(l.Args) != 1 || !jsonEqual(t, l.Args[0], `{"success":false,"error":"reserved room"}`) {
		t.Errorf("join_room(a socket id on another instance): %s, want reserved room", l.Raw)
	}
}

// TestRoomNameLength: the limit is counted in bytes of UTF-8, in the code
// and in the README: 64 two-byte characters fit, 65 do not.
func TestRoomNameLength(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("1-%d bytes", gateway.MaxRoomName); !strings.Contains(string(readme), want) {
		t.Errorf("README does not say room names are %q", want)
	}
	if strings.Contains(string(readme), fmt.Sprintf("1-%d characters", gateway.MaxRoomName)) {
		t.Errorf("README counts room names in characters")
	}
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	c := connect(t, in, mint(t, 1, "v", "viewer", nil, time.Hour))
	for room, want := range map[string]string{
		strings.Repeat("é", gateway.MaxRoomName/2):   `{"success":true}`,
		strings.Repeat("é", gateway.MaxRoomName/2+1): `{"success":false,"error":"invalid room"}`,
		strings.Repeat("a", gateway.MaxRoomName):     `{"success":true}`,
		strings.Repeat("a", gateway.MaxRoomName+1):   `{"success":false,"error":"invalid room"}`,
	} {
		if l := c.EmitWithAck(0, 5*time.Second, "join_room", room); len(l.Args) != 1 || !jsonEqual(t, l.Args[0], want) {
			t.Errorf("join_room of %d bytes: %s, want %s", len(room), l.Raw, want)
		}
	}
}

// TestUserIDsNormalised: a token with id 1 and one with id "1" are the same
// user to the locks (one tab's lock is the other's to release), and an id
// above 2^53 keeps its digits in the lock value.
func TestUserIDsNormalised(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	rdb := redisClient(t, rs)
	dsn := newDB(t)
	pgtest.Exec(t, dsn, `ALTER TABLE users ALTER COLUMN id TYPE bigint`)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	const big = "9007199254740993" // 2^53 + 1: a float64 makes it ...992
	c := connect(t, in, mint(t, 1, "alice", "admin", nil, time.Hour), mint(t, "1", "alice", "admin", nil, time.Hour),
		mint(t, json.Number(big), "big", "admin", nil, time.Hour))
	wantAck(t, "tab with id 1 acquires", ack(t, c, 0, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	wantAck(t, `tab with id "1" re-acquires its own lock`, ack(t, c, 1, "lock:acquire", memberM1), `{"success":true,"lockedBy":"alice"}`)
	wantAck(t, `tab with id "1" releases it`, ack(t, c, 1, "lock:release", memberM1), `{"success":true}`)
	wantAck(t, "the big id acquires", ack(t, c, 2, "lock:acquire", memberM1), `{"success":true,"lockedBy":"big"}`)
	v, err := rdb.Get(context.Background(), "lock:member:m-1").Result()
	if err != nil || !strings.HasPrefix(v, `{"userId":`+big+`,`) {
		t.Errorf("lock value %q (%v), want userId %s with every digit", v, err, big)
	}
}

// TestReadyzSaysLittle: /readyz on the public port gives its status and a
// short reason, nothing else (no socket count, position or error text); the
// details go to the log.
func TestReadyzSaysLittle(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	connect(t, in, mint(t, 1, "adm", "admin", nil, time.Hour))
	check := func(wantCode int, wantReason string) {
		t.Helper()
		code, body := in.get("/readyz")
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != wantCode || len(got) != 2 || got["reason"] != wantReason {
			t.Errorf("/readyz = %d %s, want %d with exactly ready and reason %q", code, body, wantCode, wantReason)
		}
	}
	check(http.StatusOK, reasonReading)
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, in, http.StatusServiceUnavailable, reasonRedisDown)
	check(http.StatusServiceUnavailable, reasonRedisDown)
	if !strings.Contains(in.logs.String(), `msg="readiness changed" ready=false reason="Redis unreachable"`) {
		t.Errorf("the log lacks the readiness change with its details:\n%s", in.logs.String())
	}
}

// TestOriginDefault: GraceGiver's nginx sets Host without the port the app
// is published on, so a browser's Origin names another host:port than the
// Host walcast sees; the Vite dev server is another origin still. With the
// default settings such handshakes are accepted (authentication is a token,
// never a cookie). With a list, an origin not on it is refused, logged once
// with the setting that admits it, and the same-origin exception compares
// the scheme too.
func TestOriginDefault(t *testing.T) {
	dsn := newDB(t)
	handshake := func(in *instance, host, origin string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", in.URL+"/socket.io/?EIO=4&transport=polling", nil)
		req.Host = host
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	def := startWalcast(t, dsn, serveOpts{})
	for _, origin := range []string{"http://localhost:8085", "http://localhost:5173", "https://app.example"} {
		if code := handshake(def, "localhost", origin); code != http.StatusOK {
			t.Errorf("default settings, Host localhost, Origin %s: %d, want 200", origin, code)
		}
	}

	listed := startWalcast(t, dsn, serveOpts{args: []string{"--cors-origins", "https://app.example"}})
	host := strings.TrimPrefix(listed.URL, "http://")
	for _, tc := range []struct {
		origin string
		code   int
	}{
		{"https://app.example", http.StatusOK},
		{"https://evil.example", http.StatusForbidden},
		{"https://evil.example", http.StatusForbidden},
		{"http://" + host, http.StatusOK},         // its own origin
		{"https://" + host, http.StatusForbidden}, // not its own: another scheme
	} {
		if code := handshake(listed, host, tc.origin); code != tc.code {
			t.Errorf("--cors-origins https://app.example, Origin %s: %d, want %d", tc.origin, code, tc.code)
		}
	}
	logs := listed.logs.String()
	if n := strings.Count(logs, `origin=https://evil.example`); n != 1 || !strings.Contains(logs, `admit_with="--cors-origins (WALCAST_CORS_ORIGINS) https://app.example,https://evil.example"`) {
		t.Errorf("refused origin logged %d times (want once, with the setting that admits it):\n%s", n, logs)
	}
}
