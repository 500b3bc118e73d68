package socketio_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
)

// recorder is an Observer writing one line per notice.
type recorder struct {
	mu    sync.Mutex
	lines []string
	seen  chan struct{}
}

func newRecorder() *recorder { return &recorder{seen: make(chan struct{}, 1000)} }

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.seen <- struct{}{}
}

func (r *recorder) SocketConnected(s *socketio.Socket) {
	rooms := s.Rooms()
	slices.Sort(rooms)
	r.add("connected %s %s rooms=%s", s.Namespace().Name(), s.ID(), strings.Join(rooms, ","))
}

func (r *recorder) SocketDisconnected(s *socketio.Socket, reason string, rooms []string) {
	rooms = slices.Clone(rooms)
	slices.Sort(rooms)
	r.add("disconnected %s %s %s rooms=%s", s.Namespace().Name(), s.ID(), reason, strings.Join(rooms, ","))
}

func (r *recorder) RoomsJoined(s *socketio.Socket, rooms []string) {
	r.add("joined %s %s", s.ID(), strings.Join(rooms, ","))
}

func (r *recorder) RoomLeft(s *socketio.Socket, room string) { r.add("left %s %s", s.ID(), room) }

func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.lines)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.seen:
		case <-deadline:
			t.Fatalf("observer saw %d notices, want %d: %q", len(got), n, got)
		}
	}
}

// TestObserver: the observer sees a socket connect with the rooms its
// connection handler joined, later joins and leaves, and its disconnect with
// the reason and the rooms it was in, in that order; a socket refused by a
// middleware is never announced.
func TestObserver(t *testing.T) {
	rec := newRecorder()
	sockets := make(chan *socketio.Socket, 1)
	srv, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.AddObserver(rec)
		srv.Of("/").Use(func(s *socketio.Socket) error {
			if strings.Contains(string(s.Handshake().Auth), "refuse") {
				return fmt.Errorf("refused")
			}
			return nil
		})
		srv.Of("/").OnConnection(func(s *socketio.Socket) {
			s.Join("at-connect")
			s.On("join", func(s *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) {
				s.Join("later", "later2")
				_ = ack()
			})
			s.On("leave", func(s *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) {
				s.Leave("later")
				_ = ack()
			})
			sockets <- s
		})
	})

	// Refused by the middleware: nothing to announce.
	refused := dial(t, addr)
	if err := refused.SendText(`0{"refuse":true}`); err != nil {
		t.Fatal(err)
	}
	if s, err := refused.ReadText(readTimeout); err != nil || !strings.HasPrefix(s, "4") {
		t.Fatalf("refused client read %q, %v; want a CONNECT_ERROR", s, err)
	}

	c := connect(t, addr, "/", "")
	s := <-sockets
	id := s.ID()
	if err := c.SendText(`20["join"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `30[]`)
	if err := c.SendText(`21["leave"]`); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, `31[]`)
	_ = c.Close()

	got := rec.wait(t, 4)
	want := []string{
		"connected / " + id + " rooms=" + strings.Join(sorted(id, "at-connect"), ","),
		"joined " + id + " later,later2",
		"left " + id + " later",
		"disconnected / " + id + " transport close rooms=" + strings.Join(sorted(id, "at-connect", "later2"), ","),
	}
	if !slices.Equal(got, want) {
		t.Errorf("observer saw\n%q\nwant\n%q", got, want)
	}

	// The namespace listing has what is connected now.
	c2 := connect(t, addr, "/", "")
	s2 := <-sockets
	rec.wait(t, 5)
	var listed []string
	for _, n := range srv.Namespaces() {
		for _, so := range n.SocketList() {
			listed = append(listed, n.Name()+" "+so.ID())
		}
	}
	if !slices.Equal(listed, []string{"/ " + s2.ID()}) {
		t.Errorf("listed %q, want the one connected socket %s", listed, s2.ID())
	}
	if s2.ConnID() == "" || s2.ConnID() == s2.ID() {
		t.Errorf("ConnID %q: want the Engine.IO session id, not the socket id %q", s2.ConnID(), s2.ID())
	}
	if n, ok := srv.Of("/").Adapter().(*socketio.MemoryAdapter); !ok || n.RoomCount() != 1 {
		t.Errorf("room count with one socket in at-connect: %v", n.RoomCount())
	}
	_ = c2
}

// TestObserverAddedLater: an observer added after a socket connected is
// told of its disconnect (so a listing taken when it was added stays
// right), not of its connect.
func TestObserverAddedLater(t *testing.T) {
	sockets := make(chan *socketio.Socket, 1)
	srv, addr := startServer(t, socketio.Config{}, func(srv *socketio.Server) {
		srv.Of("/").OnConnection(func(s *socketio.Socket) { sockets <- s })
	})
	c := connect(t, addr, "/", "")
	s := <-sockets
	rec := newRecorder()
	srv.AddObserver(rec)
	_ = c.Close()
	got := rec.wait(t, 1)
	if want := "disconnected / " + s.ID() + " transport close rooms=" + s.ID(); !slices.Equal(got, []string{want}) {
		t.Errorf("observer saw %q, want [%q]", got, want)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
