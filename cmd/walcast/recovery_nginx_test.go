package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
)

// Connection state recovery through nginx (issue 7): the official client,
// connected through deploy/nginx.conf.tmpl to one of two instances sharing
// Redis and a slot, loses its connection and reconnects by itself (its
// library sends pid and last offset); it must get exactly the changes
// committed meanwhile, in order, with socket.recovered === true, on
// whichever instance nginx hands it to. Which instance served a session is
// read from its Engine.IO sid, which starts with the --instance-id.

// recoveryCluster is w1 (reading the slot) and w2 (standing by), sharing
// Redis and the slot, behind nginx.
type recoveryCluster struct {
	dsn  string
	byID map[string]*instance
	ng   *nginxProc
}

func startRecoveryCluster(t *testing.T) *recoveryCluster {
	t.Helper()
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL(), "WALCAST_RECOVERY_WINDOW=2m"}
	w1 := startWalcast(t, dsn, serveOpts{env: env, args: []string{"--instance-id", "w1"}})
	w2 := startWalcast(t, dsn, serveOpts{env: env, slot: w1.Slot, args: []string{"--instance-id", "w2"}})
	waitReadyz(t, w2, http.StatusOK, "standby")
	ng := startNginx(t, []nginxInstance{
		{"w1", strings.TrimPrefix(w1.URL, "http://")},
		{"w2", strings.TrimPrefix(w2.URL, "http://")},
	})
	return &recoveryCluster{dsn: dsn, byID: map[string]*instance{"w1": w1, "w2": w2}, ng: ng}
}

// instanceOfSID is the instance id an Engine.IO sid starts with.
func instanceOfSID(sid string) string {
	id, _, _ := strings.Cut(sid, ".")
	return id
}

func otherInstance(id string) string {
	if id == "w1" {
		return "w2"
	}
	return "w1"
}

