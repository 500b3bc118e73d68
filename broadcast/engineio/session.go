package engineio

import (
	"sync"
	"time"
)

// closeMode says how a closing session treats its transport.
type closeMode int

const (
	// closeHard drops the queue and the connection at once: the peer is
	// gone or cannot keep up, so nothing more can usefully be written.
	closeHard closeMode = iota
	// closeFrame drops the queue and ends a WebSocket with a close frame,
	// written by the calling goroutine (a reader or timer, never a sender).
	closeFrame
	// closeGraceful flushes what is queued, then ends the transport.
	closeGraceful
	// closeByClient answers a client's close packet: a pending poll is
	// released with a noop, as the reference server does.
	closeByClient
	// closeReader is used by a WebSocket reader that ends the connection
	// itself on its way out.
	closeReader
	// closeOverflow is closeHard from inside Send (a full queue) or from a
	// write shard (a failed write): the sender may hold locks that OnClose
	// needs (a broadcasting adapter holds its room lock, and the socket's
	// disconnect leaves its rooms), and a shard has other sessions to
	// write, so OnClose runs on a goroutine of its own.
	closeOverflow
)

// closeLinger bounds how long a closed polling session waits for the poll
// that collects its last packet.
const closeLinger = 2 * time.Second

// Session is one Engine.IO client connection, across transports.
type Session struct {
	// What Send and the writers touch comes first, so that a delivery to
	// a session that has been out of the cache since the last one misses
	// as few lines as it can.
	mu sync.Mutex
	// writing: a writer has the WebSocket (its shard, or a goroutine
	// waiting for a slow client); sends only queue meanwhile.
	writing   bool
	closed    bool
	keepQueue bool // a graceful close still delivers the queue
	folded    bool // the server took the counters over
	// corked holds queued packets back while positive (see Cork).
	corked int32
	queue  []*Packet
	spare  []*Packet
	ws     *wsConn
	srv    *Server
	shard  *writeShard
	// Counters for Server.Stats, under mu (see countLocked): packets
	// written to the transport, bytes written, packets that never will be.
	delivered, written, dropped uint64

	id        string
	handshake *HandshakeInfo
	handlers  Handlers

	// deliverMu keeps OnMessage calls sequential while a polling POST and
	// the upgrading WebSocket could both deliver.
	deliverMu sync.Mutex

	// onPolling: the transport is long-polling (else WebSocket).
	onPolling  bool
	delivering bool
	onCloseDue bool
	reason     string
	finalPkt   *Packet // what a pending poll answers after close
	// lingering keeps a closed polling session reachable until its next
	// poll collects finalPkt, as the reference server's closeTimeout does.
	lingering bool

	polling bool
	posting bool
	// pollWake exists only for sessions that start on polling: a
	// WebSocket session never polls, and a send on a nil channel in
	// wakePollLocked's select simply does nothing.
	pollWake chan struct{}

	upgrading *wsConn
	// upgradeReserved holds the upgrade slot while a WebSocket handshake
	// is being answered, before upgrading is set.
	upgradeReserved bool
	probed          bool
	upgradeTimer    *time.Timer

	// The heartbeat (see heartbeats): hbGen names the live schedule, hbSeq
	// its entry in the ping (hbPong false) or pong queue.
	hbStarted    bool
	hbPong       bool
	hbGen        uint32
	hbSeq        uint64
	awaitingPong bool
	// nextPing is when the current heartbeat cycle's ping is due; the pong
	// is overdue after nextPing+PingTimeout. Deadlines are absolute so a
	// late timer never stretches them.
	nextPing time.Time
}

func newSession(srv *Server, id string, hs *HandshakeInfo, transport string) *Session {
	s := &Session{
		srv:       srv,
		id:        id,
		handshake: hs,
		onPolling: transport == "polling",
		shard:     srv.shardFor(),
	}
	if transport == "polling" {
		s.pollWake = make(chan struct{}, 1)
	}
	return s
}

// ID returns the Engine.IO session id.
func (s *Session) ID() string { return s.id }

// Handshake returns what the session's first request carried.
func (s *Session) Handshake() *HandshakeInfo { return s.handshake }

// Transport returns the current transport name.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onPolling {
		return "polling"
	}
	return "websocket"
}

// SetHandlers installs the callbacks for the session's traffic. Call it from
// onSession; later calls race with delivery.
func (s *Session) SetHandlers(h Handlers) { s.handlers = h }

