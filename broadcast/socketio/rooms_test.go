package socketio_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

// received reads c's events until the "marker" event and returns the names
// of the events before it, so a test can check what a socket did NOT get.
func received(t *testing.T, c *siotest.Conn) []string {
	t.Helper()
	var names []string
	for {
		s, err := c.ReadText(readTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if s == `2["marker"]` {
			return names
		}
		names = append(names, s)
	}
}

func TestRoomsBroadcast(t *testing.T) {
	// sockets by name, and their rooms
	layout := []struct {
		name  string
		rooms []string
	}{
		{"a", []string{"r1"}},
		{"b", []string{"r1", "r2"}},
		{"c", []string{"r2"}},
		{"d", nil},
	}
	joined := make(chan *socketio.Socket, len(layout))
	srv, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			var auth struct{ Rooms []string }
			if err := json.Unmarshal(s.Handshake().Auth, &auth); err == nil {
				s.Join(auth.Rooms...)
			}
			s.On("leave", func(s *socketio.Socket, args socketio.Args, _ socketio.AckFunc) {
				var room string
				_ = args.Unmarshal(0, &room)
				s.Leave(room)
			})
			joined <- s
		})
	})
	conns := map[string]*siotest.Conn{}
	socks := map[string]*socketio.Socket{}
	for _, l := range layout {
		conns[l.name] = connect(t, addr, "/", fmt.Sprintf(`{"rooms":%s}`, jsonString(l.rooms)))
		socks[l.name] = <-joined
	}
	nsp := srv.Of("/")
	if got := socks["b"].Rooms(); !sameSet(got, []string{socks["b"].ID(), "r1", "r2"}) {
		t.Fatalf("b's rooms %v", got)
	}

	tests := []struct {
		name string
		emit func() error
		want map[string]int // events received per socket
	}{
		{"all", func() error { return nsp.Emit("e") }, map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}},
		{"one room", func() error { return nsp.To("r1").Emit("e") }, map[string]int{"a": 1, "b": 1}},
		{"two rooms, overlap once", func() error { return nsp.To("r1", "r2").Emit("e") }, map[string]int{"a": 1, "b": 1, "c": 1}},
		{"room listed twice", func() error { return nsp.To("r2").To("r2").Emit("e") }, map[string]int{"b": 1, "c": 1}},
		{"except", func() error { return nsp.Except("r2").Emit("e") }, map[string]int{"a": 1, "d": 1}},
		{"rooms except", func() error { return nsp.To("r1", "r2").Except("r1").Emit("e") }, map[string]int{"c": 1}},
		{"own id room", func() error { return nsp.To(socks["d"].ID()).Emit("e") }, map[string]int{"d": 1}},
		{"own id room and a room", func() error { return nsp.To(socks["d"].ID(), "r2").Emit("e") }, map[string]int{"b": 1, "c": 1, "d": 1}},
		{"except own id room", func() error { return nsp.Except(socks["d"].ID()).Emit("e") }, map[string]int{"a": 1, "b": 1, "c": 1}},
		{"unknown room", func() error { return nsp.To("nobody").Emit("e") }, map[string]int{}},
		{"from socket to all but itself", func() error { return socks["b"].Broadcast().Emit("e") }, map[string]int{"a": 1, "c": 1, "d": 1}},
		{"from socket to its room", func() error { return socks["b"].To("r1").Emit("e") }, map[string]int{"a": 1}},
		{"from socket except", func() error { return socks["a"].Except("r2").Emit("e") }, map[string]int{"d": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.emit(); err != nil {
				t.Fatal(err)
			}
			if err := nsp.Emit("marker"); err != nil {
				t.Fatal(err)
			}
			for _, l := range layout {
				got := received(t, conns[l.name])
				if len(got) != tt.want[l.name] {
					t.Errorf("%s got %q, want %d event(s)", l.name, got, tt.want[l.name])
				}
				for _, g := range got {
					if g != `2["e"]` {
						t.Errorf("%s got %q", l.name, g)
					}
				}
			}
		})
	}

	// leaving a room, and leaving everything on disconnect
	if err := conns["b"].SendText(`2["leave","r1"]`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(nsp.To("r1").Sockets()) == 1 })
	_ = conns["a"].Close()
	waitFor(t, func() bool { return len(nsp.To("r1").Sockets()) == 0 && nsp.Len() == 3 })
	if got := len(nsp.To("r2").Except("r2").Sockets()); got != 0 {
		t.Errorf("r2 except r2: %d sockets", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(readTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func jsonString(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	return `["` + strings.Join(ss, `","`) + `"]`
}
