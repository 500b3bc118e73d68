package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/logbuf"
)

// serverOptions vary the scenario server per test.
type serverOptions struct {
	requireToken   bool // "/" middleware demands auth.token (see tokenMiddleware)
	sendQueue      int  // engineio.Config.SendQueue; 0 = default
	pingInterval   time.Duration
	pingTimeout    time.Duration
	connectTimeout time.Duration
	maxPayload     int64
	limits         parser.Limits
}

// testServer is a socketio.Server on a free loopback port, set up with the
// handlers every scenario script relies on (the Go twin of what
// scenarios/*.mjs expect), recording what the server side observed.
type testServer struct {
	URL string
	SIO *socketio.Server
	obs *observations
	log *logbuf.Buffer
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	logs := &logbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sio := socketio.NewServer(socketio.Config{
		EngineIO: engineio.Config{
			SendQueue: opts.sendQueue, PingInterval: opts.pingInterval, PingTimeout: opts.pingTimeout,
			MaxPayload: opts.maxPayload, Logger: logger,
		},
		Limits:         opts.limits,
		ConnectTimeout: opts.connectTimeout,
		Logger:         logger,
	})
	ts := &testServer{SIO: sio, obs: &observations{}, log: logs}

	root := sio.Of("/")
	if opts.requireToken {
		root.Use(ts.tokenMiddleware)
	}
	root.OnConnection(ts.onRootConnection)
	sio.Of("/custom").OnConnection(ts.onCustomConnection)

	// Served with the HTTP limits walcast serves with.
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = sio.EngineIO().HTTPServer(sio)
	hs.Start()
	ts.URL = hs.URL
	t.Cleanup(func() {
		sio.Close()
		hs.Close()
		if t.Failed() && logs.String() != "" {
			t.Logf("server log:\n%s", logs.Tail(20000))
		}
	})
	return ts
}

// run runs scenarios/<script> against the server and fails t unless the
// script's assertions all passed.
func (ts *testServer) run(t *testing.T, script string, args ...string) (sioclient.Result, sioclient.Line) {
	t.Helper()
	return sioclient.RunT(t, "scenarios/"+script, sioclient.Options{URL: ts.URL}, args...)
}

// tokenMiddleware refuses a missing token and the token "bad" with the
// messages GraceGiver's clients handle (websocket-contract.md).
func (ts *testServer) tokenMiddleware(s *socketio.Socket) error {
	hs := s.Handshake()
	ts.obs.add(observation{kind: "middleware", auth: string(hs.Auth), header: hs.Header.Get("X-Walcast-Test"), query: hs.Query.Encode(), remote: hs.RemoteAddr})
	var auth struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(hs.Auth, &auth); err != nil {
		// Capitalized on purpose: browsers show and match these texts as is.
		return fmt.Errorf("Authentication error: bad auth payload: %w", err)
	}
	switch auth.Token {
	case "":
		return errors.New("Authentication error: No token provided")
	case "bad":
		return &socketio.ConnectError{
			Message: "Authentication error: Invalid token",
			Data:    map[string]any{"code": 401, "hint": "token rejected"},
		}
	}
	return nil
}

func (ts *testServer) onRootConnection(s *socketio.Socket) {
	ts.obs.add(observation{kind: "connect", socket: s.ID(), nsp: "/", auth: string(s.Handshake().Auth), transport: s.Transport()})
	s.OnDisconnect(func(reason string) {
		ts.obs.add(observation{kind: "disconnect", socket: s.ID(), nsp: "/", reason: reason})
	})
	_ = s.Emit("auth", s.Handshake().Auth)

	s.On("message", func(s *socketio.Socket, args socketio.Args, _ socketio.AckFunc) {
		ts.obs.add(observation{kind: "event", socket: s.ID(), name: "message", args: args, transport: s.Transport()})
		_ = s.Emit("message-back", args)
	})
	s.On("message-with-ack", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		ts.obs.add(observation{kind: "event", socket: s.ID(), name: "message-with-ack", args: args, transport: s.Transport()})
		_ = ack(args)
	})
	s.On("whoami", func(s *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) {
		hs := s.Handshake()
		query := map[string]string{}
		for k := range hs.Query {
			query[k] = hs.Query.Get(k)
		}
		_ = ack(map[string]any{
			"id": s.ID(), "auth": hs.Auth, "query": query,
			"header": hs.Header.Get("X-Walcast-Test"), "remoteAddr": hs.RemoteAddr,
		})
	})
	s.On("ask", ts.onAsk)
	s.On("join", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		var rooms []string
		if err := args.Unmarshal(0, &rooms); err != nil {
			var one string
			if err := args.Unmarshal(0, &one); err != nil {
				_ = ack(map[string]string{"error": err.Error()})
				return
			}
			rooms = []string{one}
		}
		s.Join(rooms...)
		_ = ack()
	})
	s.On("leave", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		var room string
		if err := args.Unmarshal(0, &room); err != nil {
			_ = ack(map[string]string{"error": err.Error()})
			return
		}
		s.Leave(room)
		_ = ack()
	})
	s.On("broadcast", ts.onBroadcast)
	s.On("flood", ts.onFlood)
	s.On("is-connected", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		var id string
		if err := args.Unmarshal(0, &id); err != nil {
			_ = ack(map[string]string{"error": err.Error()})
			return
		}
		_ = ack(s.Namespace().Socket(id) != nil)
	})
	s.On("disconnect-me", func(s *socketio.Socket, _ socketio.Args, _ socketio.AckFunc) {
		s.Disconnect(false)
	})
	s.On("drop-me", ts.onDropMe)
}

