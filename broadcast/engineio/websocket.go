package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// WebSocket close codes the server sends.
const (
	wsCloseNormal   = 1000
	wsCloseProtocol = 1002
	wsCloseTooBig   = 1009
)

// wsConn is one hijacked WebSocket connection. It holds no buffers while
// idle: its reader blocks in conn.Read with only a 14-byte header array, and
// its writer goroutine exists only while the session has queued packets.
type wsConn struct {
	conn net.Conn
	pre  []byte // bytes the HTTP server read past the handshake
	hdr  [ws.MaxHeaderSize]byte

	wmu  sync.Mutex // serialises the session writer and control replies
	bufs [][]byte
	nb   net.Buffers

	writer func() // the session's writeLoop for this connection; see startWriterLocked
}

func (c *wsConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.conn.Read(p)
}

var (
	errWSClosed   = errors.New("websocket closed by peer")
	errWSTooLarge = errors.New("websocket message over maxPayload")
)

// wsProtocolError marks frames that break RFC 6455; the connection is
// closed with 1002.
type wsProtocolError struct{ msg string }

func (e wsProtocolError) Error() string { return "websocket protocol error: " + e.msg }

// readMessage returns the next complete data message, answering control
// frames on the way. Messages over limit bytes are refused before their
// payload is read.
func (c *wsConn) readMessage(limit int64) (op byte, msg []byte, err error) {
	var msgOp byte
	for {
		h, err := ws.ReadHeaderBuffer(c, c.hdr[:])
		if err != nil {
			return 0, nil, fmt.Errorf("read frame header: %w", err)
		}
		if h.Rsv != 0 {
			return 0, nil, wsProtocolError{"reserved bits set (no extension negotiated)"}
		}
		if !h.Masked {
			return 0, nil, wsProtocolError{"client frame not masked"}
		}
		op := byte(h.OpCode)
		if op&0x8 != 0 {
			if !h.Fin || h.Length > 125 {
				return 0, nil, wsProtocolError{"bad control frame"}
			}
			var buf [125]byte
			p := buf[:h.Length]
			if _, err := io.ReadFull(c, p); err != nil {
				return 0, nil, fmt.Errorf("read control frame: %w", err)
			}
			ws.Cipher(p, h.Mask, 0)
			switch op {
			case opPing:
				c.writeControl(opPong, p)
			case opPong:
			case opClose:
				c.writeControl(opClose, p[:min(len(p), 2)])
				return 0, nil, errWSClosed
			default:
				return 0, nil, wsProtocolError{fmt.Sprintf("unknown opcode %#x", op)}
			}
			continue
		}
		switch op {
		case opText, opBinary:
			if msgOp != 0 {
				return 0, nil, wsProtocolError{"new message inside a fragmented one"}
			}
			msgOp = op
		case opContinuation:
			if msgOp == 0 {
				return 0, nil, wsProtocolError{"continuation without a message"}
			}
		default:
			return 0, nil, wsProtocolError{fmt.Sprintf("unknown opcode %#x", op)}
		}
		if h.Length > limit-int64(len(msg)) {
			return 0, nil, errWSTooLarge
		}
		start := len(msg)
		msg = append(msg, make([]byte, h.Length)...)
		if _, err := io.ReadFull(c, msg[start:]); err != nil {
			return 0, nil, fmt.Errorf("read frame payload: %w", err)
		}
		ws.Cipher(msg[start:], h.Mask, 0)
		if h.Fin {
			return msgOp, msg, nil
		}
	}
}

// writeControl writes one control frame; failures surface on the reader.
func (c *wsConn) writeControl(op byte, payload []byte) {
	var buf [2 + 125]byte
	frame := appendFrame(buf[:0], op, 0, payload)
	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write(frame)
	_ = c.conn.SetWriteDeadline(time.Time{})
	c.wmu.Unlock()
}

func (c *wsConn) writeFrame(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := c.conn.Write(frame)
	_ = c.conn.SetWriteDeadline(time.Time{})
	return err
}

// closeWithFrame starts the closing handshake: a close frame, then FIN.
// The reader sees the client's close reply (or EOF) and closes the socket;
// a timer closes it anyway if the client never answers. The short write
// deadline set first also unblocks a writer stuck on a peer that stopped
// reading, so this returns within about a second.
func (c *wsConn) closeWithFrame(code uint16) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	var body [2]byte
	binary.BigEndian.PutUint16(body[:], code)
	var buf [4]byte
	frame := appendFrame(buf[:0], opClose, 0, body[:])
	c.wmu.Lock()
	_, _ = c.conn.Write(frame)
	c.wmu.Unlock()
	if tc, ok := c.conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		time.AfterFunc(closeGrace, func() { _ = c.conn.Close() })
		return
	}
	_ = c.conn.Close()
}

// closeGrace bounds the closing handshake.
const closeGrace = 2 * time.Second

// drainAndClose ends a connection from its reader. Unread input is drained
// briefly first: closing a socket with unread data sends RST, which can
// destroy the close frame before the client reads it.
func (c *wsConn) drainAndClose() {
	_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.CopyN(io.Discard, c.conn, 1<<20)
	_ = c.conn.Close()
}

// accept completes the WebSocket handshake and takes the connection over
// from net/http. Any bytes the client sent after its request are kept.
func accept(w http.ResponseWriter, r *http.Request) (*wsConn, error) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	c := &wsConn{conn: conn}
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		c.pre = append([]byte(nil), b...)
	}
	return c, nil
}

