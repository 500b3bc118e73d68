package socketio_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

const readTimeout = 5 * time.Second

// startServer serves srv on a loopback port and returns its address.
func startServer(t testing.TB, cfg socketio.Config, setup func(*socketio.Server)) (*socketio.Server, string) {
	t.Helper()
	srv := socketio.NewServer(cfg)
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		_ = hs.Close()
	})
	return srv, ln.Addr().String()
}

func dial(t testing.TB, addr string) *siotest.Conn {
	t.Helper()
	c, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// connect dials and joins nsp, failing unless the server accepts.
func connect(t testing.TB, addr, nsp, auth string) *siotest.Conn {
	t.Helper()
	c := dial(t, addr)
	got, err := c.Connect(nsp, auth)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "0"
	if nsp != "/" {
		prefix += nsp + ","
	}
	if !strings.HasPrefix(got, prefix+`{"sid":"`) {
		t.Fatalf("CONNECT answer %q", got)
	}
	return c
}

func expectText(t testing.TB, c *siotest.Conn, want string) {
	t.Helper()
	got, err := c.ReadText(readTimeout)
	if err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func expectClosed(t testing.TB, c *siotest.Conn) {
	t.Helper()
	for {
		s, b, err := c.Read(readTimeout)
		if err == siotest.ErrClosed {
			return
		}
		if err != nil {
			t.Fatalf("want the server to close the connection: %v", err)
		}
		t.Logf("before close: %q %v", s, b)
	}
}

func TestConnectEmitsInHandler(t *testing.T) {
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			if err := s.Emit("auth", s.Handshake().Auth); err != nil {
				t.Errorf("emit: %v", err)
			}
		})
	})
	c := connect(t, addr, "/", `{"token":"123"}`)
	expectText(t, c, `2["auth",{"token":"123"}]`)
}

func TestMiddleware(t *testing.T) {
	type seen struct {
		auth, header, query, remote string
	}
	seenc := make(chan seen, 4)
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		nsp := srv.Of("/")
		nsp.Use(func(s *socketio.Socket) error {
			h := s.Handshake()
			seenc <- seen{string(h.Auth), h.Header.Get("X-Test"), h.Query.Get("foo"), h.RemoteAddr}
			return nil
		})
		nsp.Use(func(s *socketio.Socket) error {
			var auth struct{ Token string }
			if err := json.Unmarshal(s.Handshake().Auth, &auth); err != nil {
				return err
			}
			switch auth.Token {
			case "":
				return errors.New("Authentication error: No token provided")
			case "bad":
				return &socketio.ConnectError{Message: "Authentication error: Invalid token", Data: map[string]int{"code": 401}}
			}
			s.SetData(auth.Token)
			return nil
		})
		nsp.OnConnection(func(s *socketio.Socket) { _ = s.Emit("hello", s.Data()) })
	})
	tests := []struct {
		name, auth, want string
	}{
		{"no token", "", `4{"message":"Authentication error: No token provided"}`},
		{"invalid token with data", `{"token":"bad"}`, `4{"message":"Authentication error: Invalid token","data":{"code":401}}`},
		{"accepted", `{"token":"good"}`, `0{"sid":"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := siotest.Dial(addr, url.Values{"foo": {"bar"}}, http.Header{"X-Test": {"yes"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got, err := c.Connect("/", tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want prefix %q", got, tt.want)
			}
			sn := <-seenc
			wantAuth := tt.auth
			if wantAuth == "" {
				wantAuth = "{}"
			}
			if sn.auth != wantAuth || sn.header != "yes" || sn.query != "bar" || !strings.HasPrefix(sn.remote, "127.0.0.1:") {
				t.Errorf("middleware saw %+v", sn)
			}
			if strings.HasPrefix(tt.want, "0") {
				expectText(t, c, `2["hello","good"]`)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/custom").OnConnection(func(s *socketio.Socket) { _ = s.Emit("auth", s.Handshake().Auth) })
	})
	c := dial(t, addr)
	got, err := c.Connect("/random", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := `4/random,{"message":"Invalid namespace"}`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// the connection stays usable for namespaces that exist
	got, err = c.Connect("/custom", `{"token":"abc"}`)
	if err != nil || !strings.HasPrefix(got, `0/custom,{"sid":"`) {
		t.Fatalf("connect /custom: %q %v", got, err)
	}
	expectText(t, c, `2/custom,["auth",{"token":"abc"}]`)
	// the socket id is its own, not the Engine.IO sid
	var open struct{ Sid string }
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(c.Open), &open); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got, "0/custom,")), &hs); err != nil {
		t.Fatal(err)
	}
	if hs.Sid == open.Sid || len(hs.Sid) != 20 {
		t.Errorf("socket id %q (engine.io sid %q)", hs.Sid, open.Sid)
	}
}

