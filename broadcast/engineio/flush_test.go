package engineio

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestWriteDelayDelivers checks that held-back writes all arrive, in order,
// and that a close during the delay still flushes them before the close
// frame.
func TestWriteDelayDelivers(t *testing.T) {
	e := newEnv(t, Config{WriteDelay: 20 * time.Millisecond, PingInterval: time.Hour}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	if got := c.mustRead(); !strings.HasPrefix(got, "0{") {
		t.Fatalf("open packet %q", got)
	}
	s := <-e.sessions
	for i := range 5 {
		if !s.Send(NewMessage([]byte(strconv.Itoa(i)))) {
			t.Fatal("send refused")
		}
	}
	for i := range 5 {
		if got, want := c.mustRead(), "4"+strconv.Itoa(i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	s.Send(NewMessage([]byte("last")))
	s.Close("bye")
	if got := c.mustRead(); got != "4last" {
		t.Fatalf("got %q, want 4last", got)
	}
	if code := c.expectClosed(); code != ws.StatusNormalClosure {
		t.Fatalf("close code %d", code)
	}
}

// writeSyscalls is this process's count of write system calls (writev
// included), from /proc/self/io.
func writeSyscalls(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io:", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no syscw in /proc/self/io")
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteDelay sends groups of 4 events to 200 sessions over
// loopback and waits for delivery after each group; "back-to-back" sends
// the four at once (a transaction of four row changes), "spaced" 1 ms
// apart (a busy stream). "delay=0s" is the reference: writers start at
// once. Reported: write system calls and process CPU (server and the
// in-process clients, which read and discard) per delivered event, and
// ns/op, whose growth is the added latency.
func BenchmarkWriteDelay(b *testing.B) {
	const n, burst = 200, 4
	payload := bytes.Repeat([]byte("x"), 300)
	for _, gap := range []time.Duration{0, time.Millisecond} {
		for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
			shape := "back-to-back"
			if gap > 0 {
				shape = "spaced"
			}
			b.Run(fmt.Sprintf("%s/delay=%s", shape, delay), func(b *testing.B) {
				benchWriteDelay(b, n, burst, gap, delay, payload)
			})
		}
	}
}

func benchWriteDelay(b *testing.B, n, burst int, gap, delay time.Duration, payload []byte) {
	got := make(chan *Session, n)
	srv := NewServer(benchConfig(Config{WriteDelay: delay}), func(s *Session) { got <- s })
	hs := httptest.NewServer(srv)
	defer func() { srv.Close(); hs.Close() }()
	u := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	var received atomic.Int64
	sessions := make([]*Session, 0, n)
	for range n {
		conn, _, _, err := ws.Dial(b.Context(), u)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		go func() {
			buf := make([]byte, 4096)
			for {
				k, err := conn.Read(buf)
				received.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
		sessions = append(sessions, <-got)
	}
	frame := int64(len(NewMessage(payload).wsBytes()))
	// wait for the open packets
	time.Sleep(100 * time.Millisecond)
	base := received.Load()
	w0, c0 := writeSyscalls(b), cpuTime()
	b.ResetTimer()
	for i := range b.N {
		for k := range burst {
			if k > 0 && gap > 0 {
				time.Sleep(gap)
			}
			p := NewMessage(payload)
			for _, s := range sessions {
				s.Send(p)
			}
		}
		want := base + int64(i+1)*int64(burst*n)*frame
		deadline := time.Now().Add(30 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("delivered %d of %d bytes", received.Load()-base, want-base)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	deliveries := float64(b.N * burst * n)
	b.ReportMetric(float64(writeSyscalls(b)-w0)/deliveries, "writes/delivery")
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/1e3/deliveries, "cpu-µs/delivery")
}

// TestCork checks that corked packets stay queued with no writer until the
// last Uncork, then go out in order.
func TestCork(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Hour}, false)
	c := e.mustDialWS("EIO=4&transport=websocket")
	if got := c.mustRead(); !strings.HasPrefix(got, "0{") {
		t.Fatalf("open packet %q", got)
	}
	s := <-e.sessions
	s.Cork()
	s.Cork()
	s.Send(NewMessage([]byte("a")))
	s.Send(NewMessage([]byte("b")))
	s.Uncork()
	// The open packet's writer may still be running when the cork comes;
	// it must stop without writing what is corked.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		queued, writing := len(s.queue), s.writing
		s.mu.Unlock()
		if !writing {
			if queued != 2 {
				t.Fatalf("while corked: %d queued, want 2", queued)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writer still running while corked")
		}
	}
	s.Uncork()
	s.Uncork() // unmatched: ignored
	s.Send(NewMessage([]byte("c")))
	for _, want := range []string{"4a", "4b", "4c"} {
		if got := c.mustRead(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
