package socketio_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

// TestConcurrentBroadcastJoinDisconnect runs broadcasts, joins, leaves and
// disconnects at once (for the race detector), then checks that every
// socket still connected receives a final broadcast exactly once.
func TestConcurrentBroadcastJoinDisconnect(t *testing.T) {
	const n = 20
	joined := make(chan *socketio.Socket, n)
	srv, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) { joined <- s })
	})
	nsp := srv.Of("/")
	conns := make([]*siotest.Conn, n)
	socks := make([]*socketio.Socket, n)
	for i := range n {
		conns[i] = connect(t, addr, "/", "")
		socks[i] = <-joined
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 200 {
			_ = nsp.To(fmt.Sprintf("r%d", i%3), "r1").Except("r2").Emit("noise", i)
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 200 {
			s := socks[i%n]
			s.Join(fmt.Sprintf("r%d", i%4))
			s.Leave(fmt.Sprintf("r%d", (i+1)%4))
			_ = s.Broadcast().Emit("noise", i)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i += 4 {
			_ = conns[i].Close()
		}
	}()
	wg.Wait()
	waitFor(t, func() bool { return nsp.Len() == n-n/4 })
	if err := nsp.Emit("final"); err != nil {
		t.Fatal(err)
	}
	if err := nsp.Emit("marker"); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		if i%4 == 0 {
			continue
		}
		finals := 0
		for _, m := range received(t, c) {
			if m == `2["final"]` {
				finals++
			}
		}
		if finals != 1 {
			t.Errorf("socket %d got %d final events", i, finals)
		}
	}
}

// TestBroadcastCutsSlowConsumer checks that a broadcast that overflows a
// non-reading client's queue cuts it without blocking: its disconnect
// (leaving its rooms) needs the adapter lock the broadcast holds.
func TestBroadcastCutsSlowConsumer(t *testing.T) {
	disconnected := make(chan string, 1)
	cfg := socketio.Config{EngineIO: engineio.Config{SendQueue: 8, SendBuffer: 16 << 10, PingInterval: time.Hour}}
	srv, addr := startServer(t, cfg, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.Join("room")
			s.OnDisconnect(func(reason string) { disconnected <- reason })
		})
	})
	connect(t, addr, "/", "") // never read from again
	nsp := srv.Of("/")
	waitFor(t, func() bool { return nsp.Len() == 1 })
	payload := json.RawMessage(`"` + strings.Repeat("x", 4000) + `"`)
	done := make(chan error, 1)
	go func() {
		for range 10000 {
			if err := nsp.To("room").Emit("big", payload); err != nil {
				done <- err
				return
			}
			if nsp.Len() == 0 {
				break
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("broadcast blocked: the slow consumer's disconnect deadlocked with it")
	}
	select {
	case reason := <-disconnected:
		if reason != "slow consumer" {
			t.Fatalf("disconnect reason %q, want slow consumer", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow consumer not disconnected")
	}
	if n := len(nsp.To("room").Sockets()); n != 0 {
		t.Fatalf("%d sockets still in the room", n)
	}
}
