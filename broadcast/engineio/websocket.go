package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// minClientHeader is the shortest frame header a client may send: two
// bytes and the four-byte mask.
const minClientHeader = 6

// WebSocket close codes the server sends.
const (
	wsCloseNormal   = 1000
	wsCloseProtocol = 1002
	wsClosePolicy   = 1008
	wsCloseTooBig   = 1009
)

// wsConn is one hijacked WebSocket connection. It holds no buffers while
// idle, and no goroutine: on Linux the server's poller watches it for the
// next frame (see readLoop), and its writes go out from the goroutine that
// sends (see Session.drainLocked), a writer goroutine existing only while
// the kernel's send buffer is full.
type wsConn struct {
	// What a write touches comes first (see Session).
	wmu sync.Mutex // serialises the session writer and control replies
	// fd is the descriptor, for writes without net.Conn's bookkeeping
	// (each of its layers is one more cache miss per delivery); -1 when
	// there is none. close sets fdClosed under fdMu before it closes the
	// connection, so such a write never meets a descriptor number closed
	// and handed to another connection.
	fdMu     sync.Mutex
	fdClosed bool
	fd       int
	// The packets taken off the queue and not yet all written: the ones
	// before heldIdx are, and heldOff bytes of the next. Owned by whoever
	// holds the session's writing flag.
	held    []*Packet
	heldIdx int
	heldOff int

	conn net.Conn
	sess *Session
	// rc reads without waiting; nil when the connection has no descriptor
	// of its own (or off Linux): then a writer goroutine writes and the
	// reader waits on a goroutine of its own.
	rc syscall.RawConn
	// poll is the server's poller, set before the connection is shared;
	// nil when rc is, or the server has none. polled says whether the
	// poller watches it between frames: owned by the reader.
	poll   *poller
	pollID uint64
	polled bool

	pre []byte // bytes read ahead: past the handshake, or by awaitFrame
	// msgTimeout bounds the message being read, from the first time its
	// reader has to wait for bytes (see Read); armed says the read
	// deadline is set. Both belong to the reader.
	msgTimeout time.Duration
	armed      bool
	hdr        [ws.MaxHeaderSize]byte
	// head takes the first bytes of a frame while the reader idles; every
	// client frame is masked, so its header is at least this long and
	// these bytes are all header.
	head [minClientHeader]byte
}

// close closes the connection, first taking it off the poller and from
// the writes that use its descriptor directly. Every close of a WebSocket
// connection goes through here.
func (c *wsConn) close() {
	if c.poll != nil {
		c.poll.forget(c)
	}
	c.fdMu.Lock()
	c.fdClosed = true
	c.fdMu.Unlock()
	_ = c.conn.Close()
}

// Read reads the message in progress. Bytes that have already arrived are
// taken without waiting; the first time the reader has to wait, the read
// deadline is set msgTimeout ahead, so a message that stops arriving ends
// the connection (see readMessage) instead of holding it.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	if c.msgTimeout > 0 && !c.armed {
		if c.rc != nil {
			n, err := readNow(c.rc, p)
			if !errors.Is(err, errWouldBlock) {
				if n == 0 && err == nil {
					err = io.EOF
				}
				return n, err
			}
		}
		c.armed = true
		_ = c.conn.SetReadDeadline(time.Now().Add(c.msgTimeout))
	}
	return c.conn.Read(p)
}

