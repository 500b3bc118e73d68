// Package serverproc starts a benchmark server as its own process and talks
// to its control endpoints. A separate process is the point: /proc then
// charges the server's CPU and memory to it alone, not to the load client.
//
// A server prints "listening <port>" on stdout once it accepts connections
// on 127.0.0.1:<port>, and serves:
//
//	GET  /bench/stats     -> {"sockets": N, <other figure>: <number>, ...}
//	POST /bench/broadcast?rate=R&duration_ms=D&rung=K&size=B
//	     emits R tick events/s for D ms to every socket, answers {"sent": N}
package serverproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is a running benchmark server.
type Proc struct {
	Name string
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start runs argv (with extra environment) and waits for its "listening"
// line. The server's stderr is passed through to stderr, prefixed.
func Start(ctx context.Context, name string, dir string, env []string, argv ...string) (*Proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stderr = &prefixWriter{prefix: "[" + name + "] ", w: os.Stderr}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	// The reader, not the waiting loop, spots the "listening" line: a
	// line printed while the loop was not ready must not be lost.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if port, ok := strings.CutPrefix(sc.Text(), "listening "); ok && !found {
				found = true
				addr <- "127.0.0.1:" + strings.TrimSpace(port)
				continue
			}
			fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	select {
	case a := <-addr:
		p.Addr = a
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("start %s: exited before listening: %v", name, p.err)
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("start %s: no 'listening' line: %w", name, ctx.Err())
	}
}

// PID is the server's process id, for /proc sampling.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop asks the server to exit and kills it if it does not within 5 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited reports whether the server process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Sockets asks the server how many Socket.IO sockets it holds.
func (p *Proc) Sockets(ctx context.Context) (int, error) {
	st, err := p.Stats(ctx)
	if err != nil {
		return 0, err
	}
	n, ok := st["sockets"]
	if !ok {
		return 0, fmt.Errorf("%s /bench/stats: no sockets figure", p.Name)
	}
	return int(n), nil
}

// Stats returns the server's figures: "sockets" and whatever its runtime
// tells about memory (goroutines and Go heap/stack, or V8 heap).
func (p *Proc) Stats(ctx context.Context) (map[string]float64, error) {
	var v map[string]float64
	if err := p.call(ctx, http.MethodGet, "/bench/stats", &v); err != nil {
		return nil, err
	}
	return v, nil
}

// Broadcast makes the server emit rate tick events per second for d, each
// size bytes of JSON tagged with rung, and returns how many it emitted.
func (p *Proc) Broadcast(ctx context.Context, rate float64, d time.Duration, rung, size int) (int, error) {
	var v struct {
		Sent int `json:"sent"`
	}
	path := fmt.Sprintf("/bench/broadcast?rate=%g&duration_ms=%d&rung=%d&size=%d", rate, d.Milliseconds(), rung, size)
	if err := p.call(ctx, http.MethodPost, path, &v); err != nil {
		return 0, err
	}
	return v.Sent, nil
}

func (p *Proc) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.Addr+path, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.Name, path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.Name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", p.Name, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", p.Name, path, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: answer %q: %w", p.Name, path, body, err)
	}
	return nil
}

// BuildGo builds the Go package pkg of the module in moduleDir into the
// binary out. The Centrifuge reference server is a module of its own, so
// it is built from its directory (where its go.work joins it to walcast's
// module).
func BuildGo(ctx context.Context, moduleDir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, moduleDir, err)
	}
	return nil
}

// EnsureNodeModules runs `npm ci` in dir when its node_modules is missing.
func EnsureNodeModules(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check node_modules: %w", err)
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w", dir, err)
	}
	return nil
}

// prefixWriter tags a child's stderr lines with its name.
type prefixWriter struct {
	prefix  string
	w       io.Writer
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if !p.midLine {
			if _, err := io.WriteString(p.w, p.prefix); err != nil {
				return 0, err
			}
		}
		line, rest, found := strings.Cut(string(b), "\n")
		if found {
			line += "\n"
		}
		if _, err := io.WriteString(p.w, line); err != nil {
			return 0, err
		}
		p.midLine = !found
		b = []byte(rest)
	}
	return n, nil
}
