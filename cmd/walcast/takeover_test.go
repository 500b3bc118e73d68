package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// takeoverLine is scenarios/takeover.mjs's report of the takeover.
type takeoverLine struct {
	ClosedAfterMs     float64
	GoneAt            int64 // epoch ms at which the client saw A close the old socket
	Reason            string
	Recovered, SameID bool
}

// runTakeover starts scenarios/takeover.mjs (client on a, session resumed
// on b) and returns once it wrote its ready file; wait returns its lines.
func runTakeover(t *testing.T, a, b *instance, mode string, env map[string]string) (wait func() sioclient.Result) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	env["TAKEOVER_READY_FILE"] = ready
	ensureUsersAt(t, a.DSN, []*instance{a, b}, env["TAKEOVER_TOKEN"])
	res := make(chan sioclient.Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		res <- sioclient.Run(ctx, "scenarios/takeover.mjs", sioclient.Options{URL: a.URL, Timeout: 90 * time.Second, Env: env}, b.URL, mode)
	}()
	waitReadyFile(t, ready, res, "taken over")
	return func() sioclient.Result {
		r := <-res
		if r.Err != nil {
			t.Fatalf("client: %v\nstderr: %s", r.Err, r.Stderr)
		}
		return r
	}
}

// checkTakeover checks the scenario's takeover line: A closed the old
// socket within about a second, as a transport close (no "io server
// disconnect"), and B's socket is the recovered session with the same id.
func checkTakeover(t *testing.T, r sioclient.Result, a *instance) {
	t.Helper()
	lines := r.Kind("takeover")
	if len(lines) != 1 {
		t.Fatalf("takeover lines %v", lines)
	}
	var tk takeoverLine
	if err := json.Unmarshal(lines[0].Raw, &tk); err != nil {
		t.Fatal(err)
	}
	t.Logf("A closed the old socket %.0f ms after the resume on B began (%s)", tk.ClosedAfterMs, tk.Reason)
	if !tk.Recovered || !tk.SameID {
		t.Errorf("on B: recovered=%v sameId=%v, want both true", tk.Recovered, tk.SameID)
	}
	if tk.Reason != "transport close" {
		t.Errorf("old socket ended with %q, want \"transport close\" (a takeover is no server-side disconnect)", tk.Reason)
	}
	if tk.ClosedAfterMs > 2000 {
		t.Errorf("A closed the old socket %.0f ms after the resume, want about a second at most", tk.ClosedAfterMs)
	}
	if !strings.Contains(a.logs.String(), "closing a socket whose session was resumed on another instance") {
		t.Error("A's log does not show the takeover")
	}
}

