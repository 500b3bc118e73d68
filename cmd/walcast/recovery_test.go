package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// TestRecoveryAfterSIGKILL: a client on instance A holds an offset (from
// the walcast:offset event at connect); A is SIGKILLed, so it never sees the
// disconnect; changes commit while the client is away; the client resumes
// its session on instance B (the official client's pid and last offset, on a
// client object pointed at B) and gets exactly those changes, in order, with
// recovered === true: the session was saved in Redis when it started, and
// the events come from the shared stream.
func TestRecoveryAfterSIGKILL(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_RECOVERY_WINDOW=2m"}
	a := startWalcast(t, dsn, serveOpts{env: env})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot})
	waitReadyz(t, b, http.StatusOK, "standby")
	got := runAway(t, dsn, a, b, "wait", 1000, func() {
		if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-a.done
	})
	checkRecovered(t, got, true, "away-1", "away-2", "away-3")
}

// TestRecoverySameInstance: one instance, no Redis (history in memory): a
// client's transport is cut for 5 s while three changes commit; it comes
// back with recovered === true and exactly those changes. Past the window
// it comes back with recovered === false and nothing replayed.
func TestRecoverySameInstance(t *testing.T) {
	for _, tc := range []struct {
		name, window string
		recovered    bool
	}{
		{"within the window", "2m", true},
		{"past the window", "2s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDB(t)
			a := startWalcast(t, dsn, serveOpts{env: []string{"WALCAST_RECOVERY_WINDOW=" + tc.window}})
			got := runAway(t, dsn, a, a, "cut", 5000, func() {})
			if tc.recovered {
				checkRecovered(t, got, true, "away-1", "away-2", "away-3")
			} else {
				checkRecovered(t, got, false)
			}
		})
	}
}

type awayResult struct {
	Recovered, SameID bool
	Names             []string
	Payloads          []json.RawMessage
}

// runAway runs scenarios/recovery-cross.mjs: a client connects to a, gets an
// offset (walcast:offset at connect), goes away (mode "cut": it closes its
// transport; "wait": strike kills a), three settings changes commit, and
// after awayMs it resumes its session on b.
func runAway(t *testing.T, dsn string, a, b *instance, mode string, awayMs int, strike func()) awayResult {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	count := "3"
	tok := mint(t, 1, "user1", "manager", nil, time.Hour)
	ensureUsersAt(t, dsn, []*instance{a, b}, tok)
	res := make(chan sioclient.Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		env := map[string]string{
			"RECOVERY_TOKEN":      tok,
			"RECOVERY_ARM":        "0",
			"RECOVERY_WELCOME":    "walcast:offset",
			"RECOVERY_READY_FILE": ready,
			"RECOVERY_AWAY_MS":    strconv.Itoa(awayMs),
		}
		if mode == "wait" || awayMs < 3000 {
			env["RECOVERY_EVENT"], env["RECOVERY_COUNT"] = "settings:update", count
		}
		res <- sioclient.Run(ctx, "scenarios/recovery-cross.mjs", sioclient.Options{URL: a.URL, Timeout: 60 * time.Second, Env: env}, b.URL, mode)
	}()
	waitReadyFile(t, ready, res, "connected")
	strike()
	for _, name := range []string{"away-1", "away-2", "away-3"} {
		pgtest.Exec(t, dsn, `INSERT INTO settings (name) VALUES ('`+name+`') ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name`)
	}
	return awayOutcome(t, res)
}

// awayOutcome waits for recovery-cross.mjs to end and reads its final line.
func awayOutcome(t *testing.T, res <-chan sioclient.Result) awayResult {
	t.Helper()
	r := <-res
	if r.Err != nil {
		t.Fatalf("client: %v\nstderr: %s", r.Err, r.Stderr)
	}
	final, _ := r.Final()
	var got awayResult
	if err := json.Unmarshal(final.Raw, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRecovered compares the resumed session with what it should be: the
// same socket id and exactly the settings names missed, or a fresh session
// and nothing replayed.
func checkRecovered(t *testing.T, got awayResult, recovered bool, want ...string) {
	t.Helper()
	if got.Recovered != recovered || got.SameID != recovered {
		t.Fatalf("recovered=%v sameId=%v, want both %v", got.Recovered, got.SameID, recovered)
	}
	var names []string
	for i, n := range got.Names {
		var p struct{ Name string }
		if n != "settings:update" || json.Unmarshal(got.Payloads[i], &p) != nil {
			t.Fatalf("unexpected event %s %s", n, got.Payloads[i])
		}
		names = append(names, p.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("after coming back the client got %v, want exactly %v", names, want)
	}
}

// waitReadyFile waits up to 30 s for a scenario to create the file ready
// (it reached the state named what), failing if the client ends first.
func waitReadyFile(t *testing.T, ready string, res <-chan sioclient.Result, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case r := <-res:
			t.Fatalf("client ended before it was %s: %v\nstderr: %s", what, r.Err, r.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("client not %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
