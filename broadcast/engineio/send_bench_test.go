package engineio

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// benchConfig is c for a benchmark's server: no heartbeat during the run,
// no log, and no caps on pending sessions, since Engine.IO alone admits
// none (the Socket.IO CONNECT does) and the caps would refuse all but the
// first 100 of a benchmark's connections.
func benchConfig(c Config) Config {
	c.PingInterval = time.Hour
	c.MaxPending, c.MaxPendingPerAddress = -1, -1
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// benchSessions starts a real server with n WebSocket sessions, whose
// clients read and discard everything if drain is set, and returns the
// sessions.
func benchSessions(b *testing.B, n int, drain bool) []*Session {
	b.Helper()
	got := make(chan *Session, n)
	srv := NewServer(benchConfig(Config{SendQueue: 1 << 16}), func(s *Session) { got <- s })
	hs := httptest.NewServer(srv)
	b.Cleanup(func() { srv.Close(); hs.Close() })
	u := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	sessions := make([]*Session, 0, n)
	for range n {
		conn, _, _, err := ws.Dial(b.Context(), u)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		if drain {
			go func() { _, _ = io.Copy(io.Discard, conn) }()
		}
		sessions = append(sessions, <-got)
	}
	return sessions
}

// BenchmarkBroadcastSend measures one broadcast to every session: the
// packet is built once and the same *Packet is sent to all. "per-session
// encode" is the reference run: what a server that encodes per socket pays.
// allocs/send is allocs/op divided by the number of sessions.
func BenchmarkBroadcastSend(b *testing.B) {
	payload := []byte(`["member:update",{"id":1234,"first_name":"Ada","last_name":"Lovelace","email":"ada@example.org","phone":"555-0100","address":"12 Analytical Engine Way","city":"London","updated_at":"2024-03-01T00:00:00.000Z","version":"42","notes":"padding to about three hundred bytes of json"}]`)
	for _, n := range []int{100, 1000} {
		sessions := benchSessions(b, n, true)
		b.Run(fmt.Sprintf("encode-once/sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer reportAllocsPerSend(b, n)()
			for b.Loop() {
				p := NewMessage(payload)
				for _, s := range sessions {
					if !s.Send(p) {
						b.Fatal("send refused")
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/float64(n), "ns/send")
		})
		b.Run(fmt.Sprintf("per-session-encode/sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer reportAllocsPerSend(b, n)()
			for b.Loop() {
				for _, s := range sessions {
					p := NewMessage(payload)
					p.wsBytes()
					if !s.Send(p) {
						b.Fatal("send refused")
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/float64(n), "ns/send")
		})
	}
}

// reportAllocsPerSend reports heap allocations per session per message,
// counted process-wide, so the writer goroutines' allocations are included.
func reportAllocsPerSend(b *testing.B, sessions int) func() {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	return func() {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/float64(sessions), "allocs/send")
	}
}

// TestSendAllocs pins the property the broadcaster relies on: once a
// session's queue has grown, enqueueing a shared packet allocates nothing.
func TestSendAllocs(t *testing.T) {
	srv := NewServer(Config{SendQueue: 1 << 20}, nil)
	s := newSession(srv, "x", &HandshakeInfo{}, "polling")
	p := NewMessage(bytes.Repeat([]byte("x"), 300))
	for range 1000 {
		s.Send(p)
	}
	s.queue = s.queue[:0]
	if a := testing.AllocsPerRun(1000, func() { s.Send(p) }); a != 0 {
		t.Fatalf("Send allocates %v times per call", a)
	}
}
