package engineio

import (
	"bytes"
	"net"
	"slices"
	"testing"
	"time"
)

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"4hello", "2probe", "3", "1", "abc", "", "6", "4\x00\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePacket(b)
		if err != nil {
			return
		}
		// What decodes must re-encode to the same bytes.
		if enc := newControl(p.typ, string(p.data)).pollBytes(); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %q, input %q", enc, b)
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "b", "4ok\x1e", "\x1e", "bAQ", "3\x1e2probe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := decodePayload(b, nil)
		if err != nil {
			return
		}
		if len(pkts) == 0 {
			t.Fatal("no error and no packets")
		}
		// Re-encoding yields a payload that decodes to the same packets
		// (base64 may differ in padding, so compare decoded forms).
		out := make([]*Packet, len(pkts))
		for i, p := range pkts {
			out[i] = &Packet{typ: p.typ, data: p.data, binary: p.binary}
		}
		again, err := decodePayload(appendPayload(nil, out), nil)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		for i := range pkts {
			if again[i].typ != pkts[i].typ || !bytes.Equal(again[i].data, pkts[i].data) || again[i].binary != pkts[i].binary {
				t.Fatalf("packet %d changed in round trip", i)
			}
		}
	})
}

// discardConn is a net.Conn whose reads end at once and whose writes are
// dropped; the frame reader only needs somewhere to send control replies.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// maskedFrame builds a client frame for seeds and tests.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

func FuzzReadMessage(f *testing.F) {
	f.Add(maskedFrame(true, opText, []byte("4hello")))
	f.Add(maskedFrame(true, opBinary, []byte{1, 2, 3}))
	f.Add(append(maskedFrame(false, opText, []byte("4he")), maskedFrame(true, opContinuation, []byte("llo"))...))
	f.Add(append(maskedFrame(true, opPing, []byte("x")), maskedFrame(true, opText, []byte("3"))...))
	f.Add(maskedFrame(true, opClose, []byte{0x03, 0xe8}))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}) // unmasked
	f.Add(maskedFrame(true, opText, bytes.Repeat([]byte("a"), 300)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &wsConn{conn: discardConn{}, pre: b}
		const limit = 1 << 10
		for i := 0; i < 8; i++ {
			_, msg, err := c.readMessage(limit, 0)
			if err != nil {
				return
			}
			if len(msg) > limit {
				t.Fatalf("message of %d bytes passed a %d limit", len(msg), limit)
			}
		}
	})
}

// chunkConn returns its data at most n bytes per Read, as a network
// delivers a stream in pieces of any size.
type chunkConn struct {
	discardConn
	data []byte
	n    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, net.ErrClosed
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// FuzzReadChunked reads a stream through the idle reader's path
// (awaitFrame, then readMessage) in chunks of every size and checks it
// yields exactly the messages, and the error, of reading it whole.
func FuzzReadChunked(f *testing.F) {
	f.Add(maskedFrame(true, opText, []byte("4hello")), uint8(1))
	f.Add(append(maskedFrame(false, opText, []byte("4he")), maskedFrame(true, opContinuation, []byte("llo"))...), uint8(3))
	f.Add(append(maskedFrame(true, opPing, []byte("x")), maskedFrame(true, opText, []byte("3"))...), uint8(5))
	f.Add(maskedFrame(true, opBinary, bytes.Repeat([]byte{7}, 200)), uint8(7))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint8(2)) // unmasked
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		const limit = 1 << 10
		read := func(c *wsConn, await bool) (msgs []string, err error) {
			for range 8 {
				if await {
					if err := c.awaitFrame(); err != nil {
						return msgs, err
					}
				}
				_, msg, err := c.readMessage(limit, 0)
				if err != nil {
					return msgs, err
				}
				msgs = append(msgs, string(msg))
			}
			return msgs, nil
		}
		whole, werr := read(&wsConn{conn: discardConn{}, pre: b}, false)
		chunked, cerr := read(&wsConn{conn: &chunkConn{data: b, n: int(chunk%16) + 1}}, true)
		if !slices.Equal(whole, chunked) {
			t.Fatalf("chunked read gave %q, whole read %q", chunked, whole)
		}
		if (werr == nil) != (cerr == nil) {
			t.Fatalf("chunked read error %v, whole read error %v", cerr, werr)
		}
	})
}

// FuzzReadPayloadBound reads a payload that announces n bytes from a
// stream that may end early, in chunks of every size: the buffer holds
// what arrived and at most about as much again (plus payloadChunk), never
// what was announced.
func FuzzReadPayloadBound(f *testing.F) {
	f.Add([]byte("abc"), uint32(1<<20), uint8(1))
	f.Add(bytes.Repeat([]byte{7}, 5000), uint32(999_999), uint8(200))
	f.Add(bytes.Repeat([]byte{7}, 700), uint32(700), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, announced uint32, chunk uint8) {
		n := int(announced % (4 << 20))
		c := &wsConn{conn: &chunkConn{data: data, n: int(chunk) + 1}}
		msg, err := c.readPayload(nil, n)
		if len(msg) > n || len(msg) > len(data) {
			t.Fatalf("read %d bytes of %d announced, %d sent", len(msg), n, len(data))
		}
		if err == nil && len(msg) != n {
			t.Fatalf("no error after %d of %d bytes", len(msg), n)
		}
		// Size classes and pages round an allocation up by at most an
		// eighth or a page.
		if bound := (2*len(msg)+payloadChunk)*9/8 + 8192; cap(msg) > bound {
			t.Fatalf("buffer of %d bytes for %d received (%d announced), want at most %d", cap(msg), len(msg), n, bound)
		}
	})
}
