package engineio

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Hostile clients: what a client that has not authenticated can make the
// server hold, driven over real sockets.

// frameHeader is the header of a masked client frame announcing n bytes of
// payload (with headerMask), and nothing after it.
func frameHeader(op byte, n int) []byte {
	return append([]byte{0x80 | op, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, headerMask[:]...)
}

var headerMask = [4]byte{1, 2, 3, 4}

// masked masks payload bytes that start at offset off of a frame made by
// frameHeader.
func masked(off int, payload []byte) []byte {
	out := make([]byte, len(payload))
	for i, c := range payload {
		out[i] = c ^ headerMask[(off+i)%4]
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestFrameHeaderAllocatesWhatArrives: 200 sessions each announce a
// message just under MaxPayload (14 bytes of header) and send 10 bytes of
// it. The server holds what arrived, not what was announced: before, each
// header cost the announced megabyte at once.
func TestFrameHeaderAllocatesWhatArrives(t *testing.T) {
	// No cap on sessions that are not admitted: this is about what each
	// costs.
	e := newEnv(t, Config{MaxPendingPerAddress: -1}, false)
	const conns, announced = 200, 999_999
	go func() {
		for range e.sessions {
		}
	}()
	before := heapInUse()
	clients := make([]*wsClient, conns)
	for i := range clients {
		c := e.mustDialWS("EIO=4&transport=websocket")
		if _, _, err := c.read(); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if _, err := c.conn.Write(append(frameHeader(opText, announced), masked(0, []byte("4abcdefghi"))...)); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	// The readers take the headers and wait for the rest.
	time.Sleep(500 * time.Millisecond)
	grown := int64(heapInUse()) - int64(before)
	t.Logf("%d sessions, each %d bytes announced and 10 sent: heap grew %d KB (%d B per session)", conns, announced, grown/1024, grown/conns)
	if grown > 10<<20 {
		t.Errorf("heap grew %d MB for %d announced messages of which 10 bytes each arrived, want < 10 MB", grown>>20, conns)
	}
	// The messages still arrive whole when their bytes come.
	if _, err := clients[0].conn.Write(masked(10, []byte(strings.Repeat("x", announced-10)))); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		var ev event
		select {
		case ev = <-e.events:
		case <-timeout:
			t.Fatal("the message did not arrive")
		}
		if ev.kind == "close" {
			t.Fatalf("a session closed: %q", ev.data)
		}
		if ev.kind == "message" {
			if len(ev.data) != announced-1 {
				t.Fatalf("message of %d bytes, want %d", len(ev.data), announced-1)
			}
			break
		}
	}
}

// TestStalledMessageIsCut: a client that starts a message and stops
// sending is cut after FrameTimeout with 1008; one that idles between
// messages is not, and one that sends a message in pieces within the
// timeout is heard.
func TestStalledMessageIsCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, Config{FrameTimeout: timeout, PingInterval: time.Minute}, false)
	tests := []struct {
		name string
		sent []byte
	}{
		{"header only", frameHeader(opText, 1000)},
		{"part of the payload", maskedFrame(true, opText, []byte("4"+strings.Repeat("x", 99)))[:50]},
		{"part of the header", maskedFrame(true, opText, []byte("4hello"))[:3]},
		{"fragment without its end", maskedFrame(false, opText, []byte("4frag"))},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.mustDialWS("EIO=4&transport=websocket")
			sid := parseOpen(t, c.mustRead()).SID
			start := time.Now()
			if _, err := c.conn.Write(tt.sent); err != nil {
				t.Fatal(err)
			}
			if code := c.expectClosed(); code != 1008 {
				t.Fatalf("close code %d, want 1008", code)
			}
			if took := time.Since(start); took < timeout {
				t.Fatalf("cut after %s, before the %s timeout", took, timeout)
			}
			if ev := e.waitEvent(sid, "close"); ev.data != "transport error" {
				t.Fatalf("reason %q", ev.data)
			}
			if got := e.srv.Stats().Refused.SlowMessage; got != uint64(i+1) {
				t.Fatalf("Stats().Refused.SlowMessage = %d, want %d", got, i+1)
			}
		})
	}

	c := e.mustDialWS("EIO=4&transport=websocket")
	sid := parseOpen(t, c.mustRead()).SID
	time.Sleep(3 * timeout) // idle between messages: no bound
	frame := maskedFrame(true, opText, []byte("4in pieces"))
	for _, part := range [][]byte{frame[:1], frame[1:8], frame[8:]} {
		if _, err := c.conn.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 4)
	}
	if ev := e.waitEvent(sid, "message"); ev.data != "in pieces" {
		t.Fatalf("message %q", ev.data)
	}
	// The deadline was for that message only.
	time.Sleep(3 * timeout)
	c.send("4again")
	if ev := e.waitEvent(sid, "message"); ev.data != "again" {
		t.Fatalf("message %q", ev.data)
	}
}

