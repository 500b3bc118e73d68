package redisadapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/internal/redistest"
)

const waitTimeout = 10 * time.Second

func startRedis(t testing.TB) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Run(t, redistest.Options{})
	c, err := NewClient(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

func newStreams(t testing.TB, c *redis.Client, opts StreamsOptions) *Streams {
	t.Helper()
	s, err := NewStreams(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startServer serves a Socket.IO server whose sockets join the rooms listed in
// their auth payload ({"rooms":[...]}) at connect.
func startServer(t testing.TB, newAdapter func(*socketio.Namespace) socketio.Adapter) (*socketio.Server, string) {
	t.Helper()
	srv := socketio.NewServer(socketio.Config{NewAdapter: newAdapter})
	srv.Sockets().OnConnection(func(s *socketio.Socket) {
		var auth struct{ Rooms []string }
		_ = json.Unmarshal(s.Handshake().Auth, &auth)
		s.Join(auth.Rooms...)
	})
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

// waitRoom waits until n local sockets of srv are in room ("" for all).
func waitRoom(t testing.TB, srv *socketio.Server, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var rooms []string
		if room != "" {
			rooms = []string{room}
		}
		if got := len(srv.Sockets().Adapter().Sockets(rooms)); got == n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("room %q: %d sockets, want %d", room, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goClient is a raw Socket.IO client (siotest) that records the events it gets.
type goClient struct {
	name string
	conn *siotest.Conn
}

func connectGo(t testing.TB, name, addr string, rooms ...string) *goClient {
	t.Helper()
	c, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	auth, _ := json.Marshal(map[string]any{"rooms": rooms})
	got, err := c.Connect("/", string(auth))
	if err != nil || !strings.HasPrefix(got, "0") {
		t.Fatalf("connect %s: %q %v", name, got, err)
	}
	return &goClient{name: name, conn: c}
}

// eventsUntil reads events until one named stop and returns the names of
// those before it, in order.
func (c *goClient) eventsUntil(t testing.TB, stop string) []string {
	t.Helper()
	var names []string
	for {
		text, _, err := c.conn.Read(waitTimeout)
		if err != nil {
			t.Fatalf("%s: read after %v: %v", c.name, names, err)
		}
		if !strings.HasPrefix(text, "2") && !strings.HasPrefix(text, "5") {
			continue
		}
		i := strings.IndexByte(text, '[')
		var args []json.RawMessage
		if i < 0 || json.Unmarshal([]byte(text[i:]), &args) != nil || len(args) == 0 {
			t.Fatalf("%s: bad event %q", c.name, text)
		}
		var name string
		_ = json.Unmarshal(args[0], &name)
		if name == stop {
			return names
		}
		names = append(names, name)
	}
}

// nodeProc is a running testdata/peer.mjs.
type nodeProc struct {
	t      testing.TB
	stdin  io.WriteCloser
	lines  chan map[string]any
	stderr *bytes.Buffer
}

func startNode(t testing.TB, args ...string) *nodeProc {
	t.Helper()
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "socket.io")); err != nil {
		t.Fatalf("node peers not installed: run (cd broadcast/redisadapter/testdata && npm ci): %v", err)
	}
	cmd := exec.Command("node", append([]string{"peer.mjs"}, args...)...)
	cmd.Dir = "testdata"
	p := &nodeProc{t: t, lines: make(chan map[string]any, 1024), stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines <- m
			}
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && p.stderr.Len() > 0 {
			t.Logf("node %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// next returns the next stdout line with key, failing on timeout or exit.
func (p *nodeProc) next(key string) map[string]any {
	p.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("node exited waiting for %q; stderr:\n%s", key, p.stderr.String())
			}
			if e, ok := m["error"]; ok && m["client"] == nil {
				p.t.Fatalf("node error: %v", e)
			}
			if _, ok := m[key]; ok {
				return m
			}
		case <-timer.C:
			p.t.Fatalf("timeout waiting for %q from node; stderr:\n%s", key, p.stderr.String())
		}
	}
}

// do sends one command and returns its completion line.
func (p *nodeProc) do(cmd map[string]any) map[string]any {
	p.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(p.stdin, "%s\n", b); err != nil {
		p.t.Fatalf("write to node: %v", err)
	}
	return p.next("done")
}

// nodeClients is a peer.mjs "clients" process: official socket.io-client
// sockets that report every event.
type nodeClients struct {
	*nodeProc
}

type clientSpec struct {
	Name  string   `json:"name"`
	URL   string   `json:"url"`
	Rooms []string `json:"rooms"`
}

func startNodeClients(t testing.TB, specs ...clientSpec) *nodeClients {
	t.Helper()
	b, _ := json.Marshal(specs)
	p := startNode(t, "clients", string(b))
	for range specs {
		p.next("connected")
	}
	return &nodeClients{p}
}

// received maps each client to the events (name plus arguments as JSON) it got
// before every client has seen stop.
func (c *nodeClients) until(stop string, clients int) map[string][]string {
	c.t.Helper()
	got := make(map[string][]string)
	stopped := 0
	for stopped < clients {
		m := c.next("client")
		name, _ := m["client"].(string)
		if e, ok := m["error"]; ok {
			c.t.Fatalf("client %s: %v", name, e)
		}
		ev, _ := m["event"].(string)
		if ev == stop {
			stopped++
			continue
		}
		args, _ := json.Marshal(m["args"])
		got[name] = append(got[name], ev+string(args))
	}
	return got
}
