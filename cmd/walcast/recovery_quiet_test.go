package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
)

// The quiet tab's timing. The memory history drops broadcasts older than
// the recovery window (broadcast/socketio/recovery.go, trimLocked, by age
// before bytes), and the client presents the offset of the last broadcast
// it received:
//   - the walcast:offset sent at connect is at least quietFor+quietAway old
//     when the client comes back (43 s), past the window (42 s): alone, it
//     cannot recover the session;
//   - walcast:offset ticks every 30 s (offsetInterval), so a client
//     connected for 40 s got one at most 30 s before it went away, at most
//     30 s + quietAway + the reconnection handshake old when it comes back:
//     inside the window unless the handshake takes over 9 s.
//
// So the client recovers only thanks to the periodic tick.
const (
	quietFor    = 40 * time.Second
	quietAway   = 3 * time.Second
	quietWindow = 42 * time.Second
)

// quietResult is what recovery-quiet.mjs prints.
type quietResult struct {
	awayResult
	reconnectStats
	Reason, FirstOffset, LastOffset string
	Ticks                           []struct {
		MS     int
		Offset string
	}
	Quiet []string
}

// TestRecoveryQuiet: a client that gets no event for 40 s, then drops and
// reconnects by itself, still recovers its session and the changes
// committed while it was away, thanks to the periodic walcast:offset. The
// control, in parallel, is the same client presenting the offset it got at
// connect (as if there were no tick): it is not recovered, which shows the
// window is short enough for the tick to be what makes the difference.
func TestRecoveryQuiet(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name   string
		forget bool
	}{
		{"with the periodic offset", false},
		{"control: connect offset only", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := newDB(t)
			a := startWalcast(t, dsn, serveOpts{env: []string{"WALCAST_RECOVERY_WINDOW=" + quietWindow.String()}})
			names := awayNames("quiet"+strconv.Itoa(i), 3)
			count := len(names)
			if tc.forget {
				count = 0 // not recovered: nothing is replayed
			}
			dir := t.TempDir()
			tok := mint(t, 30+i, "quiet"+strconv.Itoa(i), "manager", nil, time.Hour)
			ensureUsers(t, a, tok)
			res := make(chan sioclient.Result, 1)
			go func() {
				env := map[string]string{
					"RECOVERY_TOKEN":    tok,
					"RECOVERY_QUIET_MS": strconv.Itoa(int(quietFor.Milliseconds())),
					"RECOVERY_DELAY_MS": strconv.Itoa(int(quietAway.Milliseconds())),
					"RECOVERY_DIR":      dir,
					"RECOVERY_EVENT":    "settings:update",
					"RECOVERY_COUNT":    strconv.Itoa(count),
				}
				if tc.forget {
					env["RECOVERY_FORGET_TICKS"] = "1"
				}
				res <- sioclient.Run(context.Background(), "scenarios/recovery-quiet.mjs", sioclient.Options{URL: a.URL, Timeout: 150 * time.Second, Env: env})
			}()
			var got quietResult
			commitWhileAway(t, dsn, dir, names, res, &got)
			if len(got.Quiet) != 0 {
				t.Fatalf("events while quiet: %v, want none", got.Quiet)
			}
			got.reconnectStats.check(t)
			if tc.forget {
				if got.Recovered || got.SameID {
					t.Fatalf("presenting the connect offset after %s: recovered=%v sameId=%v, want both false: the window does not age it out, so this test cannot tell whether the periodic offset matters", quietFor+quietAway, got.Recovered, got.SameID)
				}
				return
			}
			// Checked first: without the periodic tick this is what fails.
			checkRecovered(t, got.awayResult, true, names...)
			if len(got.Ticks) == 0 || got.LastOffset == got.FirstOffset {
				t.Fatalf("no periodic walcast:offset in %s (ticks %v; offset at connect %q, when leaving %q)", quietFor, got.Ticks, got.FirstOffset, got.LastOffset)
			}
			if last := got.Ticks[len(got.Ticks)-1]; last.Offset != got.LastOffset {
				t.Fatalf("the client left with offset %q, not the last tick's %q", got.LastOffset, last.Offset)
			}
		})
	}
}