// Send enqueues packets, all or none; it never blocks. It reports false when
// the session is closed or its queue would overflow, in which case the
// transport is closed with reason "slow consumer" so the client reconnects.
func (s *Session) Send(pkts ...*Packet) bool {
	s.mu.Lock()
	if s.closed {
		s.countLocked(0, 0, len(pkts))
		s.mu.Unlock()
		return false
	}
	if len(s.queue)+len(pkts) > s.srv.cfg.SendQueue {
		s.countLocked(0, 0, len(pkts))
		s.mu.Unlock()
		s.srv.slowCuts.Add(1)
		s.srv.queueDrops.Add(uint64(len(pkts)))
		s.srv.log.Warn("engine.io send queue overflow, closing transport",
			"sid", s.id, "queued", s.srv.cfg.SendQueue, "reason", "slow consumer")
		s.close("slow consumer", closeOverflow)
		return false
	}
	s.queue = append(s.queue, pkts...)
	s.kickAndUnlock()
	return true
}

// Close closes the transport after flushing what is queued; OnClose(reason)
// follows.
func (s *Session) Close(reason string) { s.close(reason, closeGraceful) }

// Cork holds back the packets sent from now on until the matching Uncork,
// so work done between the two (a Socket.IO connect: its CONNECT reply,
// then the connection handlers joining rooms) reaches the client as one
// step: a client that has read the first packet can rely on the rest
// having happened. Calls nest.
func (s *Session) Cork() {
	s.mu.Lock()
	s.corked++
	s.mu.Unlock()
}

// Uncork releases what Cork held back once every Cork has its Uncork.
func (s *Session) Uncork() {
	s.mu.Lock()
	if s.corked > 0 {
		s.corked--
		if s.corked == 0 && len(s.queue) > 0 && !s.closed {
			s.kickAndUnlock()
			return
		}
	}
	s.mu.Unlock()
}

// kickAndUnlock gets queued packets moving and releases s.mu: on WebSocket
// it marks the session due on its write shard unless a writer already has
// it, on polling it wakes the pending poll.
func (s *Session) kickAndUnlock() {
	if s.corked > 0 {
		s.mu.Unlock()
		return
	}
	if s.ws == nil {
		s.wakePollLocked()
		s.mu.Unlock()
		return
	}
	if s.writing {
		s.mu.Unlock()
		return
	}
	s.writing = true
	if !s.shard.add(s) {
		s.startWriterLocked(s.ws)
	}
	s.mu.Unlock()
}

func (s *Session) wakePollLocked() {
	select {
	case s.pollWake <- struct{}{}:
	default:
	}
}

// start arms the heartbeat: the session's ping is due PingInterval from
// now.
func (s *Session) start() {
	s.mu.Lock()
	if !s.closed {
		s.hbStarted = true
		s.nextPing = time.Now().Add(s.srv.cfg.PingInterval)
		s.scheduleLocked(&s.srv.hb.ping, false, s.nextPing)
	}
	s.mu.Unlock()
}

// scheduleLocked makes the session's next heartbeat step an entry due at
// due in q, replacing the one before.
func (s *Session) scheduleLocked(q *hbQueue, pong bool, due time.Time) {
	s.hbGen++
	s.hbPong = pong
	s.hbSeq = q.push(s, s.hbGen, due)
}

// cancelHeartbeatLocked drops the session's queued heartbeat step.
func (s *Session) cancelHeartbeatLocked() {
	if !s.hbStarted {
		return
	}
	s.hbGen++
	q := &s.srv.hb.ping
	if s.hbPong {
		q = &s.srv.hb.pong
	}
	q.cancel(s, s.hbSeq)
}

// onPingDue sends the ping of heartbeat schedule gen, and waits for the
// pong until PingTimeout after the ping was due.
func (s *Session) onPingDue(gen uint32) {
	s.mu.Lock()
	if s.closed || gen != s.hbGen {
		s.mu.Unlock()
		return
	}
	if s.awaitingPong || s.pongOverdueLocked(time.Now()) {
		s.mu.Unlock()
		s.close("ping timeout", closeFrame)
		return
	}
	s.awaitingPong = true
	s.scheduleLocked(&s.srv.hb.pong, true, s.nextPing.Add(s.srv.cfg.PingTimeout))
	// The ping may exceed the queue bound by one; a session that full is
	// cut by the next Send anyway.
	s.queue = append(s.queue, s.srv.pingPkt)
	s.kickAndUnlock()
}

// onPongDue closes the session if the pong of schedule gen has not come.
func (s *Session) onPongDue(gen uint32) {
	s.mu.Lock()
	due := !s.closed && gen == s.hbGen && s.awaitingPong
	s.mu.Unlock()
	if due {
		s.close("ping timeout", closeFrame)
	}
}

