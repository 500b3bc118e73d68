package engineio

import "sync/atomic"

// Stats is a snapshot of what the server's delivery path did, for metrics.
// Counters count since the server started; the session counts are now.
type Stats struct {
	// SessionsWebSocket and SessionsPolling are the open sessions by
	// their current transport.
	SessionsWebSocket, SessionsPolling int
	// IdleWatched is how many WebSocket connections wait for input in the
	// poller, holding no goroutine (Linux).
	IdleWatched int
	// Pending is the open sessions not admitted yet (see Session.Admit).
	Pending int
	// Delivered counts packets handed to a transport: written to a
	// WebSocket, or in a poll's answer.
	Delivered uint64
	// BytesWritten counts the bytes of those packets as sent: WebSocket
	// frames, polling payloads.
	BytesWritten uint64
	// Dropped counts packets given to Send that never reached a transport:
	// refused by a closed session or a full queue, or discarded with the
	// queue when a session closed.
	Dropped uint64
	// SendQueueDrops counts the part of Dropped refused by a full send
	// queue (the packets whose Send cut a slow consumer).
	SendQueueDrops uint64
	// SlowConsumerCuts counts sessions closed because their send queue
	// overflowed ("slow consumer").
	SlowConsumerCuts uint64
	// Refused counts what the server refused or cut to protect itself
	// from clients, by kind.
	Refused Refusals
}

// Refusals count, by kind, handshakes refused and connections cut for
// what a client sent or failed to send.
type Refusals struct {
	// PayloadTooLarge: messages over MaxPayload (WebSocket frames refused
	// on their header, polling POST bodies).
	PayloadTooLarge uint64
	// SlowMessage: WebSocket messages not whole within FrameTimeout.
	SlowMessage uint64
	// SlowBody: polling POST bodies not whole within BodyTimeout.
	SlowBody uint64
	// PendingOverall: handshakes refused because MaxPending sessions
	// were waiting to be admitted.
	PendingOverall uint64
	// PendingPerAddress: handshakes refused because their client
	// address had MaxPendingPerAddress sessions waiting.
	PendingPerAddress uint64
}

// refusalCounts are the server's Refusals, counted as they happen.
type refusalCounts struct {
	tooLarge, slowMessage, slowBody, pendingOverall, pendingAddress atomic.Uint64
}

func (r *refusalCounts) snapshot() Refusals {
	return Refusals{
		PayloadTooLarge:   r.tooLarge.Load(),
		SlowMessage:       r.slowMessage.Load(),
		SlowBody:          r.slowBody.Load(),
		PendingOverall:    r.pendingOverall.Load(),
		PendingPerAddress: r.pendingAddress.Load(),
	}
}

// Stats returns the counters of every session, open or closed. Sessions
// count under their own lock as they send, so a delivery costs no shared
// write; the sum is made here, when asked.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := s.closedStats
	for _, sess := range s.sessions {
		sess.mu.Lock()
		if !sess.onPolling {
			st.SessionsWebSocket++
		} else {
			st.SessionsPolling++
		}
		st.Delivered += sess.delivered
		st.BytesWritten += sess.written
		st.Dropped += sess.dropped
		sess.mu.Unlock()
	}
	st.Pending = len(s.pending.sessions)
	p := s.poll
	s.mu.Unlock()
	st.Delivered += s.late.delivered.Load()
	st.BytesWritten += s.late.written.Load()
	st.Dropped += s.late.dropped.Load()
	st.SlowConsumerCuts = s.slowCuts.Load()
	st.SendQueueDrops = s.queueDrops.Load()
	st.Refused = s.refused.snapshot()
	if p != nil {
		st.IdleWatched = p.watching()
	}
	return st
}

// foldStatsLocked keeps the counters of a session that leaves the
// server's map; the caller holds s.mu.
func (s *Server) foldStatsLocked(sess *Session) {
	sess.mu.Lock()
	s.closedStats.Delivered += sess.delivered
	s.closedStats.BytesWritten += sess.written
	s.closedStats.Dropped += sess.dropped
	sess.folded = true
	sess.mu.Unlock()
}

// lateCounts take what sessions count after they left the server's map (a
// graceful close still flushing, a late Send).
type lateCounts struct {
	delivered, written, dropped atomic.Uint64
}

// countLocked adds to the session's counters; the caller holds s.mu.
func (s *Session) countLocked(delivered, written, dropped int) {
	if s.folded {
		s.srv.late.delivered.Add(uint64(delivered))
		s.srv.late.written.Add(uint64(written))
		s.srv.late.dropped.Add(uint64(dropped))
		return
	}
	s.delivered += uint64(delivered)
	s.written += uint64(written)
	s.dropped += uint64(dropped)
}
