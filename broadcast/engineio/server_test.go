package engineio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func TestHandshakePolling(t *testing.T) {
	e := newEnv(t, Config{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond, SIDPrefix: "n1-"}, false)
	code, hdr, body := e.do("GET", "EIO=4&transport=polling", "", nil)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("content type %q", ct)
	}
	o := parseOpen(t, body)
	if !strings.HasPrefix(o.SID, "n1-") || len(o.SID) != len("n1-")+20 {
		t.Fatalf("sid %q: want prefix and 20 random characters", o.SID)
	}
	if fmt.Sprint(o.Upgrades) != "[websocket]" || o.PingInterval != 300 || o.PingTimeout != 200 || o.MaxPayload != 1e6 {
		t.Fatalf("open packet %+v", o)
	}
	var keys map[string]any
	_ = json.Unmarshal([]byte(body[1:]), &keys)
	if len(keys) != 5 {
		t.Fatalf("open packet has keys %v, want exactly 5", keys)
	}
	if o2 := parseOpen(t, func() string { _, _, b := e.do("GET", "EIO=4&transport=polling", "", nil); return b }()); o2.SID == o.SID {
		t.Fatal("two sessions got the same sid")
	}
	if e.srv.SessionCount() != 2 {
		t.Fatalf("SessionCount = %d, want 2", e.srv.SessionCount())
	}
}

func TestHandshakeWebSocket(t *testing.T) {
	e := newEnv(t, Config{}, true)
	c := e.mustDialWS("EIO=4&transport=websocket")
	o := parseOpen(t, c.mustRead())
	if len(o.Upgrades) != 0 || o.PingInterval != 25000 || o.PingTimeout != 20000 {
		t.Fatalf("open packet %+v", o)
	}
	s := <-e.sessions
	if s.ID() != o.SID || s.Transport() != "websocket" || s.Handshake().Transport != "websocket" {
		t.Fatalf("session %s on %s", s.ID(), s.Transport())
	}
	c.send("4hello")
	if got := c.mustRead(); got != "4hello" {
		t.Fatalf("echo %q", got)
	}
	if err := wsutil.WriteClientMessage(c, ws.OpBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	got, op, err := c.read()
	if err != nil || op != ws.OpBinary || got != "\x01\x02\x03" {
		t.Fatalf("binary echo %q op %v err %v", got, op, err)
	}
	ev := e.waitEvent(s.ID(), "message")
	if ev.data != "hello" || ev.binary {
		t.Fatalf("first message %+v", ev)
	}
	ev = e.waitEvent(s.ID(), "message")
	if ev.data != "\x01\x02\x03" || !ev.binary {
		t.Fatalf("second message %+v", ev)
	}
}

func TestErrorAnswers(t *testing.T) {
	e := newEnv(t, Config{AllowedOrigins: []string{"https://app.example"}}, false)
	sid := e.pollingSession()
	tests := []struct {
		name   string
		method string
		query  string
		hdr    map[string]string
		status int
		code   int
		msg    string
	}{
		{"no transport", "GET", "EIO=4", nil, 400, 0, "Transport unknown"},
		{"unknown transport", "GET", "EIO=4&transport=abc", nil, 400, 0, "Transport unknown"},
		{"unknown sid", "GET", "EIO=4&transport=polling&sid=nope", nil, 400, 1, "Session ID unknown"},
		{"POST handshake", "POST", "EIO=4&transport=polling", nil, 400, 2, "Bad handshake method"},
		{"PUT handshake", "PUT", "EIO=4&transport=polling", nil, 400, 2, "Bad handshake method"},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", nil, 400, 3, "Bad request"},
		{"PUT on session", "PUT", "EIO=4&transport=polling&sid=" + sid, nil, 400, 3, "Bad request"},
		{"EIO=3", "GET", "EIO=3&transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"no EIO", "GET", "transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"EIO=abc", "GET", "EIO=abc&transport=polling", nil, 400, 5, "Unsupported protocol version"},
		{"foreign origin", "GET", "EIO=4&transport=polling", map[string]string{"Origin": "https://evil.example"}, 403, 4, "Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := e.do(tt.method, tt.query, "", tt.hdr)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%s)", status, tt.status, body)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", hdr.Get("Content-Type"))
			}
			var got struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.Code != tt.code || got.Message != tt.msg {
				t.Fatalf("got %+v, want %d %q", got, tt.code, tt.msg)
			}
		})
	}
	// A refused WebSocket handshake gets the reference server's plain
	// answer and no connection.
	if _, err := e.dialWS("EIO=3&transport=websocket"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("EIO=3 websocket: %v", err)
	}
	if _, err := e.dialWS("EIO=4&transport=websocket&sid=nope"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("unknown sid websocket: %v", err)
	}
	if e.srv.SessionCount() != 1 {
		t.Fatalf("errors created sessions: %d", e.srv.SessionCount())
	}
}

