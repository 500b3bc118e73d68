package engineio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// event is something a session reported to its handlers.
type event struct {
	sid    string
	kind   string // "message" or "close"
	data   string
	binary bool
}

// testEnv is a real Engine.IO server on a loopback port whose sessions
// report their traffic on events and, when echo is set, send every message
// back.
type testEnv struct {
	t        *testing.T
	srv      *Server
	http     *httptest.Server
	base     string // http://127.0.0.1:port/socket.io/
	events   chan event
	backlog  []event // events read while waiting for others
	sessions chan *Session
}

func newEnv(t *testing.T, cfg Config, echo bool) *testEnv {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &testEnv{t: t, events: make(chan event, 1024), sessions: make(chan *Session, 64)}
	e.srv = NewServer(cfg, func(s *Session) {
		s.SetHandlers(Handlers{
			OnMessage: func(data []byte, binary bool) {
				e.events <- event{sid: s.ID(), kind: "message", data: string(data), binary: binary}
				if echo {
					b := append([]byte(nil), data...)
					if binary {
						s.Send(NewBinaryMessage(b))
					} else {
						s.Send(NewMessage(b))
					}
				}
			},
			OnClose: func(reason string) {
				e.events <- event{sid: s.ID(), kind: "close", data: reason}
			},
		})
		e.sessions <- s
	})
	// Served as walcast serves it, with the limits of HTTPServer.
	e.http = httptest.NewUnstartedServer(nil)
	e.http.Config = e.srv.HTTPServer(e.srv)
	e.http.Start()
	e.base = e.http.URL + e.srv.Config().Path
	t.Cleanup(func() {
		e.srv.Close()
		e.http.Close()
	})
	return e
}

// waitEvent returns the next event of kind for sid; others are kept for
// later calls.
func (e *testEnv) waitEvent(sid, kind string) event {
	e.t.Helper()
	for i, ev := range e.backlog {
		if ev.sid == sid && ev.kind == kind {
			e.backlog = append(e.backlog[:i], e.backlog[i+1:]...)
			return ev
		}
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-e.events:
			if ev.sid == sid && ev.kind == kind {
				return ev
			}
			e.backlog = append(e.backlog, ev)
		case <-timeout:
			e.t.Fatalf("no %s event for %s", kind, sid)
			return event{}
		}
	}
}

func (e *testEnv) url(query string) string { return e.base + "?" + query }

// do sends one HTTP request and returns status and body.
func (e *testEnv) do(method, query, body string, hdr map[string]string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(query), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t *testing.T, s string) openPacket {
	t.Helper()
	if !strings.HasPrefix(s, "0") {
		t.Fatalf("not an open packet: %q", s)
	}
	var o openPacket
	if err := json.Unmarshal([]byte(s[1:]), &o); err != nil {
		t.Fatalf("open packet %q: %v", s, err)
	}
	return o
}

// pollingSession opens a session over long-polling and returns its sid.
func (e *testEnv) pollingSession() string {
	e.t.Helper()
	code, _, body := e.do("GET", "EIO=4&transport=polling", "", nil)
	if code != 200 {
		e.t.Fatalf("handshake: %d %s", code, body)
	}
	return parseOpen(e.t, body).SID
}

// wsClient is a real WebSocket client speaking to the test server.
type wsClient struct {
	t    *testing.T
	conn net.Conn
	r    io.Reader
}

func (c *wsClient) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *wsClient) Write(p []byte) (int, error) { return c.conn.Write(p) }

func (e *testEnv) dialWS(query string) (*wsClient, error) {
	u := "ws" + strings.TrimPrefix(e.url(query), "http")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	c := &wsClient{t: e.t, conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	e.t.Cleanup(func() { conn.Close() })
	return c, nil
}

func (e *testEnv) mustDialWS(query string) *wsClient {
	e.t.Helper()
	c, err := e.dialWS(query)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// read returns the next data message, or an error such as
// wsutil.ClosedError when the server closed the connection.
func (c *wsClient) read() (string, ws.OpCode, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, op, err := wsutil.ReadServerData(c)
	return string(b), op, err
}

func (c *wsClient) mustRead() string {
	c.t.Helper()
	s, _, err := c.read()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := wsutil.WriteClientMessage(c, ws.OpText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expectClosed reads until the server ends the connection and returns the
// close code (0 when the connection dropped without a close frame).
func (c *wsClient) expectClosed() ws.StatusCode {
	c.t.Helper()
	for {
		_, _, err := c.read()
		if err == nil {
			continue
		}
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			return ce.Code
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("connection still open")
		}
		return 0
	}
}

func newHTTPTestServer(t *testing.T, h http.Handler) *httptest.Server {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}