// awaitFrame waits until the next frame starts to arrive. A connection the
// poller watches does not wait: when nothing has arrived it reports
// errIdle, and its reader hands the connection back to the poller.
// Otherwise it is the only place an idle reader waits, and it waits in a
// shallow call chain: the runtime halves a parked goroutine's stack only
// while it uses under a quarter of it, so the depth here decides whether
// idle readers settle at 2 KB of stack or stay at 4 KB.
//
//go:noinline
func (c *wsConn) awaitFrame() error {
	if len(c.pre) > 0 {
		return nil
	}
	var n int
	var err error
	if c.polled {
		n, err = readNow(c.rc, c.head[:])
		if errors.Is(err, errWouldBlock) {
			return errIdle
		}
		if n == 0 && err == nil {
			return io.EOF
		}
	} else {
		n, err = c.conn.Read(c.head[:])
	}
	if n > 0 {
		// A read error after some bytes comes back on the next read.
		c.pre = c.head[:n]
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

var (
	errWSClosed   = errors.New("websocket closed by peer")
	errWSTooLarge = errors.New("websocket message over maxPayload")
	// errWSSlow: a message did not arrive whole within FrameTimeout.
	errWSSlow = errors.New("websocket message not complete within the frame timeout")
	// errIdle: no frame has started; the poller takes the connection.
	errIdle = errors.New("websocket idle")
	// errWouldBlock: the kernel cannot take or give bytes without waiting.
	errWouldBlock = errors.New("operation would block")
	errNoPoller   = errors.New("no poller on this platform")
)

// wsProtocolError marks frames that break RFC 6455; the connection is
// closed with 1002.
type wsProtocolError struct{ msg string }

func (e wsProtocolError) Error() string { return "websocket protocol error: " + e.msg }

// readMessage returns the next complete data message, answering control
// frames on the way. Messages over limit bytes are refused on their frame
// header, before anything is allocated for them; a message's buffer grows
// with the bytes that arrive, never by what a header announces. A message
// that once its reader had to wait is not whole within timeout (0: no
// bound) is errWSSlow.
func (c *wsConn) readMessage(limit int64, timeout time.Duration) (op byte, msg []byte, err error) {
	c.msgTimeout = timeout
	defer c.endMessage(&err)
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
		if msg, err = c.readPayload(msg, int(h.Length)); err != nil {
			return 0, nil, fmt.Errorf("read frame payload: %w", err)
		}
		ws.Cipher(msg[start:], h.Mask, 0)
		if h.Fin {
			return msgOp, msg, nil
		}
	}
}

// payloadChunk is what a message's buffer starts with (or all of the
// payload when it is shorter) before its first payload bytes arrive.
const payloadChunk = 512

// readPayload appends n bytes of payload to msg. The buffer grows only
// once the bytes already there fill it, and then at most doubles: what a
// client has sent, not what its header claims, decides what the server
// allocates (at most about twice the bytes received, plus payloadChunk).
func (c *wsConn) readPayload(msg []byte, n int) ([]byte, error) {
	want := len(msg) + n
	for len(msg) < want {
		if len(msg) == cap(msg) {
			msg = slices.Grow(msg, min(want-len(msg), max(len(msg), payloadChunk)))
		}
		k, err := c.Read(msg[len(msg):min(cap(msg), want)])
		msg = msg[:len(msg)+k]
		if err != nil && len(msg) < want {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return msg, err
		}
	}
	return msg, nil
}

// endMessage lifts the deadline the message's reads set, and names a
// deadline that passed.
func (c *wsConn) endMessage(err *error) {
	c.msgTimeout = 0
	if !c.armed {
		return
	}
	c.armed = false
	if *err != nil && errors.Is(*err, os.ErrDeadlineExceeded) {
		*err = fmt.Errorf("%w: %w", errWSSlow, *err)
		return
	}
	_ = c.conn.SetReadDeadline(time.Time{})
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
		time.AfterFunc(closeGrace, c.close)
		return
	}
	c.close()
}

// closeGrace bounds the closing handshake.
const closeGrace = 2 * time.Second

// drainAndClose ends a connection from its reader. Unread input is drained
// briefly first: closing a socket with unread data sends RST, which can
// destroy the close frame before the client reads it.
func (c *wsConn) drainAndClose() {
	_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.CopyN(io.Discard, c.conn, 1<<20)
	c.close()
}

// accept completes the WebSocket handshake and takes the connection over
// from net/http. Any bytes the client sent after its request are kept.
func accept(w http.ResponseWriter, r *http.Request, sendBuffer int) (*wsConn, error) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	if sb, ok := conn.(interface{ SetWriteBuffer(int) error }); ok && sendBuffer > 0 {
		// Best effort: a failure leaves the kernel default, which is
		// still correct, only less tightly bounded.
		_ = sb.SetWriteBuffer(sendBuffer)
	}
	c := &wsConn{conn: conn, fd: -1}
	if c.rc = rawConnOf(conn); c.rc != nil {
		_ = c.rc.Control(func(fd uintptr) { c.fd = int(fd) })
	}
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		c.pre = append([]byte(nil), b...)
	}
	return c, nil
}

// acceptWebSocket completes a handshake that starts on WebSocket.
func (s *Server) acceptWebSocket(sess *Session, w http.ResponseWriter, r *http.Request) {
	c, err := accept(w, r, s.cfg.SendBuffer)
	if err != nil {
		s.mu.Lock()
		s.dropPendingLocked(sess)
		s.mu.Unlock()
		s.log.Debug("engine.io", "err", err)
		return
	}
	if !s.register(sess) {
		c.closeWithFrame(wsCloseNormal)
		return
	}
	s.prepareReading(sess, c)
	sess.mu.Lock()
	if sess.closed {
		// Closed between register and here, while it had no transport
		// to close.
		sess.mu.Unlock()
		c.closeWithFrame(wsCloseNormal)
		return
	}
	sess.ws = c
	// What was sent before the transport was attached follows the open
	// packet, which a client must read first.
	sess.queue = slices.Insert(sess.queue, 0, s.openPacket(sess.id, false))
	sess.kickAndUnlock()
	sess.start()
	sess.startReading(c)
}

// prepareReading attaches the poller to a connection before it is shared.
func (s *Server) prepareReading(sess *Session, c *wsConn) {
	c.sess = sess
	if c.rc != nil {
		c.poll = s.poller()
	}
}

// startReading hands a new WebSocket to its reader: the poller, which
// starts one when input arrives, or a fresh goroutine, rather than the
// net/http one, so the HTTP server's buffers and grown stack are released
// while the socket idles.
func (s *Session) startReading(c *wsConn) {
	if len(c.pre) == 0 && c.poll != nil {
		// Set first: the reader the poller starts reads it.
		c.polled = true
		if c.poll.watch(c) {
			return
		}
		c.polled = false
	}
	go s.readLoop(c)
}