// rawRequest writes req on a new connection to the test server and
// returns the connection with the response read from it (nil when the
// server closed the connection without one).
func (e *testEnv) rawRequest(req string) (net.Conn, *http.Response) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	// Written aside: a server that refuses a request early stops reading
	// it.
	go func() { _, _ = io.WriteString(c, req) }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, nil
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return c, res
}

// closedWithin reports how long the server took to close c, failing when
// it did not within limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return took
}

// TestHeaderCap: a request whose headers pass MaxHeaderBytes is answered
// 431 and its connection closed, before the server reads the rest; one
// under it is served. Before, net/http's 1 MB default let each of them
// cost a megabyte, and a handshake kept them all.
func TestHeaderCap(t *testing.T) {
	e := newEnv(t, Config{}, false)
	big := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("j", 1<<20) + "\r\n\r\n"
	c, res := e.rawRequest(big)
	if res == nil || res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("1 MB of headers: %v, want 431", res)
	}
	closedWithin(t, c, 5*time.Second)

	ok := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("j", 12<<10) + "\r\n\r\n"
	if _, res := e.rawRequest(ok); res == nil || res.StatusCode != http.StatusOK {
		t.Fatalf("12 KiB of headers: %v, want 200", res)
	}
}

// TestHTTPTimeouts: a connection that sends nothing, or half a request
// line, is closed after HeaderTimeout; a keep-alive connection after
// IdleTimeout; a body that trickles (to the engine or to any other path)
// after BodyTimeout. Before, each was held for as long as the client
// liked.
func TestHTTPTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, Config{HeaderTimeout: timeout, IdleTimeout: timeout, BodyTimeout: timeout}, false)
	addr := e.http.Listener.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("silent", func(t *testing.T) {
		if took := closedWithin(t, dial(), 10*timeout); took < timeout/2 {
			t.Fatalf("closed after %s", took)
		}
	})
	t.Run("half a request line", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /socket.io/?EIO=4&tra")
		closedWithin(t, c, 10*timeout)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, res := e.rawRequest("GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
		if res == nil || res.StatusCode != http.StatusNotFound || res.Close {
			t.Fatalf("response %v, want a kept-alive 404", res)
		}
		if took := closedWithin(t, c, 10*timeout); took < timeout/2 {
			t.Fatalf("closed after %s, before IdleTimeout", took)
		}
	})
	t.Run("trickling polling POST", func(t *testing.T) {
		sid := e.pollingSession()
		before := e.srv.Stats().Refused.SlowBody
		c := dial()
		_, _ = io.WriteString(c, "POST /socket.io/?EIO=4&transport=polling&sid="+sid+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4abc")
		closedWithin(t, c, 10*timeout)
		if ev := e.waitEvent(sid, "close"); ev.data != "transport error" {
			t.Fatalf("session closed with %q", ev.data)
		}
		if got := e.srv.Stats().Refused.SlowBody; got != before+1 {
			t.Fatalf("Stats().Refused.SlowBody = %d, want %d", got, before+1)
		}
	})
	t.Run("trickling body elsewhere", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
		closedWithin(t, c, 10*timeout)
	})
	t.Run("long poll outlives the timeouts", func(t *testing.T) {
		sid := e.pollingSession()
		sess := <-e.sessions
		for sess.ID() != sid {
			sess = <-e.sessions
		}
		go func() {
			time.Sleep(4 * timeout)
			sess.Send(NewMessage([]byte("late")))
		}()
		code, _, body := e.do("GET", "EIO=4&transport=polling&sid="+sid, "", nil)
		if code != 200 || body != "4late" {
			t.Fatalf("long poll: %d %q", code, body)
		}
	})
}

// handshakeFrom opens a polling session with the given X-Forwarded-For
// (none when empty) and returns the status and whether the server keeps
// the connection alive.
func (e *testEnv) handshakeFrom(xff string) (code int, keepAlive bool) {
	e.t.Helper()
	req := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
	if xff != "" {
		req += "X-Forwarded-For: " + xff + "\r\n"
	}
	_, res := e.rawRequest(req + "\r\n")
	if res == nil {
		e.t.Fatal("no answer to the handshake")
	}
	return res.StatusCode, !res.Close
}