func TestPollingRoundTrip(t *testing.T) {
	e := newEnv(t, Config{}, true)
	sid := e.pollingSession()
	q := "EIO=4&transport=polling&sid=" + sid
	code, hdr, body := e.do("POST", q, "4hello\x1ebAQIDBA==\x1e4world", nil)
	if code != 200 || body != "ok" || hdr.Get("Content-Type") != "text/html" {
		t.Fatalf("POST: %d %q %q", code, body, hdr.Get("Content-Type"))
	}
	if code, _, body = e.do("GET", q, "", nil); code != 200 || body != "4hello\x1ebAQIDBA==\x1e4world" {
		t.Fatalf("GET: %d %q", code, body)
	}
	for _, want := range []event{{data: "hello"}, {data: "\x01\x02\x03\x04", binary: true}, {data: "world"}} {
		ev := e.waitEvent(sid, "message")
		if ev.data != want.data || ev.binary != want.binary {
			t.Fatalf("got %+v, want %+v", ev, want)
		}
	}
	// A pending poll is answered as soon as the server sends.
	done := make(chan string)
	go func() { _, _, b := e.do("GET", q, "", nil); done <- b }()
	time.Sleep(50 * time.Millisecond)
	e.do("POST", q, "4late", nil)
	if got := <-done; got != "4late" {
		t.Fatalf("pending poll got %q", got)
	}
}

func TestPollingBadPayloadClosesSession(t *testing.T) {
	e := newEnv(t, Config{}, false)
	sid := e.pollingSession()
	q := "EIO=4&transport=polling&sid=" + sid
	if code, _, _ := e.do("POST", q, "4fine\x1eabc", nil); code != 400 {
		t.Fatalf("bad payload: %d", code)
	}
	if ev := e.waitEvent(sid, "close"); ev.data != "parse error" {
		t.Fatalf("reason %q", ev.data)
	}
	select {
	case ev := <-e.events:
		t.Fatalf("bad payload delivered %+v", ev)
	default:
	}
	if len(e.backlog) != 0 {
		t.Fatalf("bad payload delivered %+v", e.backlog)
	}
	if code, _, _ := e.do("GET", q, "", nil); code != 400 {
		t.Fatalf("poll after close: %d", code)
	}
}

func TestConcurrentPollsCloseSession(t *testing.T) {
	e := newEnv(t, Config{}, false)
	sid := e.pollingSession()
	q := "EIO=4&transport=polling&sid=" + sid
	first := make(chan string)
	go func() { code, _, b := e.do("GET", q, "", nil); first <- fmt.Sprint(code, " ", b) }()
	// Wait until the first poll is parked.
	for range 100 {
		time.Sleep(10 * time.Millisecond)
		s := e.srv.lookup(sid)
		if s == nil {
			break
		}
		s.mu.Lock()
		parked := s.polling
		s.mu.Unlock()
		if parked {
			break
		}
	}
	if code, _, _ := e.do("GET", q, "", nil); code != 400 {
		t.Fatalf("second poll: %d", code)
	}
	if got := <-first; got != "200 1" {
		t.Fatalf("first poll: %q, want close packet", got)
	}
	if ev := e.waitEvent(sid, "close"); ev.data != "transport error" {
		t.Fatalf("reason %q", ev.data)
	}
	if code, _, _ := e.do("GET", q, "", nil); code != 400 {
		t.Fatalf("poll after close: %d", code)
	}
}