// upgradeSession takes a WebSocket that asks to replace the polling
// transport of an existing session.
func (s *Server) upgradeSession(sess *Session, w http.ResponseWriter, r *http.Request) {
	// The slot is reserved before the handshake answer goes out: a client
	// that has its 101 may open a second socket at once, and that one,
	// not the first, must be refused.
	sess.mu.Lock()
	refuse := sess.closed || !sess.onPolling || sess.upgrading != nil || sess.upgradeReserved
	if !refuse {
		sess.upgradeReserved = true
	}
	sess.mu.Unlock()
	c, err := accept(w, r, s.cfg.SendBuffer)
	if err != nil {
		if !refuse {
			sess.mu.Lock()
			sess.upgradeReserved = false
			sess.mu.Unlock()
		}
		s.log.Debug("engine.io", "sid", sess.id, "err", err)
		return
	}
	if refuse {
		// As the reference server: the socket opens and is closed at once.
		c.closeWithFrame(wsCloseNormal)
		return
	}
	s.prepareReading(sess, c)
	sess.mu.Lock()
	sess.upgradeReserved = false
	if sess.closed || !sess.onPolling || sess.upgrading != nil {
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
	c.close()
}

// upgradeLoop runs the probe exchange the official client performs:
// "2probe" -> "3probe", the pending poll is released with a noop, then "5"
// switches the session to this WebSocket.
func (s *Session) upgradeLoop(c *wsConn) {
	for {
		// The probe may take its time to start (the upgrade has its own
		// timeout); once a message starts it must arrive whole.
		if err := c.awaitFrame(); err != nil {
			s.abandonUpgrade(c)
			return
		}
		op, msg, err := c.readMessage(s.srv.cfg.MaxPayload, s.srv.cfg.FrameTimeout)
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
				// The client now reads this socket: its close is what
				// tells the client the session ended.
				c.closeWithFrame(wsCloseNormal)
				return
			}
			s.upgrading = nil
			s.probed = false
			s.upgradeTimer.Stop()
			s.onPolling = false
			s.ws = c
			s.wakePollLocked()
			if len(s.queue) > 0 {
				s.kickAndUnlock()
			} else {
				s.mu.Unlock()
			}
			// The poller or a fresh goroutine: this one's stack grew
			// with the probe.
			s.startReading(c)
			return
		default:
			s.abandonUpgrade(c)
			return
		}
	}
}

// readLoop reads the session's WebSocket. Watched by the poller, it runs
// only while frames arrive: once none has started it hands the connection
// back to the poller and ends, so an idle session holds no goroutine.
// Otherwise it is the session's only goroutine while it idles, and after
// handing a message to OnMessage, whose work (decoding, middlewares,
// handlers) may have grown the stack to 8 KB or more, it hands reading on
// to a fresh goroutine, which starts small, and exits: an idle session
// then keeps only a small stack, whatever its past traffic.
func (s *Session) readLoop(c *wsConn) {
	for {
		err := c.awaitFrame()
		if errors.Is(err, errIdle) {
			// The last step: once armed, the next reader may start.
			if c.poll.watch(c) {
				return
			}
			// The poller is gone (server closing): wait here instead.
			c.polled = false
			continue
		}
		var op byte
		var msg []byte
		if err == nil {
			op, msg, err = c.readMessage(s.srv.cfg.MaxPayload, s.srv.cfg.FrameTimeout)
		}
		if err != nil {
			s.endRead(c, err)
			c.drainAndClose()
			return
		}
		switch s.handleWS(op, msg) {
		case readStop:
			c.drainAndClose()
			return
		case readHandOff:
			if !c.polled {
				go s.readLoop(c)
				return
			}
		}
	}
}

// What readLoop does after a message.
const (
	readNext    = iota // keep reading on this goroutine
	readHandOff        // continue on a fresh goroutine (see readLoop)
	readStop           // the session is closed
)

// handleWS handles one WebSocket message.
func (s *Session) handleWS(op byte, msg []byte) int {
	if op == opBinary {
		s.deliver(msg, true)
		return readHandOff
	}
	p, err := decodePacket(msg)
	if err != nil {
		s.close("parse error", closeFrame)
		return readStop
	}
	if !s.onPacket(p) {
		return readStop
	}
	if p.typ == typeMessage {
		return readHandOff
	}
	return readNext
}

// endRead closes the session for a read error.
func (s *Session) endRead(c *wsConn, err error) {
	var perr wsProtocolError
	switch {
	case errors.Is(err, errWSTooLarge):
		s.srv.refused.tooLarge.Add(1)
		c.closeWithFrame(wsCloseTooBig)
		s.close("transport error", closeReader)
	case errors.Is(err, errWSSlow):
		s.srv.refused.slowMessage.Add(1)
		c.closeWithFrame(wsClosePolicy)
		s.close("transport error", closeReader)
	case errors.As(err, &perr):
		c.closeWithFrame(wsCloseProtocol)
		s.close("transport error", closeReader)
	default:
		// The client's close frame, EOF, or a connection the server
		// already closed.
		s.close("transport close", closeReader)
	}
}
