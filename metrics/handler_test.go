package metrics

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/locks"
)

func get(t *testing.T, url string, header map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestHandler: /metrics serves the text format (OpenMetrics when asked);
// /debug/pprof answers only when enabled; nothing else is served.
func TestHandler(t *testing.T) {
	m := newPolled(Options{Version: "v9", Sources: allSources()})
	exercise(m)
	off := httptest.NewServer(m.Handler(HandlerOptions{}))
	defer off.Close()
	on := httptest.NewServer(m.Handler(HandlerOptions{Pprof: true}))
	defer on.Close()

	code, ctype, body := get(t, off.URL+"/metrics", nil)
	if code != 200 || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %q", code, ctype)
	}
	for _, want := range []string{
		"# TYPE walcast_replication_slot_lag_bytes gauge",
		`walcast_replication_slot_lag_bytes{slot="walcast"} 1234`,
		`walcast_build_info{go_version="go`,
		`walcast_lock_ack_duration_seconds_bucket{op="acquire",le="0.001"} 1`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, ctype, body = get(t, off.URL+"/metrics", map[string]string{"Accept": "application/openmetrics-text; version=1.0.0"})
	if code != 200 || !strings.HasPrefix(ctype, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("/metrics as OpenMetrics: %d %q, ends %q", code, ctype, body[max(0, len(body)-20):])
	}

	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _, _ := get(t, off.URL+path, nil); code != http.StatusNotFound {
			t.Errorf("%s with pprof off: %d, want 404", path, code)
		}
		if code, _, _ := get(t, on.URL+path, nil); code != 200 {
			t.Errorf("%s with pprof on: %d, want 200", path, code)
		}
	}
	if code, _, _ := get(t, off.URL+"/", nil); code != http.StatusNotFound {
		t.Errorf("/: %d, want 404", code)
	}
}

// TestObservers: the socket observer counts a real server's connects and
// disconnects by reason, RoomsOf counts its rooms, and the lock observer a
// real lock service's operations.
func TestObservers(t *testing.T) {
	m := New(Options{})
	srv := socketio.NewServer(socketio.Config{})
	srv.AddObserver(m.SocketObserver())
	srv.Of("/").OnConnection(func(s *socketio.Socket) { s.Join("a", "b") })
	srv.Of("/other")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() { srv.Close(); _ = hs.Close() }()

	var conns []*siotest.Conn
	for range 3 {
		c, err := siotest.Dial(ln.Addr().String(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect("/", ""); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if rooms := RoomsOf(srv)(); rooms["/"] != 2 {
		t.Errorf("rooms %v, want 2 in /", rooms)
	}
	// A connection in two namespaces counts once.
	if _, err := conns[2].Connect("/other", ""); err != nil {
		t.Fatal(err)
	}
	sockets := func() map[string]int { d, _ := DeliveryOf(srv)(); return d.Sockets }
	if got := sockets(); got["websocket"] != 3 || got["polling"] != 0 {
		t.Errorf("sockets by transport %v, want 3 websocket", got)
	}
	_ = conns[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := gather(t, m)
		c, _ := value(t, fams, "walcast_socket_connects_total", map[string]string{"namespace": "/"})
		d, _ := value(t, fams, "walcast_socket_disconnects_total", map[string]string{"namespace": "/", "reason": "transport close"})
		if c == 3 && d == 1 && sockets()["websocket"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connects %v, disconnects %v; want 3 and 1 (transport close)", c, d)
		}
		time.Sleep(20 * time.Millisecond)
	}

	svc, err := locks.NewService(locks.NewMemoryStore(time.Minute), nil, locks.Config{Observer: m.LockObserver()})
	if err != nil {
		t.Fatal(err)
	}
	who := locks.Caller{UserID: locks.NumericUserID(1), Username: "alice", Role: "admin"}
	res, _ := json.Marshal(map[string]string{"resourceType": "member", "resourceId": "m1"})
	svc.Acquire(context.Background(), who, res)
	svc.Acquire(context.Background(), who, res)
	svc.Release(context.Background(), who, []byte(`{}`))
	fams := gather(t, m)
	for _, tc := range []struct {
		op, result string
		want       float64
	}{{"acquire", "taken", 1}, {"acquire", "refreshed", 1}, {"release", "invalid", 1}} {
		if v, _ := value(t, fams, "walcast_lock_operations_total", map[string]string{"op": tc.op, "result": tc.result}); v != tc.want {
			t.Errorf("lock operations %s %s = %v, want %v", tc.op, tc.result, v, tc.want)
		}
	}
	if v, _ := value(t, fams, "walcast_lock_ack_duration_seconds", map[string]string{"op": "acquire"}); v != 2 {
		t.Errorf("acquire latencies observed %v, want 2", v)
	}
}

// TestDeliveryOf: the delivery counters of a real server count what was
// written to its sockets.
func TestDeliveryOf(t *testing.T) {
	srv := socketio.NewServer(socketio.Config{})
	delivery := func() DeliveryStats {
		d, ok := DeliveryOf(srv)()
		if !ok {
			t.Fatal("DeliveryOf reports no counters for a socketio server")
		}
		return d
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() { srv.Close(); _ = hs.Close() }()
	before := delivery()
	var conns []*siotest.Conn
	for range 2 {
		c, err := siotest.Dial(ln.Addr().String(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Connect("/", ""); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i := range 3 {
		if err := srv.Of("/").To().Emit("tick", i); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		for n := 0; n < 3; {
			msg, err := c.ReadText(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(msg, `2["tick"`) {
				n++
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := delivery()
		if d.Deliveries-before.Deliveries >= 6 && d.BytesWritten-before.BytesWritten >= 6*uint64(len(`42["tick",0]`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery counters %+v after %+v, want six more deliveries of at least %d bytes each", d, before, len(`42["tick",0]`))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
