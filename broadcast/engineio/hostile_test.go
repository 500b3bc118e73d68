package engineio

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hostile clients: what a client that has not authenticated can make the
// server hold, driven over real sockets.

// frameHeader is the header of a masked client frame announcing n bytes of
// payload (with headerMask), and nothing after it.
func frameHeader(op byte, n int) []byte {
	return append([]byte{0x80 | op, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, headerMask[:]...)
}

var headerMask = [4]byte{1, 2, 3, 4}

// masked masks payload bytes that start at offset off of a frame made by
// frameHeader.
func masked(off int, payload []byte) []byte {
	out := make([]byte, len(payload))
	for i, c := range payload {
		out[i] = c ^ headerMask[(off+i)%4]
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestFrameHeaderAllocatesWhatArrives: 200 sessions each announce a
// message just under MaxPayload (14 bytes of header) and send 10 bytes of
// it. The server holds what arrived, not what was announced: before, each
// header cost the announced megabyte at once.
func TestFrameHeaderAllocatesWhatArrives(t *testing.T) {
	e := newEnv(t, Config{}, false)
	const conns, announced = 200, 999_999
	go func() {
		for range e.sessions {
		}
	}()
	before := heapInUse()
	clients := make([]*wsClient, conns)
	for i := range clients {
		c := e.mustDialWS("EIO=4&transport=websocket")
		if _, _, err := c.read(); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if _, err := c.conn.Write(append(frameHeader(opText, announced), masked(0, []byte("4abcdefghi"))...)); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	// The readers take the headers and wait for the rest.
	time.Sleep(500 * time.Millisecond)
	grown := int64(heapInUse()) - int64(before)
	t.Logf("%d sessions, each %d bytes announced and 10 sent: heap grew %d KB (%d B per session)", conns, announced, grown/1024, grown/conns)
	if grown > 10<<20 {
		t.Errorf("heap grew %d MB for %d announced messages of which 10 bytes each arrived, want < 10 MB", grown>>20, conns)
	}
	// The messages still arrive whole when their bytes come.
	if _, err := clients[0].conn.Write(masked(10, []byte(strings.Repeat("x", announced-10)))); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		var ev event
		select {
		case ev = <-e.events:
		case <-timeout:
			t.Fatal("the message did not arrive")
		}
		if ev.kind == "close" {
			t.Fatalf("a session closed: %q", ev.data)
		}
		if ev.kind == "message" {
			if len(ev.data) != announced-1 {
				t.Fatalf("message of %d bytes, want %d", len(ev.data), announced-1)
			}
			break
		}
	}
}

// TestStalledMessageIsCut: a client that starts a message and stops
// sending is cut after FrameTimeout with 1008; one that idles between
// messages is not, and one that sends a message in pieces within the
// timeout is heard.
func TestStalledMessageIsCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, Config{FrameTimeout: timeout, PingInterval: time.Minute}, false)
	tests := []struct {
		name string
		sent []byte
	}{
		{"header only", frameHeader(opText, 1000)},
		{"part of the payload", append(maskedFrame(true, opText, []byte("4"+strings.Repeat("x", 99)))[:50:50])},
		{"part of the header", maskedFrame(true, opText, []byte("4hello"))[:3]},
		{"fragment without its end", maskedFrame(false, opText, []byte("4frag"))},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.mustDialWS("EIO=4&transport=websocket")
			sid := parseOpen(t, c.mustRead()).SID
			start := time.Now()
			if _, err := c.conn.Write(tt.sent); err != nil {
				t.Fatal(err)
			}
			if code := c.expectClosed(); code != 1008 {
				t.Fatalf("close code %d, want 1008", code)
			}
			if took := time.Since(start); took < timeout {
				t.Fatalf("cut after %s, before the %s timeout", took, timeout)
			}
			if ev := e.waitEvent(sid, "close"); ev.data != "transport error" {
				t.Fatalf("reason %q", ev.data)
			}
			if got := e.srv.Stats().Refused.SlowMessage; got != uint64(i+1) {
				t.Fatalf("Stats().Refused.SlowMessage = %d, want %d", got, i+1)
			}
		})
	}

	c := e.mustDialWS("EIO=4&transport=websocket")
	sid := parseOpen(t, c.mustRead()).SID
	time.Sleep(3 * timeout) // idle between messages: no bound
	frame := maskedFrame(true, opText, []byte("4in pieces"))
	for _, part := range [][]byte{frame[:1], frame[1:8], frame[8:]} {
		if _, err := c.conn.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 4)
	}
	if ev := e.waitEvent(sid, "message"); ev.data != "in pieces" {
		t.Fatalf("message %q", ev.data)
	}
	// The deadline was for that message only.
	time.Sleep(3 * timeout)
	c.send("4again")
	if ev := e.waitEvent(sid, "message"); ev.data != "again" {
		t.Fatalf("message %q", ev.data)
	}
}
