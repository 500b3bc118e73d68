package socketio

import (
	"slices"
	"sync/atomic"
)

// Observer is told about sockets coming and going and about their room
// changes, for metrics and the Admin UI. Calls run on the goroutine making
// the change (a connection's read loop, a disconnect), so they must be quick
// and must not block; they may call the socket's methods. A socket is
// announced once, connected before disconnected: a socket that closes while
// it connects is announced as disconnected only after SocketConnected
// returned, and one that closes before it was announced is not announced at
// all.
type Observer interface {
	// SocketConnected: s is connected, its connection handlers have run
	// and s.Rooms() lists the rooms they joined.
	SocketConnected(s *Socket)
	// SocketDisconnected: s is gone for reason (see the Reason constants;
	// applications may close sessions with reasons of their own). rooms are
	// the rooms it was in, its own id room included.
	SocketDisconnected(s *Socket, reason string, rooms []string)
	// RoomsJoined: s joined rooms through Socket.Join after it was
	// announced. Rooms it was already in may be among them.
	RoomsJoined(s *Socket, rooms []string)
	// RoomLeft: s left room through Socket.Leave.
	RoomLeft(s *Socket, room string)
}

// observers is a Server's list of observers, read without locking on every
// connect, disconnect, join and leave.
type observers struct {
	list atomic.Pointer[[]Observer]
}

// AddObserver registers o for every namespace of s, from now on. Sockets
// connected before are not announced to it, but their disconnects are.
func (s *Server) AddObserver(o Observer) {
	for {
		old := s.obs.list.Load()
		var next []Observer
		if old != nil {
			next = slices.Clone(*old)
		}
		next = append(next, o)
		if s.obs.list.CompareAndSwap(old, &next) {
			return
		}
	}
}

func (o *observers) get() []Observer {
	if l := o.list.Load(); l != nil {
		return *l
	}
	return nil
}

// socketObs is where a socket is in its announcement: obsNew until it is
// announced, obsAnnouncing while SocketConnected calls run, obsAnnounced
// after, obsGone once its disconnect was taken care of.
type socketObs struct {
	state atomic.Uint32
	// gone carries the disconnect to the announcing goroutine when the
	// socket closed while it was being announced.
	gone atomic.Pointer[goneNotice]
}

const (
	obsNew uint32 = iota
	obsAnnouncing
	obsAnnounced
	obsGone
)

type goneNotice struct {
	reason string
	rooms  []string
}

// announceConnected runs when s is connected (the end of Namespace.add).
func (srv *Server) announceConnected(s *Socket) {
	if !s.obs.state.CompareAndSwap(obsNew, obsAnnouncing) {
		return // closed before it was announced
	}
	for _, o := range srv.obs.get() {
		o.SocketConnected(s)
	}
	if s.obs.state.CompareAndSwap(obsAnnouncing, obsAnnounced) {
		return
	}
	// It closed meanwhile and left the disconnect notice to this goroutine,
	// so that observers see the two in order.
	if g := s.obs.gone.Load(); g != nil {
		for _, o := range srv.obs.get() {
			o.SocketDisconnected(s, g.reason, g.rooms)
		}
	}
}

// announceDisconnected runs in onClose, before s leaves its rooms.
func (srv *Server) announceDisconnected(s *Socket, reason string) {
	obs := srv.obs.get()
	var rooms []string
	if len(obs) > 0 {
		rooms = s.Rooms()
	}
	s.obs.gone.Store(&goneNotice{reason: reason, rooms: rooms})
	if s.obs.state.Swap(obsGone) != obsAnnounced {
		return // never announced, or announceConnected sends the notice
	}
	for _, o := range obs {
		o.SocketDisconnected(s, reason, rooms)
	}
}

func (srv *Server) announceJoined(s *Socket, rooms []string) {
	if s.obs.state.Load() != obsAnnounced {
		return
	}
	for _, o := range srv.obs.get() {
		o.RoomsJoined(s, rooms)
	}
}

func (srv *Server) announceLeft(s *Socket, room string) {
	if s.obs.state.Load() != obsAnnounced {
		return
	}
	for _, o := range srv.obs.get() {
		o.RoomLeft(s, room)
	}
}

// Namespaces lists the server's namespaces.
func (s *Server) Namespaces() []*Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		out = append(out, n)
	}
	return out
}

// SocketList lists the namespace's connected sockets.
func (n *Namespace) SocketList() []*Socket {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]*Socket, 0, len(n.sockets))
	for _, s := range n.sockets {
		out = append(out, s)
	}
	return out
}

// ConnID is the id of the Engine.IO session the socket is multiplexed over,
// shared by the client's sockets of other namespaces. It is the session's
// credential for its polling requests: show a digest of it, never the id.
func (s *Socket) ConnID() string { return s.client.sess.ID() }

// RecoveryAttempted reports whether the client asked to resume an earlier
// session (its CONNECT carried a pid and an offset) while recovery is on;
// Recovered tells whether it did.
func (s *Socket) RecoveryAttempted() bool {
	if s.rec == nil {
		return false
	}
	pid, offset := recoveryAuth(s.handshake.Auth)
	return pid != "" && offset != ""
}

// RoomCount is the number of rooms with members other than sockets' own id
// rooms.
func (a *MemoryAdapter) RoomCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.rooms)
}