// pongOverdueLocked reports whether the heartbeat deadline has passed even
// if its timer has not fired yet (timers run late on a busy machine).
func (s *Session) pongOverdueLocked(now time.Time) bool {
	return s.hbStarted && now.After(s.nextPing.Add(s.srv.cfg.PingTimeout))
}

// checkHeartbeat closes the session if its pong is overdue; requests call
// it so a late timer cannot keep a dead session answering.
func (s *Session) checkHeartbeat() bool {
	s.mu.Lock()
	overdue := !s.closed && s.pongOverdueLocked(time.Now())
	s.mu.Unlock()
	if overdue {
		s.close("ping timeout", closeFrame)
	}
	return !overdue
}

func (s *Session) onPong() {
	s.mu.Lock()
	if s.awaitingPong && !s.closed {
		s.awaitingPong = false
		s.nextPing = time.Now().Add(s.srv.cfg.PingInterval)
		s.cancelHeartbeatLocked()
		s.scheduleLocked(&s.srv.hb.ping, false, s.nextPing)
	}
	s.mu.Unlock()
}

// onPacket handles one decoded packet from the client on the active
// transport. It reports false when the session was closed by it.
func (s *Session) onPacket(p inPacket) bool {
	switch p.typ {
	case typeMessage:
		s.deliver(p.data, p.binary)
	case typePong:
		s.onPong()
	case typeClose:
		s.close("transport close", closeByClient)
		return false
	case typePing:
		// In v4 only the server pings; a client ping outside an upgrade
		// probe is a protocol error.
		s.close("transport error", closeFrame)
		return false
	}
	return true
}

func (s *Session) deliver(data []byte, binary bool) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.delivering = true
	s.mu.Unlock()
	if h := s.handlers.OnMessage; h != nil {
		h(data, binary)
	}
	s.mu.Lock()
	s.delivering = false
	due := s.onCloseDue
	s.onCloseDue = false
	s.mu.Unlock()
	if due {
		s.fireOnClose()
	}
}

func (s *Session) fireOnClose() {
	if h := s.handlers.OnClose; h != nil {
		h(s.reason)
	}
}

// close ends the session once; later calls do nothing. OnClose runs after
// any OnMessage in progress returns.
func (s *Session) close(reason string, mode closeMode) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.reason = reason
	s.cancelHeartbeatLocked()
	if s.upgradeTimer != nil {
		s.upgradeTimer.Stop()
	}
	ws, up := s.ws, s.upgrading
	// A client answered "3probe" pauses polling and switches to the probe
	// WebSocket with "5": closing that socket before its "5" arrives
	// leaves the client on a paused polling transport, deaf until its
	// ping timeout. Its "5" is awaited instead (upgradeLoop then closes
	// the socket, which the client now reads), for closeGrace at most.
	upProbed := up != nil && s.probed
	s.upgrading = nil
	switch mode {
	case closeGraceful:
		s.keepQueue = true
		s.finalPkt = s.srv.closePkt
	case closeByClient:
		s.finalPkt = s.srv.noopPkt
	default:
		s.finalPkt = s.srv.closePkt
	}
	if !s.keepQueue {
		s.countLocked(0, 0, len(s.queue))
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	graceful := false
	if ws != nil && mode == closeGraceful {
		// The writer flushes the queue, then the close frame.
		graceful = true
		if !s.writing {
			s.writing = true
			s.startWriterLocked(ws)
		}
	}
	s.wakePollLocked()
	linger := ws == nil && s.onPolling && !s.polling &&
		(mode == closeByClient || mode == closeGraceful)
	s.lingering = linger
	fire := !s.delivering
	if !fire {
		s.onCloseDue = true
	}
	s.mu.Unlock()

	if linger {
		// Reachable a while longer, but no longer pending: its slot is
		// free now.
		s.srv.mu.Lock()
		s.srv.dropPendingLocked(s)
		s.srv.mu.Unlock()
		time.AfterFunc(min(closeLinger, s.srv.cfg.PingTimeout), func() { s.srv.unregister(s) })
	} else {
		s.srv.unregister(s)
	}
	if upProbed {
		time.AfterFunc(closeGrace, up.close)
	} else if up != nil {
		up.close()
	}
	if ws != nil && !graceful && mode != closeReader {
		if mode == closeHard || mode == closeOverflow {
			ws.close()
		} else {
			ws.closeWithFrame(wsCloseNormal)
		}
	}
	if fire {
		if mode == closeOverflow {
			go s.fireOnClose()
		} else {
			s.fireOnClose()
		}
	}
}
