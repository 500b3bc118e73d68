// Package redistest runs a throwaway redis-server on a free loopback port for
// tests. Nothing is mocked: it is the real binary, in its own temp directory,
// so tests can also kill it and bring it back on the same port to exercise
// failure handling.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/loopback"
)

// Options tunes the server. The zero value is an in-memory server with no
// persistence, which is what almost every test wants.
type Options struct {
	// AppendOnly turns on the append-only file with appendfsync always, for
	// tests that restart Redis and expect data to survive it.
	AppendOnly bool
	// Binary is the redis-server to run; empty means "redis-server" on PATH.
	Binary string
	// StartTimeout bounds how long Start waits for the server to answer PING.
	// Zero means 10 seconds.
	StartTimeout time.Duration
	// ExtraArgs are appended to the command line (e.g. "--maxmemory", "10mb").
	ExtraArgs []string
}

// Server is one running (or stopped, between Kill/Stop and Restart)
// redis-server process.
type Server struct {
	opts   Options
	binary string
	dir    string
	port   int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has been reaped
	logFile *os.File
	closed  bool
}

// Start launches redis-server on a free 127.0.0.1 port and waits until it
// answers PING.
func Start(opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("find redis-server: %w", err)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("create redis temp dir: %w", err)
	}
	s := &Server{opts: opts, binary: path, dir: dir}

	// Another process may grab the port between our probe and redis binding
	// it, so a failed start is retried on a fresh port a few times.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := loopback.FreePort()
		if err != nil {
			lastErr = err
			continue
		}
		s.port = port
		if err := s.launch(); err != nil {
			lastErr = err
			continue
		}
		return s, nil
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

// Run starts a server for a test and registers its Close with t.Cleanup.
// It fails the test (not skips) when redis-server is missing: the house rule
// is real parts, and a silently skipped test would hide that.
func Run(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Logf("redistest close: %v", err)
		}
	})
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is a redis:// URL for the server, as REDIS_URL would hold it.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Dir is the server's working directory (where an append-only file lives).
func (s *Server) Dir() string { return s.dir }

// LogPath is the file the server's stdout and stderr go to.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *Server) args() []string {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", "",
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	return append(args, s.opts.ExtraArgs...)
}

// launch starts the process on s.port and waits for PING. Caller must not
// hold s.mu.
func (s *Server) launch() error {
	logFile, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open redis log: %w", err)
	}
	cmd := exec.Command(s.binary, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group: a test's Ctrl-C or a signal to the test binary's
	// group must not race our own Kill/Stop handling.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("exec %s: %w", s.binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	s.mu.Lock()
	s.cmd, s.exited, s.logFile = cmd, exited, logFile
	s.mu.Unlock()

	timeout := s.opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			_ = logFile.Close()
			return fmt.Errorf("redis-server exited during start on port %d: %s", s.port, s.logTail())
		default:
		}
		if err := ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			_ = logFile.Close()
			return fmt.Errorf("redis-server on port %d not ready after %v: %w; log: %s", s.port, timeout, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.LogPath())
	if err != nil {
		return "(no log)"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Kill sends SIGKILL and waits for the process to go: a crash, with no
// chance to flush or close client connections politely.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for a clean shutdown.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Pause stops the process (SIGSTOP) without closing anything: clients'
// connections stay open and their commands hang, as with a Redis that
// stalls or a network that drops packets. Resume continues it.
func (s *Server) Pause() error { return s.suspend(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.suspend(syscall.SIGCONT) }

func (s *Server) suspend(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("redis-server is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, exited, logFile := s.cmd, s.exited, s.logFile
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("redis-server is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	_ = logFile.Close()
	return nil
}

// Restart starts the server again on the same port after Kill or Stop, so
// clients holding the old address reconnect to it without reconfiguration.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.cmd != nil
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("redis-server was closed")
	}
	if running {
		return errors.New("redis-server is still running: Kill or Stop it first")
	}
	// The port was ours a moment ago, but a lingering socket can delay the
	// bind briefly; retry rather than flake.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.launch(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart redis-server on port %d: %w", s.port, err)
}

// Close stops the server if it is running and removes its directory.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	running := s.cmd != nil
	s.mu.Unlock()
	var err error
	if running {
		err = s.Kill()
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove redis dir: %w", rmErr)
	}
	return err
}

// ping speaks just enough RESP to know the server is serving, so this
// package needs no client library.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		// "-LOADING" while an append-only file is replayed: not ready yet.
		return fmt.Errorf("unexpected PING reply %q", strings.TrimSpace(line))
	}
	return nil
}