func TestAcks(t *testing.T) {
	type answer struct {
		args socketio.Args
		err  error
	}
	answers := make(chan answer, 4)
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.On("echo", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
				if err := ack(args); err != nil {
					t.Errorf("ack: %v", err)
				}
				_ = ack("second call is a no-op")
			})
			s.On("ask", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
				cb := func(a socketio.Args, err error) { answers <- answer{a, err} }
				_ = s.EmitWithAck("question", time.Minute, cb, 42)
				_ = s.EmitWithAck("unanswered", 100*time.Millisecond, cb)
			})
		})
	})
	c := connect(t, addr, "/", "")
	// client -> server with ack, both the plain and binary variants
	if err := c.SendText(`27["echo",1,"2",{"3":[false]}]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `37[1,"2",{"3":[false]}]`)
	// an event without ack id: ack() sends nothing, so the next packet seen
	// is the answer to the following event
	if err := c.SendText(`2["echo","noack"]`); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(`28["echo","withack"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `38["withack"]`)

	// server -> client with ack, and one that times out
	if err := c.SendText(`2["ask"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `20["question",42]`)
	expectText(t, c, `21["unanswered"]`)
	if err := c.SendText(`30["answer",{"ok":true}]`); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"answer", "timeout"} {
		select {
		case a := <-answers:
			switch want {
			case "answer":
				var s string
				if a.err != nil || a.args.Unmarshal(0, &s) != nil || s != "answer" || string(a.args.JSON[1]) != `{"ok":true}` {
					t.Errorf("answer %d: %q %v", i, a.args.JSON, a.err)
				}
			case "timeout":
				if !errors.Is(a.err, socketio.ErrAckTimeout) {
					t.Errorf("answer %d: want timeout, got %q %v", i, a.args.JSON, a.err)
				}
			}
		case <-time.After(readTimeout):
			t.Fatalf("no ack callback %d", i)
		}
	}
	// a late answer to the timed-out emit is ignored, the socket stays up
	if err := c.SendText(`31["late"]`); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(`29["echo","still here"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `39["still here"]`)
}

func TestBinary(t *testing.T) {
	got := make(chan []byte, 1)
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.On("message", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
				b, _ := args.Bytes(1)
				got <- b
				_ = s.Emit("message-back", args)
				_ = ack(args)
			})
			s.On("send-me", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
				_ = s.Emit("bytes", "x", []byte{0xde, 0xad}, json.RawMessage(`{"a":1}`), []byte{0xbe, 0xef})
			})
		})
	})
	c := connect(t, addr, "/", "")
	steps := []func() error{
		func() error {
			return c.SendText(`52-5["message","a",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`)
		},
		func() error { return c.SendBinary([]byte{1, 2, 3}) },
		func() error { return c.SendBinary([]byte{4, 5, 6}) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, []byte{4, 5, 6}) {
			t.Errorf("handler saw attachment %v", b)
		}
	case <-time.After(readTimeout):
		t.Fatal("handler not called")
	}
	expectText(t, c, `52-["message-back","a",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`)
	expectBinary(t, c, []byte{1, 2, 3})
	expectBinary(t, c, []byte{4, 5, 6})
	expectText(t, c, `62-5["a",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`)
	expectBinary(t, c, []byte{1, 2, 3})
	expectBinary(t, c, []byte{4, 5, 6})

	if err := c.SendText(`2["send-me"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `52-["bytes","x",{"_placeholder":true,"num":0},{"a":1},{"_placeholder":true,"num":1}]`)
	expectBinary(t, c, []byte{0xde, 0xad})
	expectBinary(t, c, []byte{0xbe, 0xef})
}

func expectBinary(t testing.TB, c *siotest.Conn, want []byte) {
	t.Helper()
	_, b, err := c.Read(readTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("binary %v, want %v", b, want)
	}
}

func TestMalformedClosesConnection(t *testing.T) {
	cfg := socketio.Config{Limits: parser.Limits{MaxAttachments: 10, MaxAttachmentBytes: 1 << 16}}
	_, addr := startServer(t, cfg, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.On("ping", func(s *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) { _ = ack("pong") })
		})
	})
	tests := []struct {
		name string
		send []any // string: text packet, []byte: binary attachment
	}{
		{"unknown packet type", []any{"abc"}},
		{"type out of range", []any{"9"}},
		{"event not an array", []any{"2{}"}},
		{"bad json", []any{`2["a",}`}},
		{"invalid ack id", []any{`2abc["message-with-ack",1]`}},
		{"event name not a string", []any{`2[1,2]`}},
		{"reserved event name", []any{`2["disconnect"]`}},
		{"ack without id", []any{`3[1]`}},
		{"binary when not expected", []any{[]byte{1, 2}}},
		{"text while reconstructing", []any{`51-["a",{"_placeholder":true,"num":0}]`, `2["a"]`}},
		{"placeholder out of range", []any{`51-["a",{"_placeholder":true,"num":3}]`, []byte{1}}},
		{"attachment unused", []any{`52-["a",{"_placeholder":true,"num":0}]`, []byte{1}, []byte{2}}},
		{"too many attachments", []any{`511-["a"]`}},
		{"attachments too large", []any{`52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, []byte{1}, make([]byte, 1<<16)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, addr, "/", "")
			for _, m := range tt.send {
				var err error
				switch v := m.(type) {
				case string:
					err = c.SendText(v)
				case []byte:
					err = c.SendBinary(v)
				}
				if err != nil {
					break // the server may already have closed
				}
			}
			expectClosed(t, c)
		})
	}
	// the server is unharmed
	c := connect(t, addr, "/", "")
	if err := c.SendText(`21["ping"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `31["pong"]`)
}

func TestDisconnectReasons(t *testing.T) {
	reasons := make(chan string, 8)
	sockets := make(chan *socketio.Socket, 8)
	srv, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.OnDisconnect(func(reason string) { reasons <- reason })
			sockets <- s
		})
	})
	expectReason := func(want string) {
		t.Helper()
		select {
		case got := <-reasons:
			if got != want {
				t.Fatalf("reason %q, want %q", got, want)
			}
		case <-time.After(readTimeout):
			t.Fatalf("no disconnect, want %q", want)
		}
	}

	c := connect(t, addr, "/", "")
	s := <-sockets
	if err := c.SendText("1"); err != nil {
		t.Fatal(err)
	}
	expectReason(socketio.ReasonClientNamespaceDisconn)
	if s.Connected() || srv.Of("/").Len() != 0 {
		t.Fatal("socket still registered after client disconnect")
	}

	c = connect(t, addr, "/", "")
	s = <-sockets
	s.Disconnect(false)
	expectText(t, c, "1")
	expectReason(socketio.ReasonServerNamespaceDisconn)
	if err := s.Emit("x"); !errors.Is(err, socketio.ErrDisconnected) {
		t.Errorf("emit after disconnect: %v", err)
	}

	c = connect(t, addr, "/", "")
	s = <-sockets
	ackErr := make(chan error, 1)
	if err := s.EmitWithAck("q", 0, func(_ socketio.Args, err error) { ackErr <- err }); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `20["q"]`)
	_ = c.Close()
	expectReason(socketio.ReasonTransportClose)
	if err := <-ackErr; !errors.Is(err, socketio.ErrDisconnected) {
		t.Errorf("pending ack after disconnect: %v", err)
	}

	c = connect(t, addr, "/", "")
	<-sockets
	srv.Close()
	expectReason(socketio.ReasonServerShuttingDown)
	expectClosed(t, c)
}

func TestConnectTimeout(t *testing.T) {
	_, addr := startServer(t, socketio.Config{ConnectTimeout: 200 * time.Millisecond}, nil)
	idle := dial(t, addr)
	joined := connect(t, addr, "/", "")
	expectClosed(t, idle)
	// a session that joined a namespace is kept
	if _, _, err := joined.Read(300 * time.Millisecond); err == siotest.ErrClosed {
		t.Fatal("connected session was closed by the connect timeout")
	}
}

// TestPendingUntilConnectAccepted: a session counts as not admitted (for
// the Engine.IO caps) until a namespace accepts its CONNECT; a CONNECT its
// middleware refuses does not admit it, and the connect timeout still
// closes it, counted in Stats.
func TestPendingUntilConnectAccepted(t *testing.T) {
	srv, addr := startServer(t, socketio.Config{ConnectTimeout: 300 * time.Millisecond}, func(srv *socketio.Server) {
		srv.Of("/").Use(func(s *socketio.Socket) error {
			if string(s.Handshake().Auth) == `{"token":"bad"}` {
				return errors.New("Authentication error: Invalid token")
			}
			return nil
		})
	})
	pending := func() int { return srv.Stats().EngineIO.Pending }
	refused := dial(t, addr)
	if got, err := refused.Connect("/", `{"token":"bad"}`); err != nil || !strings.HasPrefix(got, "4") {
		t.Fatalf("CONNECT with a bad token: %q, %v", got, err)
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d pending after a refused CONNECT, want 1", n)
	}
	good := connect(t, addr, "/", `{"token":"good"}`)
	if n := pending(); n != 1 {
		t.Fatalf("%d pending after an accepted CONNECT, want 1 (the refused one)", n)
	}
	expectClosed(t, refused)
	// The session leaves the server's books just after its close frame.
	for deadline := time.Now().Add(time.Second); pending() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if st := srv.Stats(); st.ConnectTimeouts != 1 || st.EngineIO.Pending != 0 {
		t.Fatalf("after the connect timeout: ConnectTimeouts %d, Pending %d; want 1, 0", st.ConnectTimeouts, st.EngineIO.Pending)
	}
	if _, _, err := good.Read(300 * time.Millisecond); err == siotest.ErrClosed {
		t.Fatal("connected session was closed by the connect timeout")
	}
}

var _ = engineio.Config{}

func TestHandlerPanicKeepsServer(t *testing.T) {
	_, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.On("boom", func(*socketio.Socket, socketio.Args, socketio.AckFunc) { panic("handler bug") })
			s.On("ping", func(_ *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) { _ = ack("pong") })
		})
	})
	c := connect(t, addr, "/", "")
	if err := c.SendText(`2["boom"]`); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(`21["ping"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `31["pong"]`)
}
