package metrics

import (
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/locks"
)

// SocketObserver counts connects, disconnects by reason and recoveries;
// register it with socketio.Server.AddObserver.
func (m *Metrics) SocketObserver() socketio.Observer { return m.socketObs }

// LockObserver counts lock operations by result, their latency and the
// expiries announced; pass it as locks.Config.Observer.
func (m *Metrics) LockObserver() locks.Observer { return m.lockObs }

type socketObserver struct{ m *Metrics }

func (o socketObserver) SocketConnected(s *socketio.Socket) {
	o.m.connects.with(s.Namespace().Name()).Inc()
	switch {
	case s.Recovered():
		o.m.recoveries.WithLabelValues("recovered").Inc()
	case s.RecoveryAttempted():
		o.m.recoveries.WithLabelValues("failed").Inc()
	}
}

func (o socketObserver) SocketDisconnected(s *socketio.Socket, reason string, _ []string) {
	o.m.disconnects.with(s.Namespace().Name(), reason).Inc()
}

func (socketObserver) RoomsJoined(*socketio.Socket, []string) {}
func (socketObserver) RoomLeft(*socketio.Socket, string)      {}

type lockObserver struct{ m *Metrics }

func (o lockObserver) LockOperation(op, result string, took time.Duration) {
	o.m.lockOps.with(op, result).Inc()
	o.m.lockLatency.with(op).Observe(took.Seconds())
}

func (o lockObserver) LocksExpired(n int) { o.m.lockExpiries.Add(float64(n)) }