func TestClientClosePolling(t *testing.T) {
	e := newEnv(t, Config{}, false)
	sid := e.pollingSession()
	q := "EIO=4&transport=polling&sid=" + sid
	e.do("POST", q, "1", nil)
	if ev := e.waitEvent(sid, "close"); ev.data != "transport close" {
		t.Fatalf("reason %q", ev.data)
	}
	// The next poll collects the noop, then the session is gone.
	if code, _, b := e.do("GET", q, "", nil); code != 200 || b != "6" {
		t.Fatalf("poll after client close: %d %q", code, b)
	}
	if code, _, _ := e.do("GET", q, "", nil); code != 400 {
		t.Fatalf("second poll after client close: %d", code)
	}
}

func TestUpgrade(t *testing.T) {
	e := newEnv(t, Config{}, true)
	sid := e.pollingSession()
	s := <-e.sessions
	q := "EIO=4&transport=polling&sid=" + sid
	pending := make(chan string)
	go func() { code, _, b := e.do("GET", q, "", nil); pending <- fmt.Sprint(code, " ", b) }()

	c := e.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	// A second WebSocket while one is upgrading is opened and closed.
	c2 := e.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	c2.expectClosed()

	c.send("2probe")
	if got := c.mustRead(); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if got := <-pending; got != "200 6" {
		t.Fatalf("pending poll released with %q, want noop", got)
	}
	// Sent after the probe, before the upgrade: delivered on WebSocket.
	s.Send(NewMessage([]byte("queued")))
	c.send("5")
	if got := c.mustRead(); got != "4queued" {
		t.Fatalf("first websocket message %q", got)
	}
	if s.Transport() != "websocket" {
		t.Fatalf("transport %q after upgrade", s.Transport())
	}
	c.send("4hi")
	if got := c.mustRead(); got != "4hi" {
		t.Fatalf("echo after upgrade %q", got)
	}
	if code, _, _ := e.do("GET", q, "", nil); code != 400 {
		t.Fatalf("poll after upgrade: %d", code)
	}
	if code, _, _ := e.do("POST", q, "4x", nil); code != 400 {
		t.Fatalf("post after upgrade: %d", code)
	}
	c3 := e.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	c3.expectClosed()
	// The refused sockets left the session alone.
	c.send("4still")
	if got := c.mustRead(); got != "4still" {
		t.Fatalf("echo %q", got)
	}
}

// TestCloseAfterProbe: a session closed by the server after the probe was
// answered, before the client's "5", is closed on the WebSocket the client
// now reads: the official client has paused polling at that point, and a
// probe socket closed under it would leave it deaf until its ping timeout.
func TestCloseAfterProbe(t *testing.T) {
	e := newEnv(t, Config{}, false)
	sid := e.pollingSession()
	s := <-e.sessions
	q := "EIO=4&transport=polling&sid=" + sid
	pending := make(chan string)
	go func() { code, _, b := e.do("GET", q, "", nil); pending <- fmt.Sprint(code, " ", b) }()
	c := e.mustDialWS("EIO=4&transport=websocket&sid=" + sid)
	c.send("2probe")
	if got := c.mustRead(); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if got := <-pending; got != "200 6" {
		t.Fatalf("pending poll released with %q, want noop", got)
	}
	s.Close("forced server close")
	time.Sleep(50 * time.Millisecond) // the close has run before the client's "5"
	c.send("5")
	start := time.Now()
	if code := c.expectClosed(); code != ws.StatusNormalClosure {
		t.Fatalf("close code %d, want %d", code, ws.StatusNormalClosure)
	}
	if d := time.Since(start); d > closeGrace/2 {
		t.Fatalf("closed %v after the client's upgrade, want at once", d)
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, Config{PingInterval: 40 * time.Millisecond, PingTimeout: 60 * time.Millisecond}, false)

	// A client that answers pings stays connected across many intervals.
	alive := e.mustDialWS("EIO=4&transport=websocket")
	aliveSID := parseOpen(t, alive.mustRead()).SID
	for range 5 {
		if got := alive.mustRead(); got != "2" {
			t.Fatalf("want ping, got %q", got)
		}
		alive.send("3")
	}
	if e.srv.lookup(aliveSID) == nil {
		t.Fatal("the answering client was closed")
	}

	// One that does not is closed with "ping timeout".
	silent := e.mustDialWS("EIO=4&transport=websocket")
	sid := parseOpen(t, silent.mustRead()).SID
	if got := silent.mustRead(); got != "2" {
		t.Fatalf("want ping, got %q", got)
	}
	if ev := e.waitEvent(sid, "close"); ev.data != "ping timeout" {
		t.Fatalf("reason %q", ev.data)
	}
	silent.expectClosed()

	// Same over polling.
	psid := e.pollingSession()
	if ev := e.waitEvent(psid, "close"); ev.data != "ping timeout" {
		t.Fatalf("polling reason %q", ev.data)
	}
	if code, _, _ := e.do("GET", "EIO=4&transport=polling&sid="+psid, "", nil); code != 400 {
		t.Fatalf("poll after timeout: %d", code)
	}
}

