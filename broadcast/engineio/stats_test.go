package engineio

import (
	"bytes"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitStats polls Stats until ok accepts it.
func waitStats(t *testing.T, srv *Server, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStatsCountDeliveries(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Hour}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	open := c.mustRead()
	ws := <-e.sessions
	psid := e.pollingSession()
	<-e.sessions
	st := waitStats(t, e.srv, "two sessions", func(st Stats) bool { return st.SessionsWebSocket == 1 && st.SessionsPolling == 1 })
	// The WebSocket's open packet was written; the polling handshake
	// answers outside any session's queue.
	openFrame := len(appendFrame(nil, opText, typeOpen, []byte(open[1:])))
	if st.Delivered != 1 || st.BytesWritten != uint64(openFrame) {
		t.Fatalf("after the handshakes: %+v, want 1 packet of %d bytes", st, openFrame)
	}

	p := NewMessage([]byte("hello"))
	for range 3 {
		if !ws.Send(p) {
			t.Fatal("send refused")
		}
	}
	for range 3 {
		if got := c.mustRead(); got != "4hello" {
			t.Fatalf("got %q", got)
		}
	}
	want := st.BytesWritten + 3*uint64(len(p.wsBytes()))
	st = waitStats(t, e.srv, "three websocket packets", func(st Stats) bool { return st.Delivered == 4 })
	if st.BytesWritten != want {
		t.Fatalf("bytes written %d, want %d", st.BytesWritten, want)
	}

	e.srv.lookup(psid).Send(NewMessage([]byte("polled")))
	if code, _, body := e.do("GET", "EIO=4&transport=polling&sid="+psid, "", nil); code != 200 || body != "4polled" {
		t.Fatalf("poll: %d %q", code, body)
	}
	st = waitStats(t, e.srv, "a polled packet", func(st Stats) bool { return st.Delivered == 5 })
	if want += uint64(len("4polled")); st.BytesWritten != want {
		t.Fatalf("bytes written %d, want %d", st.BytesWritten, want)
	}

	// A closed session keeps its counts; what it is sent afterwards is
	// dropped.
	ws.Close("bye")
	c.expectClosed()
	waitStats(t, e.srv, "websocket closed", func(st Stats) bool { return st.SessionsWebSocket == 0 })
	if ws.Send(p) {
		t.Fatal("a closed session took a packet")
	}
	st = e.srv.Stats()
	if st.Delivered != 5 || st.Dropped != 1 || st.SlowConsumerCuts != 0 {
		t.Fatalf("after close: %+v, want 5 delivered, 1 dropped", st)
	}
}

func TestStatsCountSlowConsumerCut(t *testing.T) {
	const queue = 4
	e := newEnv(t, Config{SendQueue: queue, SendBuffer: 8 << 10, PingInterval: time.Hour}, false)
	s, _ := dialNonReading(t, e)
	// The session is handed out before its transport is attached; the
	// count below assumes the open packet went first.
	waitStats(t, e.srv, "open packet", func(st Stats) bool { return st.Delivered == 1 })
	p := NewMessage(bytes.Repeat([]byte("x"), 4096))
	sent := 0
	for s.Send(p) {
		sent++
		if sent > 10000 {
			t.Fatal("never cut")
		}
	}
	e.waitEvent(s.ID(), "close")
	// Every packet offered is either delivered or dropped: the refused
	// one, what was queued, and what was held half written. A write shard
	// may still hold packets it took from the queue when the session
	// closed; it counts them when it lets go, so the sum is waited for.
	st := waitStats(t, e.srv, "cut", func(st Stats) bool {
		return st.SlowConsumerCuts == 1 && st.SessionsWebSocket == 0 && st.Delivered-1+st.Dropped == uint64(sent+1)
	})
	if got := st.Delivered - 1 + st.Dropped; got != uint64(sent+1) {
		t.Fatalf("%d sent + 1 refused, but %d delivered (besides the open packet) + %d dropped", sent, st.Delivered-1, st.Dropped)
	}
	if st.Dropped == 0 || st.SendQueueDrops != 1 {
		t.Fatalf("dropped %d, of which %d by the full queue; want the refused packet in both", st.Dropped, st.SendQueueDrops)
	}
}

// TestIdleWebSocketsHoldNoGoroutine: on Linux the poller watches idle
// connections, so sessions that only receive hold no goroutine, and a
// message from the client still starts a reader.
func TestIdleWebSocketsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux only")
	}
	const n = 50
	e := newEnv(t, Config{PingInterval: time.Hour}, false)
	before := runtime.NumGoroutine()
	clients := make([]*wsClient, n)
	sessions := make([]*Session, n)
	for i := range clients {
		clients[i] = e.mustDialWS("EIO=4&transport=websocket")
		clients[i].mustRead()
		sessions[i] = <-e.sessions
	}
	// Sending goes through the write shards (a goroutine per CPU, not
	// per session).
	for i, s := range sessions {
		s.Send(NewMessage([]byte("x")))
		if got := clients[i].mustRead(); got != "4x" {
			t.Fatalf("got %q", got)
		}
	}
	waitStats(t, e.srv, "all idle", func(st Stats) bool { return st.IdleWatched == n })
	// The test's own client readers are not the server's: gobwas reads on
	// the test goroutine, so the count is the server's alone.
	var grown int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		grown = runtime.NumGoroutine() - before
		if grown <= runtime.GOMAXPROCS(0)+2 || time.Now().After(deadline) {
			break
		}
	}
	if grown > runtime.GOMAXPROCS(0)+2 {
		t.Fatalf("%d goroutines more for %d idle sessions (want the write shards and the poller only)", grown, n)
	}
	clients[7].send("4ping me")
	if ev := e.waitEvent(sessions[7].ID(), "message"); ev.data != "ping me" {
		t.Fatalf("message %q", ev.data)
	}
	clients[7].send("4again")
	if ev := e.waitEvent(sessions[7].ID(), "message"); ev.data != "again" {
		t.Fatalf("message %q", ev.data)
	}
	waitStats(t, e.srv, "idle again", func(st Stats) bool { return st.IdleWatched == n })
}

// TestLargeSendResumesOnWriter: a packet bigger than the kernel's send
// buffer fills it from the write shard; a writer goroutine finishes it and
// what was sent meanwhile, in order.
func TestLargeSendResumesOnWriter(t *testing.T) {
	e := newEnv(t, Config{SendBuffer: 8 << 10, PingInterval: time.Hour}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	c.mustRead()
	s := <-e.sessions
	big := strings.Repeat("0123456789", 100_000) // 1 MB
	s.Send(NewMessage([]byte(big)))
	s.Send(NewMessage([]byte("after")))
	if got := c.mustRead(); got != "4"+big {
		t.Fatalf("big message arrived as %d bytes", len(got))
	}
	if got := c.mustRead(); got != "4after" {
		t.Fatalf("got %q", got)
	}
}

// TestSessionClosedBeforeItsTransport: a session closed while onSession
// has it (before the server has attached its WebSocket) leaves the server
// and its connection, rather than being registered afterwards and held.
func TestSessionClosedBeforeItsTransport(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Hour}, false)
	srv := NewServer(Config{PingInterval: time.Hour, Logger: e.srv.cfg.Logger}, func(s *Session) { s.Close("refused early") })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	e.base = hs.URL + srv.Config().Path
	c := e.mustDialWS("EIO=4&transport=websocket")
	c.expectClosed()
	st := waitStats(t, srv, "no session", func(st Stats) bool { return st.SessionsWebSocket == 0 })
	if st.Delivered != 0 {
		t.Fatalf("%+v: a closed session delivered", st)
	}
}