// acceptWebSocket completes a handshake that starts on WebSocket.
func (s *Server) acceptWebSocket(sess *Session, w http.ResponseWriter, r *http.Request) {
	c, err := accept(w, r)
	if err != nil {
		s.log.Debug("engine.io", "err", err)
		return
	}
	if !s.register(sess) {
		c.closeWithFrame(wsCloseNormal)
		return
	}
	sess.mu.Lock()
	sess.ws = c
	sess.queue = append(sess.queue, s.openPacket(sess.id, false))
	sess.kickLocked()
	sess.mu.Unlock()
	sess.start()
	// A fresh goroutine, rather than the net/http one, so the HTTP
	// server's buffers and grown stack are released while the socket idles.
	go sess.readLoop(c)
}

// upgradeSession takes a WebSocket that asks to replace the polling
// transport of an existing session.
func (s *Server) upgradeSession(sess *Session, w http.ResponseWriter, r *http.Request) {
	sess.mu.Lock()
	refuse := sess.closed || sess.transport != "polling" || sess.upgrading != nil
	sess.mu.Unlock()
	c, err := accept(w, r)
	if err != nil {
		s.log.Debug("engine.io", "sid", sess.id, "err", err)
		return
	}
	if refuse {
		// As the reference server: the socket opens and is closed at once.
		c.closeWithFrame(wsCloseNormal)
		return
	}
	sess.mu.Lock()
	if sess.closed || sess.transport != "polling" || sess.upgrading != nil {
		sess.mu.Unlock()
		c.closeWithFrame(wsCloseNormal)
		return
	}
	sess.upgrading = c
	sess.upgradeTimer = time.AfterFunc(s.cfg.UpgradeTimeout, func() { sess.abandonUpgrade(c) })
	sess.mu.Unlock()
	go sess.upgradeLoop(c)
}

// abandonUpgrade drops an upgrade attempt; the session stays on polling.
func (s *Session) abandonUpgrade(c *wsConn) {
	s.mu.Lock()
	if s.upgrading == c {
		s.upgrading = nil
		s.probed = false
		if s.upgradeTimer != nil {
			s.upgradeTimer.Stop()
		}
	}
	s.mu.Unlock()
	_ = c.conn.Close()
}

// upgradeLoop runs the probe exchange the official client performs:
// "2probe" -> "3probe", the pending poll is released with a noop, then "5"
// switches the session to this WebSocket.
func (s *Session) upgradeLoop(c *wsConn) {
	for {
		op, msg, err := c.readMessage(s.srv.cfg.MaxPayload)
		if err != nil || op != opText {
			s.abandonUpgrade(c)
			return
		}
		p, err := decodePacket(msg)
		if err != nil {
			s.abandonUpgrade(c)
			return
		}
		switch {
		case p.typ == typePing && string(p.data) == "probe":
			if c.writeFrame(s.srv.probePkt.wsBytes()) != nil {
				s.abandonUpgrade(c)
				return
			}
			s.mu.Lock()
			if s.upgrading == c {
				s.probed = true
				s.wakePollLocked()
			}
			s.mu.Unlock()
		case p.typ == typeUpgrade:
			s.mu.Lock()
			if s.closed || s.upgrading != c {
				s.mu.Unlock()
				_ = c.conn.Close()
				return
			}
			s.upgrading = nil
			s.probed = false
			s.upgradeTimer.Stop()
			s.transport = "websocket"
			s.ws = c
			s.wakePollLocked()
			if len(s.queue) > 0 {
				s.kickLocked()
			}
			s.mu.Unlock()
			s.readLoop(c)
			return
		default:
			s.abandonUpgrade(c)
			return
		}
	}
}

// readLoop is the session's only goroutine while it idles on WebSocket.
func (s *Session) readLoop(c *wsConn) {
	defer c.drainAndClose()
	for {
		op, msg, err := c.readMessage(s.srv.cfg.MaxPayload)
		if err != nil {
			var perr wsProtocolError
			switch {
			case errors.Is(err, errWSTooLarge):
				c.closeWithFrame(wsCloseTooBig)
				s.close("transport error", closeReader)
			case errors.As(err, &perr):
				c.closeWithFrame(wsCloseProtocol)
				s.close("transport error", closeReader)
			default:
				// The client's close frame, EOF, or a connection the
				// server already closed.
				s.close("transport close", closeReader)
			}
			return
		}
		if op == opBinary {
			s.deliver(msg, true)
			continue
		}
		p, err := decodePacket(msg)
		if err != nil {
			s.close("parse error", closeFrame)
			return
		}
		if !s.onPacket(p) {
			return
		}
	}
}

// writeLoop drains the queue onto the WebSocket, each batch in one writev,
// and exits when the queue is empty: no goroutine waits on an idle socket.
func (s *Session) writeLoop(c *wsConn) {
	deadline := s.srv.cfg.PingInterval + s.srv.cfg.PingTimeout
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || (s.closed && !s.keepQueue) {
			s.writing = false
			closing := s.closed
			s.mu.Unlock()
			if closing {
				c.closeWithFrame(wsCloseNormal)
			}
			return
		}
		batch := s.queue
		s.queue = s.spare[:0]
		s.spare = nil
		s.mu.Unlock()

		c.wmu.Lock()
		bufs := c.bufs[:0]
		for _, p := range batch {
			bufs = append(bufs, p.wsBytes())
		}
		c.bufs = bufs
		c.nb = bufs
		_ = c.conn.SetWriteDeadline(time.Now().Add(deadline))
		_, err := c.nb.WriteTo(c.conn)
		clear(bufs)
		c.nb = nil
		c.wmu.Unlock()

		clear(batch)
		s.mu.Lock()
		if s.spare == nil {
			s.spare = batch[:0]
		}
		if err != nil {
			s.writing = false
			s.mu.Unlock()
			s.srv.log.Debug("engine.io websocket write", "sid", s.id, "err", err)
			s.close("transport error", closeHard)
			return
		}
		s.mu.Unlock()
	}
}
