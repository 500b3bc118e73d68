package engineio

import (
	"bytes"
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// dialNonReading opens a WebSocket session whose client has a small receive
// buffer and never reads, and returns the server's session.
func dialNonReading(t *testing.T, e *testEnv) (*Session, net.Conn) {
	t.Helper()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// Set before connect so the advertised window stays small.
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	u := "ws" + strings.TrimPrefix(e.base, "http") + "?EIO=4&transport=websocket"
	conn, _, _, err := d.Dial(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	select {
	case s := <-e.sessions:
		return s, conn
	case <-time.After(5 * time.Second):
		t.Fatal("no session")
		return nil, nil
	}
}

// fillUntilCut sends size-byte packets to s, letting the writer hand each
// to the kernel before the next, until Send refuses; it returns the bytes
// accepted. The cap keeps a server that never cuts from looping forever.
func fillUntilCut(t *testing.T, s *Session, size, maxBytes int) int {
	t.Helper()
	p := NewMessage(bytes.Repeat([]byte("x"), size))
	accepted := 0
	for accepted < maxBytes {
		if !s.Send(p) {
			return accepted
		}
		accepted += size
		// Wait (briefly) for the writer to move the packet into the kernel,
		// so the kernel buffers fill before the queue does.
		for range 50 {
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return accepted
}

func serverSendBuffer(t *testing.T, s *Session) int {
	t.Helper()
	// The session is announced before its WebSocket is attached.
	var c *wsConn
	for deadline := time.Now().Add(5 * time.Second); c == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("session never got its WebSocket")
		}
		s.mu.Lock()
		c = s.ws
		s.mu.Unlock()
	}
	rc, err := c.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		n, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return n
}

// TestSlowConsumerCutByQueue checks that with a bounded kernel send buffer
// a client that stops reading is cut by the send queue ("slow consumer")
// after a bounded backlog: the queue plus the two kernel buffers.
func TestSlowConsumerCutByQueue(t *testing.T) {
	const (
		size       = 4096
		queue      = 16
		sendBuffer = 32 << 10
	)
	e := newEnv(t, Config{SendQueue: queue, SendBuffer: sendBuffer, PingInterval: time.Hour}, false)
	s, _ := dialNonReading(t, e)
	if got := serverSendBuffer(t, s); got < sendBuffer || got > 2*sendBuffer {
		t.Fatalf("SO_SNDBUF %d, want %d (Linux reports double)", got, sendBuffer)
	}
	// queue + server send buffer (counted twice by Linux) + the client's
	// receive window and loopback slack
	bound := queue*size + 2*sendBuffer + 256<<10
	accepted := fillUntilCut(t, s, size, 64<<20)
	if accepted > bound {
		t.Fatalf("accepted %d bytes before cutting, bound %d", accepted, bound)
	}
	if ev := e.waitEvent(s.ID(), "close"); ev.data != "slow consumer" {
		t.Fatalf("close reason %q, want slow consumer", ev.data)
	}
	t.Logf("cut after %d KiB accepted (bound %d KiB)", accepted>>10, bound>>10)
}

// TestSendBufferKernelDefault checks that a negative SendBuffer leaves the
// kernel's buffer alone, and logs how much more such a session absorbs
// before it is cut: the reason the default bounds it.
func TestSendBufferKernelDefault(t *testing.T) {
	const size, queue = 4096, 16
	e := newEnv(t, Config{SendQueue: queue, SendBuffer: -1, PingInterval: time.Hour}, false)
	s, _ := dialNonReading(t, e)
	if got := serverSendBuffer(t, s); got == 2*(128<<10) {
		t.Fatalf("SO_SNDBUF %d: the default was applied", got)
	}
	accepted := fillUntilCut(t, s, size, 64<<20)
	if ev := e.waitEvent(s.ID(), "close"); ev.data != "slow consumer" {
		t.Fatalf("close reason %q, want slow consumer", ev.data)
	}
	t.Logf("kernel default: cut after %d KiB accepted", accepted>>10)
}

func TestSendBufferDefault(t *testing.T) {
	if got := NewServer(Config{}, nil).Config().SendBuffer; got != 128<<10 {
		t.Fatalf("default SendBuffer %d, want %d", got, 128<<10)
	}
}

// TestSlowClientHoldsUpNoOther: a client that stopped reading gets a writer
// goroutine of its own once its kernel buffer is full; the write shards,
// which every other session shares, go on writing to those.
func TestSlowClientHoldsUpNoOther(t *testing.T) {
	e := newEnv(t, Config{SendQueue: 1 << 16, SendBuffer: 8 << 10, PingInterval: time.Hour}, false)
	slow, _ := dialNonReading(t, e)
	fast := make([]*wsClient, 4)
	sessions := make([]*Session, len(fast))
	for i := range fast {
		fast[i] = e.mustDialWS("EIO=4&transport=websocket")
		fast[i].mustRead()
		sessions[i] = <-e.sessions
	}
	big := NewMessage(bytes.Repeat([]byte("x"), 4096))
	for range 200 {
		if !slow.Send(big) {
			t.Fatal("the slow session was cut with a queue of 64k packets")
		}
	}
	for round := range 3 {
		for _, s := range sessions {
			s.Send(NewMessage([]byte("hi")))
		}
		// mustRead fails after 5 s; a shard stuck on the slow client
		// would never write these.
		for i, c := range fast {
			if got := c.mustRead(); got != "4hi" {
				t.Fatalf("round %d, client %d: got %q", round, i, got)
			}
		}
	}
}