func TestCORS(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		origin      string
		status      int
		allowOrigin string
		credentials string
	}{
		{"listed origin", Config{AllowedOrigins: []string{"https://a.example"}}, "https://a.example", 200, "https://a.example", ""},
		{"listed with credentials", Config{AllowedOrigins: []string{"https://a.example"}, AllowCredentials: true}, "https://a.example", 200, "https://a.example", "true"},
		{"unlisted origin", Config{AllowedOrigins: []string{"https://a.example"}}, "https://b.example", 403, "", ""},
		{"star", Config{AllowedOrigins: []string{"*"}}, "https://any.example", 200, "https://any.example", ""},
		{"no list, cross origin", Config{}, "https://b.example", 403, "", ""},
		{"no origin header", Config{}, "", 200, "", ""},
		{"credentialed origin", Config{AllowedOrigins: []string{"https://a.example"}, CredentialedOrigins: []string{"https://admin.example"}}, "https://admin.example", 200, "https://admin.example", "true"},
		{"listed beside a credentialed one", Config{AllowedOrigins: []string{"https://a.example"}, CredentialedOrigins: []string{"https://admin.example"}}, "https://a.example", 200, "https://a.example", ""},
		{"star beside a credentialed one", Config{AllowedOrigins: []string{"*"}, CredentialedOrigins: []string{"https://admin.example"}}, "https://any.example", 200, "https://any.example", ""},
		{"credentialed only, another origin", Config{CredentialedOrigins: []string{"https://admin.example"}}, "https://b.example", 403, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg, false)
			hdr := map[string]string{}
			if tt.origin != "" {
				hdr["Origin"] = tt.origin
			}
			status, h, _ := e.do("GET", "EIO=4&transport=polling", "", hdr)
			if status != tt.status || h.Get("Access-Control-Allow-Origin") != tt.allowOrigin || h.Get("Access-Control-Allow-Credentials") != tt.credentials {
				t.Fatalf("status %d allow-origin %q credentials %q", status, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
			}
		})
	}
	t.Run("same origin without list", func(t *testing.T) {
		e := newEnv(t, Config{}, false)
		if status, _, _ := e.do("GET", "EIO=4&transport=polling", "", map[string]string{"Origin": e.http.URL}); status != 200 {
			t.Fatalf("status %d", status)
		}
	})
	// The scheme is part of the origin: https://host is not the origin of
	// a plain-HTTP request to host, unless the proxy in front says the
	// client spoke https.
	t.Run("same origin checks the scheme", func(t *testing.T) {
		e := newEnv(t, Config{}, false)
		host := strings.TrimPrefix(e.http.URL, "http://")
		for _, tc := range []struct {
			origin, proto string
			status        int
		}{
			{"http://" + host, "", 200},
			{"https://" + host, "", 403},
			{"https://" + host, "https", 200},
			{"http://" + host, "https", 403},
			{"ws://" + host, "", 403},
		} {
			hdr := map[string]string{"Origin": tc.origin}
			if tc.proto != "" {
				hdr["X-Forwarded-Proto"] = tc.proto
			}
			if status, _, _ := e.do("GET", "EIO=4&transport=polling", "", hdr); status != tc.status {
				t.Errorf("origin %s, forwarded proto %q: status %d, want %d", tc.origin, tc.proto, status, tc.status)
			}
		}
	})
	t.Run("refused origins reported once", func(t *testing.T) {
		var mu sync.Mutex
		var reported []string
		e := newEnv(t, Config{AllowedOrigins: []string{"https://a.example"}, OnRefusedOrigin: func(o string) {
			mu.Lock()
			reported = append(reported, o)
			mu.Unlock()
		}}, false)
		for _, o := range []string{"https://b.example", "https://b.example", "https://c.example", "https://a.example"} {
			e.do("GET", "EIO=4&transport=polling", "", map[string]string{"Origin": o})
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(reported, []string{"https://b.example", "https://c.example"}) {
			t.Errorf("reported %v, want b and c once each", reported)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		e := newEnv(t, Config{AllowedOrigins: []string{"https://a.example"}, AllowCredentials: true}, false)
		status, h, _ := e.do("OPTIONS", "EIO=4&transport=polling", "", map[string]string{
			"Origin": "https://a.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
		})
		if status != 204 || h.Get("Access-Control-Allow-Origin") != "https://a.example" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Headers") != "content-type" ||
			h.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("preflight %d %v", status, h)
		}
	})
	t.Run("websocket from foreign origin", func(t *testing.T) {
		e := newEnv(t, Config{AllowedOrigins: []string{"https://a.example"}}, false)
		u := "ws" + strings.TrimPrefix(e.url("EIO=4&transport=websocket"), "http")
		d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {"https://evil.example"}})}
		if _, _, _, err := d.Dial(t.Context(), u); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("dial: %v", err)
		}
	})
}