// rawHandshake opens an Engine.IO session through nginx (a polling
// handshake, as a client's first request) and closes it again; it returns
// the instance that answered.
func (c *recoveryCluster) rawHandshake(t *testing.T) string {
	t.Helper()
	hc := http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(c.ng.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatalf("handshake through nginx: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != '0' {
		t.Fatalf("handshake through nginx: %d %q %v", resp.StatusCode, body, err)
	}
	var open struct{ SID string }
	if err := json.Unmarshal(body[1:], &open); err != nil {
		t.Fatalf("handshake through nginx: open packet %q: %v", body, err)
	}
	// Close it (an Engine.IO close packet) so it does not linger until its
	// ping timeout; a request with a sid does not move the round robin.
	// Only the instance holding the session answers "ok" (any other says
	// "Session ID unknown"), so this also checks nginx routed it back.
	resp, err = hc.Post(c.ng.URL+"/socket.io/?EIO=4&transport=polling&sid="+open.SID, "text/plain;charset=UTF-8", strings.NewReader("1"))
	if err != nil {
		t.Fatalf("close raw session through nginx: %v", err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("session %s: its close through nginx got %d %q %v, want 200 \"ok\" from the instance holding it", open.SID, resp.StatusCode, body, err)
	}
	return instanceOfSID(open.SID)
}

// steerTo makes nginx send the next handshake to instance id. nginx hands
// handshakes (requests without a sid) to the two upstreams in turn, per
// worker, and the test's nginx has one worker: after a handshake answered
// by the other instance, the next goes to id. Callers check where the
// client really landed, so this is verified, not assumed.
func (c *recoveryCluster) steerTo(t *testing.T, id string) {
	t.Helper()
	for range 4 {
		if c.rawHandshake(t) != id {
			return
		}
	}
	t.Fatalf("4 handshakes through nginx all went to %s: not round robin", id)
}

// nginxAway is what recovery-nginx.mjs prints.
type nginxAway struct {
	awayResult
	reconnectStats
	Reason, SIDBefore, SIDAfter, TransportAfter string
	Before                                      []string
}

type nginxAwayOpts struct {
	mode       string // "cut" or "kill"
	transports string // "websocket" or "polling,websocket"
	token      string
	delay      time.Duration // how long the client stays away (its reconnection delay)
	names      []string      // settings names committed while it is away
	// strike runs once the client is connected (sidBefore is its
	// Engine.IO sid): in mode "cut" before the client closes its
	// transport, in mode "kill" it must take the client's instance away.
	strike func(sidBefore string)
}

// away runs recovery-nginx.mjs through nginx: the client connects, strike
// runs, the client loses its connection, the settings changes commit while
// it is away, and the client reconnects by itself.
func (c *recoveryCluster) away(t *testing.T, o nginxAwayOpts) nginxAway {
	t.Helper()
	ensureUsersAt(t, c.dsn, []*instance{c.byID["w1"], c.byID["w2"]}, o.token)
	dir := t.TempDir()
	res := make(chan sioclient.Result, 1)
	go func() {
		env := map[string]string{
			"RECOVERY_TOKEN":      o.token,
			"RECOVERY_TRANSPORTS": o.transports,
			"RECOVERY_DELAY_MS":   strconv.Itoa(int(o.delay.Milliseconds())),
			"RECOVERY_DIR":        dir,
			"RECOVERY_EVENT":      "settings:update",
			"RECOVERY_COUNT":      strconv.Itoa(len(o.names)),
		}
		res <- sioclient.Run(context.Background(), "scenarios/recovery-nginx.mjs", sioclient.Options{URL: c.ng.URL, Timeout: 120 * time.Second, Env: env}, o.mode)
	}()
	ready := waitClientFile(t, dir, "ready", res)
	var st struct{ SID string }
	if err := json.Unmarshal(ready, &st); err != nil || st.SID == "" {
		t.Fatalf("ready file %q: %v", ready, err)
	}
	o.strike(st.SID)
	if o.mode == "cut" {
		writeTestFile(t, dir, "go")
	}
	var got nginxAway
	commitWhileAway(t, c.dsn, dir, o.names, res, &got)
	if got.SIDBefore != st.SID {
		t.Fatalf("sid before %q, but the ready file said %q", got.SIDBefore, st.SID)
	}
	if len(got.Before) != 0 {
		t.Fatalf("events before the connection was lost: %v, want none", got.Before)
	}
	got.reconnectStats.check(t)
	return got
}

// reconnectStats are what the self-reconnecting scenarios
// (recovery-nginx.mjs, recovery-quiet.mjs) report about the reconnection.
type reconnectStats struct {
	CommittedBeforeReconnect *bool
	Connects                 int
}

// check: the changes meant to be missed were committed before the client
// even tried to come back (its delay is seconds, the commits take
// milliseconds), and it came back exactly once.
func (r reconnectStats) check(t *testing.T) {
	t.Helper()
	if r.CommittedBeforeReconnect == nil || !*r.CommittedBeforeReconnect {
		t.Fatalf("the client tried to reconnect before the changes were committed (committedBeforeReconnect %v): the away period was too short", r.CommittedBeforeReconnect)
	}
	if r.Connects != 2 {
		t.Fatalf("%d connects, want 2 (the first and the one reconnection)", r.Connects)
	}
}

// commitWhileAway waits until the client in dir is away, commits the
// settings changes names (the ones it is to miss), tells the client they
// are committed, and decodes the client's result into v.
func commitWhileAway(t *testing.T, dsn, dir string, names []string, res chan sioclient.Result, v any) {
	t.Helper()
	waitClientFile(t, dir, "away", res)
	for _, name := range names {
		pgtest.Exec(t, dsn, `INSERT INTO settings (name) VALUES ('`+name+`') ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name`)
	}
	writeTestFile(t, dir, "committed")
	r := <-res
	if r.Err != nil {
		t.Fatalf("client: %v\nstderr: %s", r.Err, r.Stderr)
	}
	final, _ := r.Final()
	if err := json.Unmarshal(final.Raw, v); err != nil {
		t.Fatalf("decode %s: %v", final.Raw, err)
	}
	t.Logf("client: %s", final.Raw)
}

// waitClientFile waits for a file the client writes in dir and returns its
// content; it fails if the client ended first.
func waitClientFile(t *testing.T, dir, name string, res chan sioclient.Result) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			return b
		}
		select {
		case r := <-res:
			t.Fatalf("client ended before writing %q: %v\nstderr: %s", name, r.Err, r.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not write %q within 60s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeTestFile signals the client: it polls for the file, so write it
// whole under another name, then rename.
func writeTestFile(t *testing.T, dir, name string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name)
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func awayNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	return names
}

// TestRecoveryNginxCut: the client's transport is cut for 5 s while three
// changes commit; it reconnects through nginx by itself and recovers them,
// on the other instance (nginx steered there) or the same one, over
// WebSocket and over polling that upgrades to WebSocket.
func TestRecoveryNginxCut(t *testing.T) {
	t.Parallel()
	c := startRecoveryCluster(t)
	for i, tc := range []struct {
		name, transports string
		other            bool
	}{
		{"websocket to the other instance", "websocket", true},
		{"websocket to the same instance", "websocket", false},
		{"polling then websocket to the other instance", "polling,websocket", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := awayNames(fmt.Sprintf("cut%d", i), 3)
			var target string
			got := c.away(t, nginxAwayOpts{
				mode: "cut", transports: tc.transports, delay: 5 * time.Second, names: names,
				token: mint(t, 10+i, fmt.Sprintf("cut%d", i), "manager", nil, time.Hour),
				strike: func(sidBefore string) {
					target = instanceOfSID(sidBefore)
					if tc.other {
						target = otherInstance(target)
					}
					c.steerTo(t, target)
				},
			})
			if from, to := instanceOfSID(got.SIDBefore), instanceOfSID(got.SIDAfter); to != target {
				t.Fatalf("the client went from %s (sid %s) to %s (sid %s), want %s", from, got.SIDBefore, to, got.SIDAfter, target)
			}
			if got.TransportAfter != "websocket" {
				t.Errorf("transport after reconnecting: %q, want websocket", got.TransportAfter)
			}
			checkRecovered(t, got.awayResult, true, names...)
		})
	}
}

// TestRecoveryNginxKill: the instance the client is on is SIGKILLed; the
// client reconnects through nginx by itself, lands on the survivor and
// recovers the changes committed meanwhile. On the standby, the reader
// keeps publishing and the changes are replayed from the Redis stream; on
// the reader, the standby first takes over the slot (it retries every 5 s)
// and the changes arrive after the session was restored.
func TestRecoveryNginxKill(t *testing.T) {
	t.Parallel()
	for i, victim := range []string{"w2", "w1"} {
		role := map[string]string{"w1": "reader", "w2": "standby"}[victim]
		t.Run("client on the "+role, func(t *testing.T) {
			c := startRecoveryCluster(t)
			// Steer the client's first handshake to the victim.
			c.steerTo(t, victim)
			names := awayNames(fmt.Sprintf("kill%d", i), 3)
			got := c.away(t, nginxAwayOpts{
				mode: "kill", transports: "websocket", delay: 5 * time.Second, names: names,
				token: mint(t, 20+i, fmt.Sprintf("kill%d", i), "manager", nil, time.Hour),
				strike: func(sidBefore string) {
					if on := instanceOfSID(sidBefore); on != victim {
						t.Fatalf("the client landed on %s (sid %s), want %s", on, sidBefore, victim)
					}
					in := c.byID[victim]
					if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatalf("SIGKILL %s: %v", victim, err)
					}
					<-in.done
				},
			})
			if to := instanceOfSID(got.SIDAfter); to != otherInstance(victim) {
				t.Fatalf("after %s was killed the client reconnected to %q (sid %s), want %s", victim, to, got.SIDAfter, otherInstance(victim))
			}
			checkRecovered(t, got.awayResult, true, names...)
		})
	}
}
