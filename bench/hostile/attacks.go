package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// kind is one way of pinning a server without authenticating.
type kind struct {
	name string
	// deadline is what closes the connection in this tree's walcast with
	// its defaults, and within is how long after the connection's start
	// (the POST's, for a trickling body) that is.
	deadline string
	within   time.Duration
	open     func(addr string, from net.IP) *hostileConn
}

var kinds = []*kind{
	{"huge frame header", "--frame-timeout, --connect-timeout 10s", 10 * time.Second, hugeFrameHeader},
	{"huge headers", "431 beyond --max-header-bytes 16 KiB", 0, func(addr string, from net.IP) *hostileConn {
		return polling(addr, from, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: bench\r\nX-Junk: "+junk+"\r\n\r\n")
	}},
	{"idle keep-alive", "no keep-alive before authentication", 0, func(addr string, from net.IP) *hostileConn {
		return polling(addr, from, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: bench\r\n\r\n")
	}},
	{"trickling POST", "--body-timeout 10s", 10 * time.Second, trickling},
	{"no CONNECT", "--connect-timeout 10s", 10 * time.Second, func(addr string, from net.IP) *hostileConn {
		return webSocket(addr, from, nil)
	}},
	{"silent TCP", "--header-timeout 10s", 10 * time.Second, silentTCP},
}

// junk is the huge headers' value: with the request line, a little under
// the 1 MiB (+4 KiB) net/http accepts by default.
var junk = strings.Repeat("j", 1_000_000)

func kindNames() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return names
}

func kindByName(name string) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// hostileConn is one hostile connection and the watch on it.
type hostileConn struct {
	conn   net.Conn // nil when the connection failed before the server answered
	answer string   // the server's answer to the handshake: a status, or what failed
	// accepted: the server took the connection on (a session opened, or
	// for huge headers and silent TCP, the connection is being read)
	// rather than refusing it.
	accepted bool
	trickle  bool
	start    time.Time // the connection's, or the trickling POST's
	done     chan struct{}
	closedAt time.Time // when the server ended the connection; set before done is closed
}

func (c *hostileConn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// lifetime is how long the connection lived before the server ended it;
// false while it is open.
func (c *hostileConn) lifetime() (time.Duration, bool) {
	if !c.isClosed() {
		return 0, false
	}
	return c.closedAt.Sub(c.start), true
}

// watch reads (and drops) whatever the server sends until it ends the
// connection (EOF or reset).
func (c *hostileConn) watch(r io.Reader) {
	c.done = make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, r)
		c.closedAt = time.Now()
		close(c.done)
	}()
}

func failed(what string, err error) *hostileConn {
	return &hostileConn{answer: what + ": " + errText(err)}
}

func dial(addr string, from net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: from}}
	return d.Dial("tcp", addr)
}

func errText(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	}
	return err.Error()
}

// upgradeRequest opens an Engine.IO session on WebSocket.
const upgradeRequest = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// hugeFrameHeader opens a WebSocket session and sends the header of a text
// frame announcing 999,999 bytes, and no byte of them.
func hugeFrameHeader(addr string, from net.IP) *hostileConn {
	return webSocket(addr, from, func(c net.Conn) error {
		h := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
		binary.BigEndian.PutUint64(h[2:10], 999_999)
		_, err := c.Write(h)
		return err
	})
}

