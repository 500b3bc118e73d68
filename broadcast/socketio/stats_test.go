package socketio_test

import (
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
)

// TestStatsCountBroadcasts: a broadcast counts once, its receivers once
// each (a socket in several of its rooms too), and the transport's figures
// come along.
func TestStatsCountBroadcasts(t *testing.T) {
	srv, addr := startServer(t, socketio.Config{}, func(s *socketio.Server) {
		s.Of("/").OnConnection(func(sk *socketio.Socket) { sk.Join("a", "b") })
	})
	a := connect(t, addr, "/", "")
	b := connect(t, addr, "/", "")
	if st := srv.Stats(); st.Sockets != 2 || st.Broadcasts != 0 || st.EngineIO.SessionsWebSocket != 2 {
		t.Fatalf("after connecting: %+v", st)
	}
	if err := srv.Of("/").To("a", "b").Emit("x", 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Of("/").To("nobody").Emit("y"); err != nil {
		t.Fatal(err)
	}
	expectText(t, a, `2["x",1]`)
	expectText(t, b, `2["x",1]`)
	st := srv.Stats()
	if st.Broadcasts != 2 || st.BroadcastReceivers != 2 {
		t.Fatalf("broadcasts %d to %d receivers, want 2 to 2", st.Broadcasts, st.BroadcastReceivers)
	}
	// Each socket got its CONNECT reply and the event.
	deadline := time.Now().Add(5 * time.Second)
	for st.EngineIO.Delivered < 2*3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		st = srv.Stats()
	}
	if st.EngineIO.Delivered != 2*3 {
		t.Fatalf("engine.io delivered %d packets, want 6 (open, CONNECT, event for each)", st.EngineIO.Delivered)
	}
}