// TestTakeoverAcrossInstances: a client's socket on A is still connected
// when its session resumes on B (two walcast processes sharing Redis). A
// closes the old socket promptly; B's socket is recovered, with the same
// id, and then gets each event exactly once.
func TestTakeoverAcrossInstances(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_RECOVERY_WINDOW=2m"}
	a := startWalcast(t, dsn, serveOpts{env: env})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
	waitReadyz(t, b, http.StatusOK, "standby")
	wait := runTakeover(t, a, b, "events", map[string]string{
		"TAKEOVER_TOKEN": mint(t, 1, "user1", "manager", nil, time.Hour),
		"TAKEOVER_EVENT": "settings:update", "TAKEOVER_COUNT": "3",
	})
	for _, name := range []string{"after-1", "after-2", "after-3"} {
		pgtest.Exec(t, dsn, `INSERT INTO settings (name) VALUES ('`+name+`') ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name`)
	}
	r := wait()
	checkTakeover(t, r, a)
	final, _ := r.Final()
	var got struct {
		Names    []string
		Payloads []json.RawMessage
	}
	if err := json.Unmarshal(final.Raw, &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, n := range got.Names {
		var p struct{ Name string }
		if n != "settings:update" || json.Unmarshal(got.Payloads[i], &p) != nil {
			t.Fatalf("unexpected event on B: %s %s", n, got.Payloads[i])
		}
		names = append(names, p.Name)
	}
	if want := []string{"after-1", "after-2", "after-3"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("B got %v, want exactly %v", names, want)
	}
}

// TestTakeoverLocks: with --lock-release-on-disconnect and a 4 s recovery
// window, a lock taken on A stays held while the session lives on on B,
// well past the grace window (A asks whether the session is still around
// and keeps custody); once the client is gone for good, the lock is
// released after the grace window, announced once.
func TestTakeoverLocks(t *testing.T) {
	const window = 4 * time.Second
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_RECOVERY_WINDOW=4s", "WALCAST_LOCK_RELEASE_ON_DISCONNECT=true"}
	a := startWalcast(t, dsn, serveOpts{env: env})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
	waitReadyz(t, b, http.StatusOK, "standby")
	const bob = 0
	obs := connect(t, b, mint(t, 2, "bob", "manager", nil, time.Hour))
	goFile := filepath.Join(t.TempDir(), "go")
	lock, _ := json.Marshal(memberM1)
	wait := runTakeover(t, a, b, "locks", map[string]string{
		"TAKEOVER_TOKEN": mint(t, 1, "alice", "manager", nil, time.Hour),
		"TAKEOVER_LOCK":  string(lock), "TAKEOVER_GO_FILE": goFile,
	})
	const ev = "lock:update:member:m-1"
	// A's lock session outlives its grace window: it asked, twice, whether
	// the session lives on, and kept the lock.
	waitLog(t, a, "lock session kept: its socket may live on elsewhere", 2, 30*time.Second)
	kept := time.Now()
	wantStillHeld(t, dsn, obs, bob, memberM1, ev)

	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := wait()
	checkTakeover(t, r, a)
	// The grace window runs from A losing the socket, which the client saw
	// before it wrote its ready file (and before its lock:acquire on B):
	// timing from the ready file would charge that round trip to A.
	var tk takeoverLine
	if err := json.Unmarshal(r.Kind("takeover")[0].Raw, &tk); err != nil || tk.GoneAt == 0 {
		t.Fatalf("takeover line without goneAt: %v %+v", err, tk)
	}
	if since := kept.Sub(time.UnixMilli(tk.GoneAt)); since < window {
		t.Fatalf("A's lock session was kept %v after A lost the socket, before its %v grace window passed", since, window)
	}
	wantReleasedAfterGrace(t, r, obs, bob, ev, window)
	if l := ack(t, obs, bob, "lock:check", memberM1); !jsonEqual(t, l.Args[0], `{"isLocked":false}`) {
		t.Errorf("lock:check after the release: %s", l.Args[0])
	}
	// Both instances' lock sessions for the socket ended (A's held the
	// lock, B's took it again); then only one release was announced.
	waitLog(t, a, "lock session ended", 1, 30*time.Second)
	waitLog(t, b, "lock session ended", 1, 30*time.Second)
	barrier(t, dsn, obs, bob)
	wantPayloads(t, "bob", events(obs, bob, ev), [][2]string{
		{ev, `{"isLocked":true,"lockedBy":"alice"}`},
		{ev, `{"isLocked":false,"lockedBy":null}`},
	})
}

// waitLog waits until in's log has n lines containing s.
func waitLog(t *testing.T, in *instance, s string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for strings.Count(in.logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d log lines with %q after %v, want %d", in.URL, strings.Count(in.logs.String(), s), s, limit, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLockFollowsRecoveredSession: on one instance (no Redis) with
// --lock-release-on-disconnect and a 3 s recovery window, a client that
// recovers its session (after its transport was cut, or while its old
// socket is still connected) keeps its lock session: the lock is not
// released past the grace window; after the client's final disconnect it is
// released after the grace window, announced once.
func TestLockFollowsRecoveredSession(t *testing.T) {
	const window = 3 * time.Second
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{env: []string{"WALCAST_RECOVERY_WINDOW=3s", "WALCAST_LOCK_RELEASE_ON_DISCONNECT=true"}})
	const bob = 0
	obs := connect(t, in, mint(t, 2, "bob", "manager", nil, time.Hour))
	for _, tc := range []struct{ name, cut, id string }{
		{"transport cut", "1", "m-cut"},
		{"old socket still connected", "0", "m-over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := map[string]any{"resourceType": "member", "resourceId": tc.id}
			ev := "lock:update:member:" + tc.id
			goFile := filepath.Join(t.TempDir(), "go")
			lock, _ := json.Marshal(res)
			wait := runTakeover(t, in, in, "locks", map[string]string{
				"TAKEOVER_TOKEN": mint(t, 1, "alice", "manager", nil, time.Hour),
				"TAKEOVER_LOCK":  string(lock), "TAKEOVER_GO_FILE": goFile, "TAKEOVER_CUT": tc.cut,
			})
			// A negative check: nothing may happen for well past the grace.
			time.Sleep(2 * window)
			wantStillHeld(t, dsn, obs, bob, res, ev)

			if err := os.WriteFile(goFile, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			r := wait()
			var tk takeoverLine
			if l := r.Kind("takeover"); len(l) != 1 || json.Unmarshal(l[0].Raw, &tk) != nil || !tk.Recovered || !tk.SameID {
				t.Fatalf("not recovered: %v", l)
			}
			wantReleasedAfterGrace(t, r, obs, bob, ev, window)
			barrier(t, dsn, obs, bob)
			wantPayloads(t, "bob", events(obs, bob, ev), [][2]string{
				{ev, `{"isLocked":true,"lockedBy":"alice"}`},
				{ev, `{"isLocked":false,"lockedBy":null}`},
			})
		})
	}
}

// wantStillHeld checks, from observer socket i, that alice still holds the
// lock and that the only ev announcement so far is her taking it: nothing
// released it while her session lived on.
func wantStillHeld(t *testing.T, dsn string, obs *sioclient.Client, i int, res any, ev string) {
	t.Helper()
	var held struct {
		IsLocked bool
		LockedBy string
	}
	if l := ack(t, obs, i, "lock:check", res); l.Arg(0, &held) != nil || !held.IsLocked || held.LockedBy != "alice" {
		t.Fatalf("lock:check %s, want held by alice", l.Args[0])
	}
	barrier(t, dsn, obs, i)
	wantPayloads(t, "the observer before the client leaves", events(obs, i, ev), [][2]string{{ev, `{"isLocked":true,"lockedBy":"alice"}`}})
}

// wantReleasedAfterGrace waits for the release announcement (the second ev
// event at observer socket i) and checks it came no earlier than the grace
// window after the client left for good (its final line's goneAt).
func wantReleasedAfterGrace(t *testing.T, r sioclient.Result, obs *sioclient.Client, i int, ev string, window time.Duration) {
	t.Helper()
	final, _ := r.Final()
	var gone struct{ GoneAt float64 }
	if err := json.Unmarshal(final.Raw, &gone); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, obs, i, ev, 2, 30*time.Second)
	after := time.Since(time.UnixMilli(int64(gone.GoneAt)))
	t.Logf("released %v after the client left for good (grace %v)", after, window)
	if after < window-250*time.Millisecond {
		t.Errorf("released %v after the client left, before the %v grace window", after, window)
	}
}
