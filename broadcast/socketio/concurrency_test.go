package socketio_test

import (
	"fmt"
	"sync"
	"testing"

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