func TestMaxPayload(t *testing.T) {
	e := newEnv(t, Config{MaxPayload: 100}, false)
	sid := e.pollingSession()
	if code, _, _ := e.do("POST", "EIO=4&transport=polling&sid="+sid, "4"+strings.Repeat("x", 100), nil); code != 413 {
		t.Fatalf("oversized POST: %d", code)
	}
	e.waitEvent(sid, "close")

	c := e.mustDialWS("EIO=4&transport=websocket")
	wsid := parseOpen(t, c.mustRead()).SID
	c.send("4" + strings.Repeat("x", 99)) // exactly at the limit
	if ev := e.waitEvent(wsid, "message"); len(ev.data) != 99 {
		t.Fatalf("message at the limit: %d bytes", len(ev.data))
	}
	c.send("4" + strings.Repeat("x", 100))
	if code := c.expectClosed(); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	if ev := e.waitEvent(wsid, "close"); ev.data != "transport error" {
		t.Fatalf("reason %q", ev.data)
	}
}

func TestBadWebSocketInput(t *testing.T) {
	e := newEnv(t, Config{}, false)
	tests := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"bad packet type", maskedFrame(true, opText, []byte("abc")), "parse error"},
		{"empty text", maskedFrame(true, opText, nil), "parse error"},
		{"client ping", maskedFrame(true, opText, []byte("2")), "transport error"},
		{"unmasked", []byte{0x81, 0x02, '4', 'x'}, "transport error"},
		{"reserved bits", func() []byte { f := maskedFrame(true, opText, []byte("4x")); f[0] |= 0x40; return f }(), "transport error"},
		{"continuation first", maskedFrame(true, opContinuation, []byte("4x")), "transport error"},
		{"close frame", maskedFrame(true, opClose, []byte{0x03, 0xe8}), "transport close"},
		{"close packet", maskedFrame(true, opText, []byte("1")), "transport close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.mustDialWS("EIO=4&transport=websocket")
			sid := parseOpen(t, c.mustRead()).SID
			if _, err := c.conn.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			if ev := e.waitEvent(sid, "close"); ev.data != tt.reason {
				t.Fatalf("reason %q, want %q", ev.data, tt.reason)
			}
			c.expectClosed()
		})
	}
	// Fragmented messages and control frames in between still work.
	c := e.mustDialWS("EIO=4&transport=websocket")
	sid := parseOpen(t, c.mustRead()).SID
	var b bytes.Buffer
	b.Write(maskedFrame(false, opText, []byte("4frag")))
	b.Write(maskedFrame(true, opPing, []byte("p")))
	b.Write(maskedFrame(true, opContinuation, []byte("mented")))
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if ev := e.waitEvent(sid, "message"); ev.data != "fragmented" {
		t.Fatalf("message %q", ev.data)
	}
}

