package socketio

import (
	"sync"
	"time"

	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Middleware sees a socket before it is connected (its Handshake: auth,
// headers, query, remote address) and refuses it by returning an error; the
// client then gets CONNECT_ERROR with the error's message (see ConnectError).
// Middlewares run in the order added, on the connection's read loop.
type Middleware func(s *Socket) error

// Namespace is a Socket.IO namespace ("/" or one registered with
// Server.Of). Its methods are safe for concurrent use.
type Namespace struct {
	name    string
	srv     *Server
	adapter Adapter

	mu           sync.RWMutex
	middlewares  []Middleware
	onConnection []func(*Socket)
	sockets      map[string]*Socket
	// store is the adapter's SessionStore when recovery is on, else nil.
	store SessionStore
}

func newNamespace(srv *Server, name string) *Namespace {
	n := &Namespace{name: name, srv: srv, sockets: make(map[string]*Socket)}
	if srv.cfg.NewAdapter != nil {
		n.adapter = srv.cfg.NewAdapter(n)
	} else {
		n.adapter = NewMemoryAdapter()
	}
	if r := srv.cfg.Recovery; r != nil {
		// Adapters embedding *MemoryAdapter get this by promotion.
		if e, ok := n.adapter.(interface{ EnableRecovery(time.Duration, int) }); ok {
			e.EnableRecovery(r.MaxDisconnection, r.MaxHistoryBytes)
		}
		n.store, _ = n.adapter.(SessionStore)
	}
	return n
}

// Name is the namespace's name, e.g. "/" or "/admin".
func (n *Namespace) Name() string { return n.name }

// Adapter is the namespace's adapter.
func (n *Namespace) Adapter() Adapter { return n.adapter }

// Use appends a middleware.
func (n *Namespace) Use(mw Middleware) {
	n.mu.Lock()
	n.middlewares = append(n.middlewares, mw)
	n.mu.Unlock()
}

// OnConnection registers fn to run for each new socket, after the client was
// told it is connected. Register the socket's event handlers there.
func (n *Namespace) OnConnection(fn func(*Socket)) {
	n.mu.Lock()
	n.onConnection = append(n.onConnection, fn)
	n.mu.Unlock()
}

// Socket returns the connected socket with id, or nil.
func (n *Namespace) Socket(id string) *Socket {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.sockets[id]
}

// TakeOver closes the local socket with id sid when a client resumed its
// session as generation gen on another instance (see TakeoverNotifier), as a
// local restore closes it: no DISCONNECT packet, the session neither saved
// nor dropped, the disconnect handlers see ReasonForcedServerClose. A socket
// of generation gen or newer (one that resumed the session here after that
// restore) is left alone. It reports whether a socket was closed.
func (n *Namespace) TakeOver(sid string, gen uint64) bool {
	s := n.Socket(sid)
	if s == nil || s.rec == nil || s.rec.gen >= gen {
		return false
	}
	n.srv.log.Debug("closing a socket whose session was resumed on another instance", "nsp", n.name, "socket", sid)
	s.takeOver()
	return true
}

// Len is the number of connected sockets.
func (n *Namespace) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.sockets)
}

// To starts a broadcast to the sockets in rooms.
func (n *Namespace) To(rooms ...string) BroadcastOperator {
	return BroadcastOperator{nsp: n}.To(rooms...)
}

// Except starts a broadcast to every socket not in rooms.
func (n *Namespace) Except(rooms ...string) BroadcastOperator {
	return BroadcastOperator{nsp: n}.Except(rooms...)
}

// Emit broadcasts event to every socket of the namespace.
func (n *Namespace) Emit(event string, args ...any) error {
	return BroadcastOperator{nsp: n}.Emit(event, args...)
}

// runMiddlewares returns the first refusal.
func (n *Namespace) runMiddlewares(s *Socket) error {
	n.mu.RLock()
	mws := n.middlewares
	n.mu.RUnlock()
	for _, mw := range mws {
		if err := mw(s); err != nil {
			return err
		}
	}
	return nil
}

// add connects s: own room, CONNECT answer, then connection handlers.
func (n *Namespace) add(s *Socket) {
	n.mu.Lock()
	n.sockets[s.id] = s
	fns := n.onConnection
	n.mu.Unlock()
	n.adapter.AddAll(s, []string{s.id})
	var restored *SessionState
	var missed []MissedPacket
	if s.rec != nil && s.rec.restored != nil {
		restored, missed = s.rec.restored, s.rec.missed
		s.rec.restored, s.rec.missed = nil, nil
	}
	if !s.connected.Load() {
		// the session closed while we registered; onClose may have run
		// before the registration, so undo it here
		n.remove(s)
		return
	}
	// The CONNECT reply and whatever the connection handlers send leave
	// together, after the handlers ran: a client that saw CONNECT is in
	// the rooms they joined, as with Node's socket.io, whose handlers run
	// before any other event can. Otherwise a broadcast made after the
	// client saw CONNECT could miss it.
	sess := s.client.sess
	sess.Cork()
	defer sess.Uncork()
	data := append([]byte(`{"sid":`), parser.AppendJSONString(nil, s.id)...)
	if s.rec != nil {
		data = append(append(data, `,"pid":`...), parser.AppendJSONString(nil, s.rec.pid)...)
	}
	data = append(data, '}')
	_ = s.send(&parser.Packet{Type: parser.Connect, Namespace: n.name, ID: parser.NoID, Data: data})
	for _, m := range missed {
		_ = s.send(m.Packet)
	}
	if c := s.catchup.Load(); c != nil {
		c.finish(s, missed)
		s.catchup.Store(nil)
	}
	if restored != nil {
		s.rec.jmu.Lock()
		s.rec.joined = make(map[string]bool)
		s.rec.jmu.Unlock()
	}
	for _, fn := range fns {
		fn(s)
	}
	if restored != nil {
		s.rec.jmu.Lock()
		joined := s.rec.joined
		s.rec.joined = nil
		s.rec.jmu.Unlock()
		keep := n.srv.cfg.Recovery.KeepRoom
		for _, r := range restored.Rooms {
			if r != s.id && keep != nil && !keep(r) && !joined[r] {
				n.adapter.Del(s, r)
			}
		}
	}
	if s.rec != nil {
		s.rec.connectSaved.Store(true)
	}
	s.persistAtConnect() // the CONNECT reply is still held back (Cork)
	n.srv.announceConnected(s)
}

func (n *Namespace) remove(s *Socket) {
	n.adapter.DelAll(s)
	n.mu.Lock()
	// a recovered socket may already have taken over the id
	if n.sockets[s.id] == s {
		delete(n.sockets, s.id)
	}
	n.mu.Unlock()
}
