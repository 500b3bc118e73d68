package engineio

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Environment of the reading clients' child process (TestFanoutClientsHelper).
const (
	envFanoutURL = "WALCAST_FANOUT_CLIENTS_URL"
	envFanoutN   = "WALCAST_FANOUT_CLIENTS_N"
)

// BenchmarkFanout measures the server's CPU, user and kernel, to deliver
// one 300-byte packet to each of 1,000 WebSocket sessions whose clients
// read everything from a child process (so their reading is not counted).
// Each op is one broadcast, written out before the next starts, so every
// delivery is a write of its own, as at a few events per second per socket.
//
// "bare-write" is the reference in the same run: one write(2) of the same
// frame per connection from one goroutine, with no queue or bookkeeping
// (only the descriptor's guard), the kernel's price of a delivery on
// loopback (it includes the receiving side's TCP work). "engineio" is Session.Send to every
// session. The difference is this package's own cost per delivery.
func BenchmarkFanout(b *testing.B) {
	const n = 1000
	env := startFanoutEnv(b, n)
	p := NewMessage(bytes.Repeat([]byte("x"), 300))
	frame := p.wsBytes()
	b.Run(fmt.Sprintf("bare-write/sessions=%d", n), func(b *testing.B) {
		w := newRawWriter()
		bufs := [][]byte{frame}
		measureFanout(b, n, func() {
			for _, s := range env.sessions {
				if k, err := w.write(s.ws, bufs); err != nil || k != len(frame) {
					b.Fatalf("bare write: %d %v", k, err)
				}
			}
		}, func() {})
	})
	b.Run(fmt.Sprintf("engineio/sessions=%d", n), func(b *testing.B) {
		measureFanout(b, n, func() {
			for _, s := range env.sessions {
				if !s.Send(p) {
					b.Fatal("send refused")
				}
			}
		}, env.srv.waitWritten)
	})
}

// measureFanout runs send b.N times, each followed by wait, and reports
// the process's CPU per delivery.
func measureFanout(b *testing.B, n int, send, wait func()) {
	u0, s0 := rusage()
	b.ResetTimer()
	for range b.N {
		send()
		wait()
	}
	b.StopTimer()
	u1, s1 := rusage()
	d := float64(b.N * n)
	b.ReportMetric(float64((u1-u0).Nanoseconds())/1e3/d, "user-µs/delivery")
	b.ReportMetric(float64((s1-s0).Nanoseconds())/1e3/d, "sys-µs/delivery")
	b.ReportMetric(float64((u1+s1-u0-s0).Nanoseconds())/1e3/d, "cpu-µs/delivery")
}

func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// waitWritten returns once every write shard has written what was due.
func (s *Server) waitWritten() {
	for _, w := range s.shards {
		for {
			w.mu.Lock()
			busy := w.running
			w.mu.Unlock()
			if !busy {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}

type fanoutEnv struct {
	srv      *Server
	sessions []*Session
}

// startFanoutEnv serves n WebSocket sessions to a child process that
// reads and discards everything.
func startFanoutEnv(b *testing.B, n int) *fanoutEnv {
	b.Helper()
	got := make(chan *Session, n)
	srv := NewServer(benchConfig(Config{SendQueue: 1 << 16}), func(s *Session) { got <- s })
	hs := httptest.NewServer(srv)
	b.Cleanup(func() { srv.Close(); hs.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanoutClientsHelper$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envFanoutURL+"="+"ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		envFanoutN+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("fanout clients: %q %v", line, err)
	}
	env := &fanoutEnv{srv: srv}
	for range n {
		select {
		case s := <-got:
			env.sessions = append(env.sessions, s)
		case <-time.After(30 * time.Second):
			b.Fatalf("%d of %d sessions", len(env.sessions), n)
		}
	}
	// The sessions' WebSocket is attached after they are announced.
	for _, s := range env.sessions {
		for {
			s.mu.Lock()
			ready := s.ws != nil && s.ws.rc != nil
			s.mu.Unlock()
			if ready {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	srv.waitWritten()
	return env
}

// TestFanoutClientsHelper is the child process of BenchmarkFanout: it opens
// the WebSockets, prints "ready", reads and discards until stdin closes.
// Run directly it does nothing.
func TestFanoutClientsHelper(t *testing.T) {
	u := os.Getenv(envFanoutURL)
	if u == "" {
		t.Skip("child process of BenchmarkFanout")
	}
	n, err := strconv.Atoi(os.Getenv(envFanoutN))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		conn, _, _, err := ws.Dial(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, conn) }()
		conns = append(conns, conn)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
}