func TestSlowConsumerIsCut(t *testing.T) {
	e := newEnv(t, Config{SendQueue: 64}, false)
	c := e.mustDialWS("EIO=4&transport=websocket") // never reads again
	_ = c
	s := <-e.sessions
	pkt := NewMessage(bytes.Repeat([]byte("x"), 64<<10))
	sent := 0
	// The client's socket buffers fill, the writer blocks, the queue fills,
	// and Send reports false instead of blocking.
	for s.Send(pkt) {
		sent++
		if sent > 1e5 {
			t.Fatal("Send never refused a consumer that does not read")
		}
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n > 64 {
			t.Fatalf("queue grew to %d past its bound", n)
		}
	}
	if ev := e.waitEvent(s.ID(), "close"); ev.data != "slow consumer" {
		t.Fatalf("reason %q", ev.data)
	}
	if s.Send(pkt) {
		t.Fatal("Send succeeded on a closed session")
	}
	t.Logf("cut after %d sends of 64 KiB", sent)
}

func TestSendCoalescesInOrder(t *testing.T) {
	e := newEnv(t, Config{}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	c.mustRead()
	s := <-e.sessions
	var pkts []*Packet
	for i := range 50 {
		pkts = append(pkts, NewMessage([]byte(fmt.Sprint(i))))
	}
	if !s.Send(pkts...) {
		t.Fatal("Send refused")
	}
	for i := range 50 {
		if got := c.mustRead(); got != fmt.Sprint("4", i) {
			t.Fatalf("frame %d = %q", i, got)
		}
	}
}

func TestServerClose(t *testing.T) {
	e := newEnv(t, Config{}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	wsid := parseOpen(t, c.mustRead()).SID
	ws := <-e.sessions
	psid := e.pollingSession()
	<-e.sessions
	pending := make(chan string)
	go func() {
		code, _, b := e.do("GET", "EIO=4&transport=polling&sid="+psid, "", nil)
		pending <- fmt.Sprint(code, " ", b)
	}()
	time.Sleep(50 * time.Millisecond)
	ws.Send(NewMessage([]byte("last words")))
	e.srv.Close()
	if got := c.mustRead(); got != "4last words" {
		t.Fatalf("queued message before close: %q", got)
	}
	if code := c.expectClosed(); code != 1000 {
		t.Fatalf("close code %d", code)
	}
	if got := <-pending; got != "200 1" {
		t.Fatalf("pending poll: %q", got)
	}
	for _, sid := range []string{wsid, psid} {
		if ev := e.waitEvent(sid, "close"); ev.data != "server shutting down" {
			t.Fatalf("reason %q", ev.data)
		}
	}
	if code, _, _ := e.do("GET", "EIO=4&transport=polling", "", nil); code != 400 {
		t.Fatalf("handshake after Close: %d", code)
	}
}

func TestOnCloseOnceAndAfterMessage(t *testing.T) {
	var mu sync.Mutex
	var log []string
	inMessage := make(chan struct{})
	release := make(chan struct{})
	srv := NewServer(Config{}, func(s *Session) {
		s.SetHandlers(Handlers{
			OnMessage: func(data []byte, binary bool) {
				close(inMessage)
				<-release
				mu.Lock()
				log = append(log, "message")
				mu.Unlock()
			},
			OnClose: func(reason string) {
				mu.Lock()
				log = append(log, "close:"+reason)
				mu.Unlock()
			},
		})
	})
	e := &testEnv{t: t, srv: srv}
	e.http = newHTTPTestServer(t, srv)
	e.base = e.http.URL + srv.Config().Path
	c := e.mustDialWS("EIO=4&transport=websocket")
	sid := parseOpen(t, c.mustRead()).SID
	c.send("4x")
	<-inMessage
	s := srv.lookup(sid)
	s.Close("one")
	s.Close("two")
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(log, ",")
		mu.Unlock()
		if got == "message,close:one" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler calls %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
