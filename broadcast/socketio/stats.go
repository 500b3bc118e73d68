package socketio

import "github.com/walcast/walcast/broadcast/engineio"

// Stats is a snapshot of the server's delivery counters, for metrics: the
// Socket.IO layer's, beside the Engine.IO transport's (which counts
// packets and bytes written, sessions by transport, slow-consumer cuts and
// drops).
type Stats struct {
	// Sockets is the connected sockets of every namespace.
	Sockets int
	// Broadcasts counts the broadcasts delivered to this instance's
	// sockets (one per broadcast however many sockets it reached,
	// broadcasts from other instances included).
	Broadcasts uint64
	// BroadcastReceivers counts the sockets those broadcasts were handed
	// to.
	BroadcastReceivers uint64
	// ConnectTimeouts counts sessions closed for not joining a namespace
	// within ConnectTimeout (beside the Engine.IO refusals in
	// EngineIO.Refused).
	ConnectTimeouts uint64
	EngineIO        engineio.Stats
}

// broadcastCounter is implemented by MemoryAdapter, and so by the adapters
// that embed it.
type broadcastCounter interface {
	broadcastCounts() (broadcasts, receivers uint64)
}

// Stats sums the counters of every namespace. The counters are kept under
// each adapter's own lock, which a broadcast holds anyway, so counting costs
// a delivery nothing it did not already pay.
func (s *Server) Stats() Stats {
	st := Stats{EngineIO: s.eio.Stats(), ConnectTimeouts: s.connectTimeouts.Load()}
	for _, n := range s.Namespaces() {
		st.Sockets += n.Len()
		if c, ok := n.adapter.(broadcastCounter); ok {
			b, r := c.broadcastCounts()
			st.Broadcasts += b
			st.BroadcastReceivers += r
		}
	}
	return st
}

func (a *MemoryAdapter) broadcastCounts() (broadcasts, receivers uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.broadcasts, a.receivers
}
