package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/redistest"
)

// scrape reads an operator listener's /metrics into series ("name" or
// `name{label="value",...}` as printed) and values.
func scrape(t *testing.T, in *instance) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(in.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", in.AdminURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", in.AdminURL, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: line %q: %v", in.AdminURL, line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric scrapes until series has want, and fails with the last
// scrape otherwise.
func waitMetric(t *testing.T, in *instance, series string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, ok := scrape(t, in)[series]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v) after %s, want %v", series, got, ok, timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOperatorListener: metrics are served on the operator listener and
// never on the public port; the profiler only when asked for; a standby
// reports its state but not the slot; off serves nothing.
func TestOperatorListener(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL()}
	reader := startWalcast(t, dsn, serveOpts{env: env})
	standby := startWalcast(t, dsn, serveOpts{slot: reader.Slot, env: env, args: []string{"--admin-pprof"}})
	waitReadyz(t, standby, http.StatusOK, "standby")

	slot := fmt.Sprintf(`{slot=%q}`, reader.Slot)
	waitMetric(t, reader, "walcast_replication_slot_active"+slot, 1, 30*time.Second)
	waitMetric(t, reader, "walcast_ready", 1, 30*time.Second)
	// Present once the reader sent its first status (every 10 s).
	deadline := time.Now().Add(30 * time.Second)
	for _, ok := scrape(t, reader)["walcast_replication_seconds_since_ack"]; !ok; _, ok = scrape(t, reader)["walcast_replication_seconds_since_ack"] {
		if time.Now().After(deadline) {
			t.Fatal("walcast_replication_seconds_since_ack never appeared")
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := scrape(t, reader)
	for series, want := range map[string]float64{
		`walcast_replication_reader_state{state="reading"}`: 1,
		`walcast_replication_reader_state{state="standby"}`: 0,
		`walcast_redis_up`:   1,
		`walcast_locks_held`: 0,
		`walcast_replication_slot_wal_status{slot="` + reader.Slot + `",status="reserved"}`: 1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("reader: %s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for _, series := range []string{"walcast_replication_slot_lag_bytes" + slot, "walcast_replication_slot_retained_wal_bytes" + slot,
		"walcast_redis_stream_length", "walcast_replication_seconds_since_ack", `walcast_sockets{transport="websocket"}`, "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := m[series]; !ok {
			t.Errorf("reader: %s missing", series)
		}
	}
	if !strings.Contains(strings.Join(mapKeys(m), "\n"), "walcast_build_info{") {
		t.Error("walcast_build_info missing")
	}

	waitMetric(t, standby, `walcast_replication_reader_state{state="standby"}`, 1, 30*time.Second)
	waitMetric(t, standby, "walcast_ready", 1, 30*time.Second)
	if _, ok := scrape(t, standby)["walcast_replication_slot_lag_bytes"+slot]; ok {
		t.Error("a standby reports the slot's lag: only its reader does")
	}

	for _, in := range []*instance{reader, standby} {
		if code, _ := in.get("/metrics"); code != http.StatusNotFound {
			t.Errorf("%s: /metrics on the public port answered %d", in.URL, code)
		}
	}
	if code, _ := (&instance{URL: reader.AdminURL}).get("/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof without --admin-pprof answered %d", code)
	}
	if code, body := (&instance{URL: standby.AdminURL}).get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with --admin-pprof: %d", code)
	}

	off := startWalcast(t, newDB(t), serveOpts{args: []string{"--admin-listen", "off"}})
	if strings.Contains(off.logs.String(), "operator listener") {
		t.Errorf("--admin-listen off still started an operator listener:\n%s", off.logs.String())
	}
}

func mapKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestJSONLogsThroughRedisOutage: with --log-format json every line walcast
// prints is a JSON object, the Redis client's complaints during an outage
// included (they come through walcast's logger, collapsed).
func TestJSONLogsThroughRedisOutage(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}, args: []string{"--log-format", "json"}})
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(in.logs.String(), `"component":"redis-client"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no Redis client line in walcast's log 30s into an outage:\n%s", in.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, in, http.StatusOK, "")
	if err := in.stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(in.logs.String()), "\n")
	for i, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, line)
			continue
		}
		if _, ok := obj["level"]; !ok {
			t.Errorf("log line %d has no level: %q", i+1, line)
		}
	}
}

// TestAdminUIThroughWalcast: with the Admin UI configured, the official
// client logs in to /admin (not with a wrong password) and is shown the
// instance's sockets; the UI's origin may poll with credentials but gets
// no socket on the main namespace, which keeps its own origins (a list
// here; the default, any origin, would admit it like any other).
func TestAdminUIThroughWalcast(t *testing.T) {
	dsn := newDB(t)
	tokens := []string{mint(t, 1, "a", "admin", nil, time.Hour), mint(t, 2, "v", "viewer", nil, time.Hour)}
	addUsers(t, dsn, tokens...)
	in := startWalcast(t, dsn, serveOpts{args: []string{"--instance-id", "w7", "--admin-ui-origin", "https://ui.example", "--cors-origins", "https://app.example"},
		env: []string{"WALCAST_ADMIN_UI_USERNAME=ops", "WALCAST_ADMIN_UI_PASSWORD_HASH=" + testHash}})
	app := connect(t, in, tokens...)
	defer app.Close()

	wrong := sioclient.Start(t, in.URL, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"username": "ops", "password": "guess"}})
	if l := wrong.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" || l.Kind == "connect_error" }); l.Kind != "connect_error" {
		t.Fatalf("a wrong password: %s", l.Raw)
	}
	ui := sioclient.Start(t, in.URL, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"username": "ops", "password": "secret"},
		ExtraHeaders: map[string]string{"Origin": "https://ui.example"}, Transports: []string{"polling"}})
	all := ui.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Event == "all_sockets" })
	var sockets []struct {
		Nsp       string `json:"nsp"`
		Handshake struct {
			Auth map[string]any `json:"auth"`
		} `json:"handshake"`
	}
	if err := all.Arg(0, &sockets); err != nil {
		t.Fatal(err)
	}
	main := 0
	for _, s := range sockets {
		if s.Nsp == "/" {
			main++
			if len(s.Handshake.Auth) != 0 {
				t.Errorf("the UI was shown a socket's auth: %v", s.Handshake.Auth)
			}
		}
	}
	if main != 2 {
		t.Errorf("the UI lists %d sockets of /, want the 2 connected: %s", main, all.Raw)
	}
	stats := ui.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Event == "server_stats" })
	var st struct {
		ServerID string `json:"serverId"`
	}
	if err := stats.Arg(0, &st); err != nil || st.ServerID != "w7" {
		t.Errorf("server_stats names the server %q (%v), want the instance id w7", st.ServerID, err)
	}

	// CORS: the UI's origin is credentialed; the main namespace refuses it.
	req, _ := http.NewRequest("GET", in.URL+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://ui.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://ui.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("polling handshake from the UI's origin: %s, allow-origin %q, credentials %q", resp.Status,
			resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"))
	}
	fromUI := sioclient.Start(t, in.URL, sioclient.ClientConfig{Auth: authOf(tokens[0]),
		ExtraHeaders: map[string]string{"Origin": "https://ui.example"}, Transports: []string{"polling"}})
	if l := fromUI.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" || l.Kind == "connect_error" }); l.Kind != "connect_error" {
		t.Errorf("the main namespace admitted the Admin UI's origin: %s", l.Raw)
	}
}
