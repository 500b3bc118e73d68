package socketio_test

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
)

// BenchmarkBroadcast measures one broadcast of a ~300-byte event to N
// sockets over real loopback WebSockets, including the clients reading
// every frame (they count bytes and discard). "encode-once" is
// Namespace.Emit, with a wait for delivery every 64 events ("-paced": after
// every event); "encode-per-socket" is the reference: the same event
// emitted socket by socket, as a server without shared encoding would.
// allocs/op of encode-once must not grow with N.
func BenchmarkBroadcast(b *testing.B) {
	payload := `{"type":"UPDATE","data":{"id":"5f0c6c1e-8c1b-4c55-9d36-6f4f1a0b2c3d","first_name":"Margaret","last_name":"Whitfield","email":"margaret.whitfield@example.org","phone":"+1-555-0134","address":"1400 Church Street, Springfield","household_id":1234,"updated_at":"2024-03-01T00:00:00.000Z","amount":"100.00","notes":"weekly giver"}}`
	modes := []struct {
		name  string
		once  bool
		batch int // events between waits for full delivery
	}{
		{"encode-once", true, 64},
		// every session idle when the event arrives: the low-rate case
		{"encode-once-paced", true, 1},
		{"encode-per-socket", false, 64},
	}
	for _, m := range modes {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/sockets=%d", m.name, n), func(b *testing.B) {
				benchBroadcast(b, n, m.once, m.batch, payload)
			})
		}
	}
}

func benchBroadcast(b *testing.B, n int, once bool, batch int, payload string) {
	joined := make(chan *socketio.Socket, n)
	cfg := socketio.Config{EngineIO: engineio.Config{PingInterval: 10 * time.Minute, PingTimeout: time.Minute}}
	srv, addr := startServer(b, cfg, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) { joined <- s })
	})
	var received atomic.Int64
	socks := make([]*socketio.Socket, 0, n)
	for range n {
		c := connect(b, addr, "/", "")
		socks = append(socks, <-joined)
		go func() {
			// reads with one buffer: the client adds no allocations
			buf := make([]byte, 4096)
			r := c.Reader()
			for {
				k, err := r.Read(buf)
				received.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	raw := []byte(payload)
	// bytes one client receives per event: frame header + "4" + packet
	pkt := len(`42["member:update",]`) + len(payload)
	frame := int64(pkt + 2)
	if pkt >= 126 {
		frame = int64(pkt + 4)
	}
	nsp := srv.Of("/")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if once {
			if err := nsp.Emit("member:update", json.RawMessage(raw)); err != nil {
				b.Fatal(err)
			}
		} else {
			for _, s := range socks {
				if err := s.Emit("member:update", json.RawMessage(raw)); err != nil {
					b.Fatal(err)
				}
			}
		}
		// Keep within the send queues: wait for delivery every batch events.
		if i%batch == batch-1 || i == b.N-1 {
			want := int64(i+1) * int64(n) * frame
			deadline := time.Now().Add(30 * time.Second)
			for received.Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("delivered %d of %d bytes", received.Load(), want)
				}
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
	b.StopTimer()
	if got := nsp.Len(); got != n {
		b.Fatalf("%d of %d sockets still connected", got, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
}