// TestPendingCaps: sessions that have not been admitted are capped per
// client address (429) and overall (503); an admitted or closed session
// frees its slot; behind a trusted proxy each client address counts on
// its own, and an untrusted peer's X-Forwarded-For is ignored.
func TestPendingCaps(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	e := newEnv(t, Config{MaxPending: 5, MaxPendingPerAddress: 2, Logger: log}, false)
	var sessions []*Session
	// A trusted proxy's connections are kept alive; a client's are not
	// while its session has not been admitted.
	wantKeepAlive := false
	open := func(xff string, want int) {
		t.Helper()
		code, keep := e.handshakeFrom(xff)
		if code != want {
			t.Fatalf("handshake from %q: %d, want %d", xff, code, want)
		}
		if code == http.StatusOK {
			sessions = append(sessions, <-e.sessions)
			if keep != wantKeepAlive {
				t.Fatalf("connection kept alive: %v, want %v", keep, wantKeepAlive)
			}
		}
	}
	open("", 200)
	open("", 200)
	open("", 429)
	// Not trusted: the header changes nothing.
	open("192.0.2.1", 429)
	if st := e.srv.Stats(); st.Refused.PendingPerAddress != 2 || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
	sessions[0].Admit()
	open("", 200)
	// An admitted session's polls keep their connection.
	sessions[0].Send(NewMessage([]byte("hi")))
	if _, res := e.rawRequest("GET /socket.io/?EIO=4&transport=polling&sid=" + sessions[0].ID() + " HTTP/1.1\r\nHost: x\r\n\r\n"); res == nil || res.StatusCode != 200 || res.Close {
		t.Fatalf("poll of an admitted session: %v", res)
	}
	sessions[1].Close("test")
	e.waitEvent(sessions[1].ID(), "close")
	open("", 200)
	mu.Lock()
	hint := strings.Count(logs.String(), "X-Forwarded-For")
	mu.Unlock()
	if hint != 1 {
		t.Errorf("%d hints about X-Forwarded-For from an untrusted peer, want 1:\n%s", hint, logs.String())
	}
	// A WebSocket handshake is refused the same way, before the upgrade.
	if _, err := e.dialWS("EIO=4&transport=websocket"); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("WebSocket handshake over the cap: %v", err)
	}

	// Trusted proxies: each forwarded client has its own count, an IPv6
	// client its /64, and the overall cap holds.
	wantKeepAlive = true
	e = newEnv(t, Config{MaxPending: 6, MaxPendingPerAddress: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}, false)
	open("192.0.2.1", 200)
	open("192.0.2.1", 200)
	open("192.0.2.1", 429)
	open("192.0.2.7, 10.1.2.3", 200) // through a second trusted proxy
	open("2001:db8::1", 200)
	open("2001:db8::2", 200)
	open("2001:db8::3", 429)
	open("2001:db8:0:1::1", 200)
	open("198.51.100.1", 503)
	if st := e.srv.Stats(); st.Refused.PendingOverall != 1 || st.Refused.PendingPerAddress != 2 || st.Pending != 6 {
		t.Fatalf("stats %+v", st.Refused)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestClientAddr(t *testing.T) {
	srv := NewServer(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}, nil)
	tests := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1"},
		{"192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"}, // untrusted peer
		{"10.0.0.1:5000", nil, "10.0.0.1"},
		{"10.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"10.0.0.1:5000", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1"}, // the left one is the client's to write
		{"10.0.0.1:5000", []string{"198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"10.0.0.1:5000", []string{"198.51.100.1", "10.0.0.2"}, "198.51.100.1"}, // two header lines
		{"10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"10.0.0.1:5000", []string{"unknown"}, "10.0.0.1"},
		{"[fd00::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"[::ffff:10.0.0.1]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"not an address", nil, "invalid IP"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{"X-Forwarded-For": tt.xff}}
		if got := srv.clientAddr(r).String(); got != tt.want {
			t.Errorf("%s with X-Forwarded-For %q: %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestUnreadPollAnswerEndsSession: a client that polls and never reads the
// answer holds the request only until BodyTimeout; then its session ends
// (before, the request waited on the client forever).
func TestUnreadPollAnswerEndsSession(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, Config{BodyTimeout: timeout, SendQueue: 4096}, false)
	sid := e.pollingSession()
	sess := <-e.sessions
	chunk := NewMessage([]byte(strings.Repeat("x", 256<<10)))
	for range 64 { // 16 MB: more than any socket buffer takes
		sess.Send(chunk)
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /socket.io/?EIO=4&transport=polling&sid="+sid+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ev := e.waitEvent(sid, "close"); ev.data != "transport error" {
		t.Fatalf("session closed with %q", ev.data)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("closed after %s, before BodyTimeout", took)
	}
}
