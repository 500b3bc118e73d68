// Package siotest is a minimal Engine.IO v4 / Socket.IO v5 client over a raw
// WebSocket, for tests and benchmarks of the server. It speaks the wire
// format directly, so tests see exactly the bytes a browser would.
package siotest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Conn is one WebSocket connection speaking Engine.IO v4.
type Conn struct {
	c  net.Conn
	br *bufio.Reader
	// Open is the Engine.IO open packet's JSON.
	Open string
}

// Dial opens a WebSocket Engine.IO session at base (e.g. "127.0.0.1:3000"),
// with extra query parameters and headers, and reads the open packet.
func Dial(addr string, query url.Values, header http.Header) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	q := url.Values{"EIO": {"4"}, "transport": {"websocket"}}
	for k, v := range query {
		q[k] = v
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	var sb strings.Builder
	fmt.Fprintf(&sb, "GET /socket.io/?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", q.Encode(), addr)
	fmt.Fprintf(&sb, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", base64.StdEncoding.EncodeToString(key[:]))
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	sb.WriteString("\r\n")
	if _, err := io.WriteString(c, sb.String()); err != nil {
		c.Close()
		return nil, fmt.Errorf("write upgrade: %w", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade refused: %s", resp.Status)
	}
	conn := &Conn{c: c, br: br}
	open, bin, err := conn.readEIO()
	if err != nil {
		c.Close()
		return nil, err
	}
	if bin || !strings.HasPrefix(open, "0") {
		c.Close()
		return nil, fmt.Errorf("want open packet, got %q", open)
	}
	conn.Open = open[1:]
	return conn, nil
}

// Close closes the TCP connection without a close frame.
func (c *Conn) Close() error { return c.c.Close() }

// NetConn exposes the connection, e.g. to discard everything it receives.
func (c *Conn) NetConn() net.Conn { return c.c }

// Reader is the buffered reader positioned after the handshake.
func (c *Conn) Reader() *bufio.Reader { return c.br }

// SendText sends a Socket.IO packet (the Engine.IO "4" prefix is added).
func (c *Conn) SendText(sio string) error { return c.writeFrame(1, []byte("4"+sio)) }

// SendEIO sends a raw Engine.IO text packet, e.g. "3" (pong) or "1" (close).
func (c *Conn) SendEIO(pkt string) error { return c.writeFrame(1, []byte(pkt)) }

// SendBinary sends a binary attachment.
func (c *Conn) SendBinary(b []byte) error { return c.writeFrame(2, b) }

func (c *Conn) writeFrame(op byte, payload []byte) error {
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := append(hdr, payload...)
	for i := range payload {
		buf[len(hdr)+i] ^= mask[i%4]
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.c.Write(buf)
	return err
}

// ErrClosed is returned by reads once the server closed the connection.
var ErrClosed = errors.New("connection closed by server")

// readErr keeps timeouts distinguishable from the server closing.
func readErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return ErrClosed
}

// readFrame returns one complete message (continuations joined).
func (c *Conn) readFrame() (op byte, payload []byte, err error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, nil, readErr(err)
		}
		fop := h[0] & 0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return 0, nil, readErr(err)
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return 0, nil, readErr(err)
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[1]&0x80 != 0 {
			return 0, nil, errors.New("server frame is masked")
		}
		if n > 1<<26 {
			return 0, nil, fmt.Errorf("frame of %d bytes", n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return 0, nil, readErr(err)
		}
		switch fop {
		case 8:
			return 0, nil, ErrClosed
		case 9:
			if err := c.writeFrame(10, data); err != nil {
				return 0, nil, err
			}
			continue
		case 10:
			continue
		case 0:
			payload = append(payload, data...)
		default:
			op, payload = fop, data
		}
		if h[0]&0x80 != 0 {
			return op, payload, nil
		}
	}
}

// readEIO returns the next Engine.IO packet.
func (c *Conn) readEIO() (string, bool, error) {
	op, p, err := c.readFrame()
	if err != nil {
		return "", false, err
	}
	return string(p), op == 2, nil
}

// Read returns the next Socket.IO-level message within timeout: a text
// packet without its Engine.IO "4" prefix, or a binary attachment. Engine.IO
// pings are answered and skipped.
func (c *Conn) Read(timeout time.Duration) (text string, bin []byte, err error) {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.c.SetReadDeadline(time.Time{}) }()
	for {
		s, isBin, err := c.readEIO()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", nil, fmt.Errorf("read: %w", err)
			}
			return "", nil, err
		}
		if isBin {
			return "", []byte(s), nil
		}
		switch {
		case s == "2":
			if err := c.SendEIO("3"); err != nil {
				return "", nil, err
			}
		case strings.HasPrefix(s, "4"):
			return s[1:], nil, nil
		case s == "1":
			return "", nil, ErrClosed
		}
	}
}

// ReadText is Read for a text packet; a binary message is an error.
func (c *Conn) ReadText(timeout time.Duration) (string, error) {
	s, b, err := c.Read(timeout)
	if err != nil {
		return "", err
	}
	if b != nil {
		return "", fmt.Errorf("want text, got %d binary bytes", len(b))
	}
	return s, nil
}

// Connect sends CONNECT for nsp with auth (may be "") and returns the
// server's answer (CONNECT with sid, or CONNECT_ERROR).
func (c *Conn) Connect(nsp, auth string) (string, error) {
	pkt := "0"
	if nsp != "/" && nsp != "" {
		pkt += nsp + ","
	}
	if err := c.SendText(pkt + auth); err != nil {
		return "", err
	}
	return c.ReadText(5 * time.Second)
}
