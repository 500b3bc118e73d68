package engineio

import (
	"errors"
	"net"
)

// drainLocked writes the session's queue onto c until it is empty, first
// finishing what an earlier writer left half written. The caller holds s.mu
// and the writing flag; drainLocked releases s.mu.
//
// With a rawWriter (a write shard's) it never blocks: a delivery is one
// system call, with no goroutine of its own started or woken. When the
// kernel's send buffer is full it hands what is left to a writer goroutine
// (w nil), which waits for the client to read; sends that come meanwhile
// queue behind it, so the order of packets is the order of Send calls.
func (s *Session) drainLocked(c *wsConn, w *rawWriter) {
	for {
		if w != nil && s.closed {
			// What is left of a closing session may wait (a close frame
			// to a client that does not read): not on a shard, whose
			// other sessions would wait too.
			s.startWriterLocked(c)
			s.mu.Unlock()
			return
		}
		if s.closed && !s.keepQueue {
			// Closed hard (the connection is closed or closing): the
			// rest will never be read.
			s.countLocked(0, 0, len(c.held)-c.heldIdx)
			s.releaseHeldLocked(c)
			s.writing = false
			s.mu.Unlock()
			c.closeWithFrame(wsCloseNormal)
			return
		}
		if c.heldIdx == len(c.held) {
			s.releaseHeldLocked(c)
			// A cork stops the writer too (it may have been running
			// when the cork came); closing overrides it.
			if len(s.queue) == 0 || (s.corked > 0 && !s.closed) {
				s.writing = false
				closing := s.closed
				s.mu.Unlock()
				if closing {
					c.closeWithFrame(wsCloseNormal)
				}
				return
			}
			c.held = s.queue
			s.queue = s.spare[:0]
			s.spare = nil
		}
		s.mu.Unlock()

		var pkts, n int
		var err error
		if w == nil {
			c.wmu.Lock()
			pkts, n, err = c.writeHeld()
			c.wmu.Unlock()
		} else if c.wmu.TryLock() {
			pkts, n, err = c.writeHeldNow(w)
			c.wmu.Unlock()
		} else {
			// A control reply or close frame is being written, which may
			// wait for the client: the writer goroutine waits its turn.
			err = errWouldBlock
		}

		s.mu.Lock()
		s.countLocked(pkts, n, 0)
		if errors.Is(err, errWouldBlock) {
			// The client reads slower than this session sends: a
			// goroutine waits for it, keeping the writing flag.
			s.startWriterLocked(c)
			s.mu.Unlock()
			return
		}
		if err != nil {
			s.countLocked(0, 0, len(c.held)-c.heldIdx)
			s.releaseHeldLocked(c)
			s.writing = false
			s.mu.Unlock()
			s.srv.log.Debug("engine.io websocket write", "sid", s.id, "err", err)
			if w == nil {
				s.close("transport error", closeHard)
			} else {
				// OnClose on a goroutine of its own: the shard has other
				// sessions to write.
				s.close("transport error", closeOverflow)
			}
			return
		}
	}
}

// releaseHeldLocked gives the held slice back as the queue's spare, its
// packets cleared so that shared packets are not kept alive by an idle
// session.
func (s *Session) releaseHeldLocked(c *wsConn) {
	if c.held == nil {
		return
	}
	clear(c.held)
	if s.spare == nil {
		s.spare = c.held[:0]
	}
	c.held, c.heldIdx, c.heldOff = nil, 0, 0
}

// startWriterLocked starts c's writer goroutine, for a client that reads
// slower than the session sends.
func (s *Session) startWriterLocked(c *wsConn) {
	go s.writeLoop(c)
}

// writeLoop is the writer goroutine: it drains the queue, waiting for the
// client as long as it takes, and exits when the queue is empty.
//
// It sets no write deadline (one per batch cost a timer update per
// delivery): a writer blocked on a peer that stopped reading is released
// when the session closes, by a queue overflow (closeHard closes the
// socket) or by the missing pong (closeWithFrame sets a short deadline
// first), and the heartbeat keeps queueing pings, so one of the two comes.
func (s *Session) writeLoop(c *wsConn) {
	s.mu.Lock()
	s.drainLocked(c, nil)
}

// heldBytes appends the not yet written bytes of the held packets, from
// packet heldIdx on, to dst.
func (c *wsConn) heldBytes(dst [][]byte) [][]byte {
	for i := c.heldIdx; i < len(c.held) && len(dst) < maxWriteVectors; i++ {
		b := c.held[i].wsBytes()
		if i == c.heldIdx {
			b = b[c.heldOff:]
		}
		dst = append(dst, b)
	}
	return dst
}

// maxWriteVectors bounds the packets one write system call carries, under
// the kernel's IOV_MAX (1024).
const maxWriteVectors = 512

// advance moves past n written bytes and returns how many packets they
// completed.
func (c *wsConn) advance(n int) int {
	done := 0
	for n > 0 && c.heldIdx < len(c.held) {
		rest := len(c.held[c.heldIdx].wsBytes()) - c.heldOff
		if n < rest {
			c.heldOff += n
			return done
		}
		n -= rest
		c.heldIdx++
		c.heldOff = 0
		done++
	}
	return done
}

// writeHeldNow writes the held packets without waiting: errWouldBlock when
// the kernel's send buffer filled before they were all written (or the
// connection cannot write without waiting at all).
func (c *wsConn) writeHeldNow(w *rawWriter) (pkts, written int, err error) {
	if c.fd < 0 {
		return 0, 0, errWouldBlock
	}
	for c.heldIdx < len(c.held) {
		bufs := c.heldBytes(w.bufs[:0])
		w.bufs = bufs
		want := 0
		for _, b := range bufs {
			want += len(b)
		}
		n, err := w.write(c, bufs)
		clear(bufs)
		written += n
		pkts += c.advance(n)
		if err != nil {
			return pkts, written, err
		}
		if n < want {
			return pkts, written, errWouldBlock
		}
	}
	return pkts, written, nil
}

// writeHeld writes the held packets, waiting for the client to read as
// long as it takes.
func (c *wsConn) writeHeld() (pkts, written int, err error) {
	var bufs [][]byte
	for c.heldIdx < len(c.held) {
		bufs = c.heldBytes(bufs[:0])
		nb := net.Buffers(bufs)
		var n int64
		n, err = nb.WriteTo(c.conn)
		clear(bufs)
		written += int(n)
		pkts += c.advance(int(n))
		if err != nil {
			return pkts, written, err
		}
	}
	return pkts, written, nil
}