func (ts *testServer) onCustomConnection(s *socketio.Socket) {
	ts.obs.add(observation{kind: "connect", socket: s.ID(), nsp: "/custom", auth: string(s.Handshake().Auth)})
	_ = s.Emit("auth", s.Handshake().Auth)
	s.On("message-with-ack", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		_ = ack(socketio.Args{JSON: append([]json.RawMessage{json.RawMessage(`"custom"`)}, args.JSON...), Binary: args.Binary})
	})
}

// onAsk: {event, args, timeoutMs} -> the server emits event(args...) to the
// asking socket with an ack and a timeout, then acks "ask" with
// {"answer": [the client's ack args]} or {"error": "..."}. Binary inside
// args is forwarded: the placeholders keep pointing at the same attachments.
func (ts *testServer) onAsk(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	var spec struct {
		Event     string            `json:"event"`
		Args      []json.RawMessage `json:"args"`
		TimeoutMs int               `json:"timeoutMs"`
	}
	if err := args.Unmarshal(0, &spec); err != nil {
		_ = ack(map[string]string{"error": err.Error()})
		return
	}
	out := socketio.Args{JSON: spec.Args, Binary: args.Binary}
	err := s.EmitWithAck(spec.Event, time.Duration(spec.TimeoutMs)*time.Millisecond, func(answer socketio.Args, err error) {
		ts.obs.add(observation{kind: "server-ack", socket: s.ID(), name: spec.Event, args: answer, err: errString(err)})
		if err != nil {
			_ = ack(map[string]string{"error": err.Error()})
			return
		}
		body := []byte(`{"answer":[`)
		for i, a := range answer.JSON {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, a...)
		}
		body = append(body, "]}"...)
		_ = ack(socketio.Args{JSON: []json.RawMessage{body}, Binary: answer.Binary})
	}, out)
	if err != nil {
		_ = ack(map[string]string{"error": err.Error()})
	}
}

// onBroadcast: {from: "server"|"socket", to, except, event, args, fence}
// broadcasts event(args...) as asked, then "fence"(fence) to everyone so
// clients know every earlier packet has arrived; acks with the number of
// sockets in the namespace.
func (ts *testServer) onBroadcast(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	var spec struct {
		From   string            `json:"from"`
		To     []string          `json:"to"`
		Except []string          `json:"except"`
		Event  string            `json:"event"`
		Args   []json.RawMessage `json:"args"`
		Fence  int               `json:"fence"`
	}
	if err := args.Unmarshal(0, &spec); err != nil {
		_ = ack(map[string]string{"error": err.Error()})
		return
	}
	nsp := s.Namespace()
	var op socketio.BroadcastOperator
	if spec.From == "socket" {
		op = s.Broadcast()
	} else {
		op = nsp.To()
	}
	op = op.To(spec.To...).Except(spec.Except...)
	ts.obs.add(observation{kind: "broadcast", socket: s.ID(), name: spec.Event, sockets: nsp.Len()})
	// Attachments ride along: the placeholders in spec.Args point into them.
	if err := op.Emit(spec.Event, socketio.Args{JSON: spec.Args, Binary: args.Binary}); err != nil {
		_ = ack(map[string]string{"error": err.Error()})
		return
	}
	if err := nsp.Emit("fence", spec.Fence); err != nil {
		_ = ack(map[string]string{"error": err.Error()})
		return
	}
	_ = ack(nsp.Len())
}

// onFlood: {n, size, batch} broadcasts n events ("flood-item", batch, i,
// payload of size bytes) to the whole namespace, then acks with the number
// of sockets still connected.
func (ts *testServer) onFlood(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	var spec struct{ N, Size, Batch int }
	if err := args.Unmarshal(0, &spec); err != nil {
		_ = ack(map[string]string{"error": err.Error()})
		return
	}
	payload := strings.Repeat("x", spec.Size)
	nsp := s.Namespace()
	for i := range spec.N {
		if err := nsp.Emit("flood-item", spec.Batch, i, payload); err != nil {
			_ = ack(map[string]string{"error": err.Error()})
			return
		}
	}
	_ = ack(nsp.Len())
}

// onDropMe makes the server close the socket's transport without a
// Socket.IO DISCONNECT. The socketio API has no direct "close transport"
// call, so this overflows the session's bounded send queue (16 KB events
// until Emit fails): the Engine.IO session then closes its transport
// ("slow consumer"), the path a browser that cannot keep up takes.
func (ts *testServer) onDropMe(s *socketio.Socket, _ socketio.Args, _ socketio.AckFunc) {
	payload := strings.Repeat("x", 16<<10)
	sent := 0
	for ; sent < 100_000; sent++ {
		if err := s.Emit("flood", sent, payload); err != nil {
			break
		}
	}
	ts.obs.add(observation{kind: "dropped", socket: s.ID(), sockets: sent})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// observation is one thing the server side saw.
type observation struct {
	kind      string // connect, disconnect, middleware, event, server-ack, broadcast, dropped
	socket    string
	nsp       string
	name      string
	auth      string
	header    string
	query     string
	remote    string
	transport string
	reason    string
	err       string
	sockets   int
	args      socketio.Args
}

type observations struct {
	mu   sync.Mutex
	list []observation
}

func (o *observations) add(ob observation) {
	o.mu.Lock()
	o.list = append(o.list, ob)
	o.mu.Unlock()
}

func (o *observations) all(kind string) []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observation
	for _, ob := range o.list {
		if ob.kind == kind {
			out = append(out, ob)
		}
	}
	return out
}

// waitFor waits for server-side effects that follow the client's view
// asynchronously (e.g. the disconnect handler runs after the client saw the
// close). It is a bound on waiting, not a performance assertion.
func (o *observations) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("server side never observed: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