// webSocket opens an Engine.IO WebSocket session (no CONNECT) and runs
// then on it.
func webSocket(addr string, from net.IP, then func(net.Conn) error) *hostileConn {
	start := time.Now()
	c, err := dial(addr, from)
	if err != nil {
		return failed("dial", err)
	}
	if _, err := io.WriteString(c, upgradeRequest); err != nil {
		c.Close()
		return failed("write", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return failed("answer", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	h := &hostileConn{conn: c, answer: res.Status, start: start, accepted: res.StatusCode == http.StatusSwitchingProtocols}
	if !h.accepted {
		_, _ = io.Copy(io.Discard, res.Body)
	} else if then != nil {
		if err := then(c); err != nil {
			h.answer += ", then: " + errText(err)
		}
	}
	h.watch(br)
	return h
}

// polling sends req on a new connection, reads the answer and keeps the
// connection open without another request.
func polling(addr string, from net.IP, req string) *hostileConn {
	start := time.Now()
	c, err := dial(addr, from)
	if err != nil {
		return failed("dial", err)
	}
	// Written aside: a server that refuses early stops reading.
	go func() { _, _ = io.WriteString(c, req) }()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return failed("answer", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = c.SetReadDeadline(time.Time{})
	h := &hostileConn{conn: c, answer: res.Status, start: start, accepted: res.StatusCode == http.StatusOK}
	h.watch(br)
	return h
}

// trickling opens a polling session (on a connection it then closes) and
// starts a POST to it whose body trickle sends one byte a second.
func trickling(addr string, from net.IP) *hostileConn {
	c, err := dial(addr, from)
	if err != nil {
		return failed("dial", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	if err != nil {
		c.Close()
		return failed("write", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return failed("handshake", err)
	}
	body, _ := io.ReadAll(res.Body)
	c.Close()
	if res.StatusCode != http.StatusOK {
		return &hostileConn{answer: "handshake " + res.Status}
	}
	_, rest, _ := strings.Cut(string(body), `"sid":"`)
	sid, _, ok := strings.Cut(rest, `"`)
	if !ok {
		return &hostileConn{answer: "handshake without sid"}
	}
	start := time.Now()
	p, err := dial(addr, from)
	if err != nil {
		return failed("dial", err)
	}
	_, err = io.WriteString(p, "POST /socket.io/?EIO=4&transport=polling&sid="+sid+" HTTP/1.1\r\nHost: bench\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 100000\r\n\r\n4")
	if err != nil {
		p.Close()
		return failed("write", err)
	}
	h := &hostileConn{conn: p, answer: "session opened, body trickling", start: start, accepted: true, trickle: true}
	h.watch(p)
	return h
}

// silentTCP connects and sends nothing.
func silentTCP(addr string, from net.IP) *hostileConn {
	start := time.Now()
	c, err := dial(addr, from)
	if err != nil {
		return failed("dial", err)
	}
	h := &hostileConn{conn: c, answer: "connected", start: start, accepted: true}
	h.watch(c)
	return h
}

// authenticate is a legitimate client: a WebSocket session whose CONNECT
// carries a valid token, accepted ("40{") within 10 s.
func authenticate(addr string, from net.IP, tok string) error {
	c, err := dial(addr, from)
	if err != nil {
		return fmt.Errorf("dial: %s", errText(err))
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, upgradeRequest); err != nil {
		return fmt.Errorf("write: %s", errText(err))
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("answer: %s", errText(err))
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		return errors.New(res.Status)
	}
	if _, err := c.Write(clientFrame([]byte(`40{"token":"` + tok + `"}`))); err != nil {
		return fmt.Errorf("CONNECT: %s", errText(err))
	}
	for {
		msg, err := readServerFrame(br)
		if err != nil {
			return fmt.Errorf("waiting for the CONNECT's answer: %s", errText(err))
		}
		switch {
		case strings.HasPrefix(msg, "40{"):
			return nil
		case strings.HasPrefix(msg, "44"):
			return fmt.Errorf("refused: %s", msg)
		}
	}
}

// clientFrame is a text frame masked with a zero key (the payload as is),
// its length in the shortest encoding.
func clientFrame(payload []byte) []byte {
	n := len(payload)
	var f []byte
	switch {
	case n < 126:
		f = []byte{0x81, 0x80 | byte(n)}
	case n <= 0xffff:
		f = binary.BigEndian.AppendUint16([]byte{0x81, 0x80 | 126}, uint16(n))
	default:
		f = binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, uint64(n))
	}
	return append(append(f, 0, 0, 0, 0), payload...)
}

// readServerFrame reads one unmasked server frame's payload.
func readServerFrame(r *bufio.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return "", fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return string(p), err
}
