package sioclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClientConfig configures e2e/client.mjs: Count official clients, each on
// its own Engine.IO connection, recording everything they receive.
type ClientConfig struct {
	Namespace    string            `json:"namespace,omitempty"` // default "/"
	Count        int               `json:"count"`               // default 1
	Auth         any               `json:"auth,omitempty"`      // auth for every client
	Auths        []any             `json:"auths,omitempty"`     // auth per client, overrides Auth
	Transports   []string          `json:"transports,omitempty"`
	Query        map[string]string `json:"query,omitempty"`
	ExtraHeaders map[string]string `json:"extraHeaders,omitempty"`
	Reconnection bool              `json:"reconnection,omitempty"`
	Path         string            `json:"path,omitempty"`
}

// Client is a running e2e/client.mjs process. Every line it prints is kept;
// Wait finds lines as they arrive.
type Client struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	lines   []Line
	changed chan struct{} // closed and replaced whenever lines grows or the process ends
	done    bool
	stderr  strings.Builder
	nextRef int
}

// Start launches the client against url and waits until every client
// connected or was refused (the "ready" line). The process is killed when
// the test ends.
func Start(t testing.TB, url string, cfg ClientConfig) *Client {
	t.Helper()
	dir, err := Setup()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if cfg.Count == 0 {
		cfg.Count = 1
	}
	optJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encode client options: %v", err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "client.mjs"), string(optJSON))
	cmd.Dir = dir
	cmd.Env = Options{URL: url}.environ(10 * time.Minute)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("client stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("client stdout: %v", err)
	}
	c := &Client{t: t, cmd: cmd, stdin: stdin, changed: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node client.mjs: %v", err)
	}
	go c.read(stdout)
	t.Cleanup(c.Close)
	c.WaitFor(30*time.Second, func(l Line) bool { return l.Kind == "ready" })
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *Client) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		l, err := parseLine(sc.Bytes())
		if err != nil {
			l = Line{Kind: "error", Error: err.Error()}
		}
		c.mu.Lock()
		c.lines = append(c.lines, l)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	_ = c.cmd.Wait()
	c.mu.Lock()
	c.done = true
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Lines returns every line printed so far.
func (c *Client) Lines() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

// Count returns how many lines so far match.
func (c *Client) Count(match func(Line) bool) int {
	n := 0
	for _, l := range c.Lines() {
		if match(l) {
			n++
		}
	}
	return n
}

// WaitFor returns the first line (from the start) that matches, waiting up
// to timeout for it; it fails the test with the lines seen so far if none
// comes or the process exits.
func (c *Client) WaitFor(timeout time.Duration, match func(Line) bool) Line {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		c.mu.Lock()
		lines, changed, done := c.lines, c.changed, c.done
		c.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen]
			}
		}
		if done {
			c.t.Fatalf("client.mjs exited before the expected line; stderr:\n%s\nlines:\n%s", c.stderrText(), dump(lines))
		}
		select {
		case <-changed:
		case <-deadline.C:
			c.t.Fatalf("no matching line from client.mjs within %v; lines:\n%s", timeout, dump(lines))
		}
	}
}

func (c *Client) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

func dump(lines []Line) string {
	var b strings.Builder
	for i, l := range lines {
		if i == 50 {
			fmt.Fprintf(&b, "... %d more\n", len(lines)-i)
			break
		}
		b.Write(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Send writes one command (see e2e/client.mjs).
func (c *Client) Send(cmd map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatalf("encode command: %v", err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("write command to client.mjs: %v", err)
	}
}

// Emit sends an event from client i without asking for an ack.
func (c *Client) Emit(i int, event string, args ...any) {
	c.t.Helper()
	c.Send(map[string]any{"cmd": "emit", "client": i, "event": event, "args": orEmpty(args)})
}

// EmitWithAck sends an event from client i and waits for the server's ack;
// the returned line has Args, or Error when the ack timed out.
func (c *Client) EmitWithAck(i int, timeout time.Duration, event string, args ...any) Line {
	c.t.Helper()
	return c.WaitAck(c.EmitAsync(i, timeout, event, args...), timeout+5*time.Second)
}

// EmitAsync sends an event from client i asking for an ack, without
// waiting; WaitAck(ref) collects the answer. Use it when the server answers
// only after the client did something else (e.g. answered the server).
func (c *Client) EmitAsync(i int, timeout time.Duration, event string, args ...any) (ref string) {
	c.t.Helper()
	c.mu.Lock()
	c.nextRef++
	ref = fmt.Sprintf("go%d", c.nextRef)
	c.mu.Unlock()
	c.Send(map[string]any{"cmd": "emit", "client": i, "event": event, "args": orEmpty(args), "ref": ref, "timeoutMs": timeout.Milliseconds()})
	return ref
}

// WaitAck waits for the ack line of an EmitAsync.
func (c *Client) WaitAck(ref string, timeout time.Duration) Line {
	c.t.Helper()
	return c.WaitFor(timeout, func(l Line) bool { return l.Kind == "ack" && l.Ref == ref })
}

// Flood makes client i emit count events as fast as the library sends
// them, all at once or, with window > 0, at most window unanswered, event
// k being events[k % len(events)] and every "{i}" in a string argument
// replaced by k, each asking for an ack. It returns how many acks of each
// kind came (the ack's arguments as JSON, or "error: <message>" for one
// that failed), once all came.
func (c *Client) Flood(i int, timeout time.Duration, events []string, count, window int, args ...any) map[string]int {
	c.t.Helper()
	c.mu.Lock()
	c.nextRef++
	ref := fmt.Sprintf("flood%d", c.nextRef)
	c.mu.Unlock()
	c.Send(map[string]any{"cmd": "flood", "client": i, "events": events, "count": count, "window": window, "args": orEmpty(args), "ref": ref, "timeoutMs": timeout.Milliseconds()})
	l := c.WaitFor(timeout+30*time.Second, func(l Line) bool { return l.Kind == "flood" && l.Ref == ref })
	var v struct{ Counts map[string]int }
	if err := l.Decode(&v); err != nil {
		c.t.Fatalf("%v", err)
	}
	return v.Counts
}

// Answer replies to a server event that asked for an ack (its AckRef).
func (c *Client) Answer(ev Line, args ...any) {
	c.t.Helper()
	c.Send(map[string]any{"cmd": "ack", "client": ev.Client, "ackRef": ev.AckRef, "args": orEmpty(args)})
}

// Disconnect disconnects client i from its side.
func (c *Client) Disconnect(i int) {
	c.t.Helper()
	c.Send(map[string]any{"cmd": "disconnect", "client": i})
}

// Close ends the process (stdin closed, then killed if it lingers).
func (c *Client) Close() {
	_ = c.stdin.Close()
	c.mu.Lock()
	changed, done := c.changed, c.done
	c.mu.Unlock()
	for !done {
		select {
		case <-changed:
		case <-time.After(3 * time.Second):
			_ = c.cmd.Process.Kill()
		}
		c.mu.Lock()
		changed, done = c.changed, c.done
		c.mu.Unlock()
	}
}

func orEmpty(args []any) []any {
	if args == nil {
		return []any{}
	}
	return args
}
