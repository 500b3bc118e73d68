package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Handshake is what a socket's connection carried: the CONNECT packet's auth
// object ({} when none) and the first HTTP request of the Engine.IO session.
type Handshake struct {
	Auth       json.RawMessage
	Header     http.Header
	Query      url.Values
	RemoteAddr string
	Time       time.Time
}

// AckFunc answers an event's acknowledgement with args (encoded as for
// Socket.Emit). When the client asked for no acknowledgement, or the answer
// was already sent, it does nothing.
type AckFunc func(args ...any) error

// EventHandler handles one event. It runs on the connection's read loop:
// the next packet of that connection waits until it returns, so slow work
// belongs in a goroutine (ack may be called from there).
type EventHandler func(s *Socket, args Args, ack AckFunc)

// AckCallback receives the client's answer to an emit, or ErrAckTimeout /
// ErrDisconnected.
type AckCallback func(args Args, err error)

type pendingAck struct {
	cb    AckCallback
	timer *time.Timer
}

// Socket is one client connected to one namespace. Its methods are safe for
// concurrent use.
type Socket struct {
	// What a broadcast touches comes first: the adapter's stamp, the
	// catch-up check and the session, in one cache line.
	//
	// stamp is the sequence number of the last broadcast of this socket's
	// adapter that reached (or excluded) it; only the adapter touches it,
	// under its lock.
	stamp uint64
	// catchup is set while a restored socket's missed broadcasts are read.
	catchup atomic.Pointer[catchup]
	sess    *engineio.Session // client.sess

	id        string
	nsp       *Namespace
	client    *client
	handshake Handshake
	connected atomic.Bool
	obs       socketObs

	mu           sync.Mutex
	handlers     map[string]EventHandler
	onDisconnect []func(reason string)
	acks         map[int64]*pendingAck
	nextAck      int64
	data         any

	// rec is nil unless recovery is on.
	rec *sockRecovery
}

// sockRecovery is a socket's connection-state-recovery bookkeeping.
type sockRecovery struct {
	pid       string
	owner     string
	gen       uint64 // SessionState.Gen
	recovered bool
	// set between restore and add
	restored *SessionState
	missed   []MissedPacket
	// joined records the rooms OnConnection joins while it runs, so that
	// restored rooms the application did not join again can be left.
	jmu    sync.Mutex
	joined map[string]bool

	scheduled atomic.Bool
	// connectSaved is set once the connection handlers ran: the save at
	// connect, made then, carries the rooms they joined, so their joins
	// need no save (nor start a RoomSaveInterval) of their own.
	connectSaved atomic.Bool
	lastSave     atomic.Int64 // unix nanoseconds of the last room-change save's start
	mu           sync.Mutex   // serializes saves, so the last one has the latest rooms
	final        bool         // disconnected, dropped or taken over: no more saves
}

// RoomSaveInterval bounds how often a socket's room changes are saved for
// recovery: a change is saved at once unless a room-change save started
// less than this ago, and then the changes meanwhile go in one save at the
// interval's end. A client joining and leaving rooms in a loop costs one
// save (its room list) per interval, not one per change; an instance
// killed within the interval loses the changes not yet saved.
const RoomSaveInterval = time.Second

func newSocketID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ID is the socket's own random id (not the Engine.IO session id); the
// socket is always in the room of that name.
func (s *Socket) ID() string { return s.id }

// Namespace is the namespace the socket is connected to.
func (s *Socket) Namespace() *Namespace { return s.nsp }

// Handshake returns what the connection carried.
func (s *Socket) Handshake() *Handshake { return &s.handshake }

// Transport is the current Engine.IO transport, "polling" or "websocket".
func (s *Socket) Transport() string { return s.client.sess.Transport() }

// Recovered reports whether this socket resumed an earlier session (same
// id, rooms and the broadcasts it missed), as the client's socket.recovered.
func (s *Socket) Recovered() bool { return s.rec != nil && s.rec.recovered }

// DropRecovery makes the socket's session unrecoverable: after it
// disconnects the client gets a fresh session (recovered false) and must
// refetch. Use it when the socket missed something the history cannot
// replay.
func (s *Socket) DropRecovery() {
	if s.rec == nil || s.nsp.store == nil {
		return
	}
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.final = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.nsp.store.DropSession(ctx, s.rec.pid); err != nil {
		s.nsp.srv.log.Warn("drop recoverable session", "socket", s.id, "err", err)
	}
}

// persistAsync saves the session state soon, off the caller's path (Join
// runs on read loops): at once, or at the end of the RoomSaveInterval that
// the last save started; calls made meanwhile fold into one save.
func (s *Socket) persistAsync() {
	if s.rec == nil || s.nsp.store == nil || !s.rec.connectSaved.Load() || !s.rec.scheduled.CompareAndSwap(false, true) {
		return
	}
	save := func() {
		s.rec.scheduled.Store(false)
		s.rec.lastSave.Store(time.Now().UnixNano())
		s.persist(nil, false)
	}
	if wait := time.Duration(s.rec.lastSave.Load() + int64(RoomSaveInterval) - time.Now().UnixNano()); wait > 0 {
		time.AfterFunc(wait, save)
		return
	}
	go save()
}

// persist saves the session state with rooms (the current ones when nil);
// final marks the last save, made at disconnect.
func (s *Socket) persist(rooms []string, final bool) { s.persistWithin(rooms, final, 5*time.Second) }

// persistAtConnect saves a new or restored session before its CONNECT reply
// leaves: a client that knows its pid can resume it, even if it loses its
// transport at once or its instance is killed. A store that does not answer
// within a second only costs this socket its recoverability (logged).
func (s *Socket) persistAtConnect() { s.persistWithin(nil, false, time.Second) }

func (s *Socket) persistWithin(rooms []string, final bool, timeout time.Duration) {
	if s.rec == nil || s.nsp.store == nil {
		return
	}
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if s.rec.final {
		return
	}
	window := s.nsp.srv.cfg.Recovery.MaxDisconnection
	ttl := window
	if final {
		s.rec.final = true
	} else {
		if !s.connected.Load() {
			return
		}
		rooms = s.Rooms()
		// outlives the next periodic save, so a killed instance's
		// sessions stay recoverable for a whole window
		ttl += window / 4
	}
	st := SessionState{SID: s.id, PID: s.rec.pid, Owner: s.rec.owner, Rooms: rooms, Gen: s.rec.gen}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.nsp.store.PersistSession(ctx, st, ttl); err != nil {
		s.nsp.srv.log.Warn("save recoverable session", "socket", s.id, "err", err)
	}
}

// takeOver closes a socket whose session a reconnecting client resumed,
// without saving or dropping that session.
func (s *Socket) takeOver() {
	if s.rec != nil {
		s.rec.mu.Lock()
		s.rec.final = true
		s.rec.mu.Unlock()
	}
	s.onClose(ReasonForcedServerClose)
	s.client.mu.Lock()
	idle := len(s.client.sockets) == 0
	s.client.mu.Unlock()
	if idle {
		s.client.sess.Close(ReasonForcedServerClose)
	}
}

// SessionTTL reports how much longer the socket's recoverable session stays
// stored. While the socket, or a socket that resumed its session on any
// instance sharing the adapter's SessionStore, is connected, the session is
// saved again periodically and this stays above zero; after the last of them
// disconnects it lasts the recovery window. It is 0 once the session is gone:
// expired, dropped (a disconnect the client does not come back from), or
// never saved because recovery is off. Used to keep what belongs to a session
// (e.g. its record locks) until the session is over everywhere.
func (s *Socket) SessionTTL(ctx context.Context) (time.Duration, error) {
	if s.rec == nil || s.nsp.store == nil {
		return 0, nil
	}
	if lt, ok := s.nsp.store.(SessionLifetime); ok {
		d, err := lt.SessionTTL(ctx, s.rec.pid)
		if err != nil {
			return 0, fmt.Errorf("session ttl: %w", err)
		}
		return d, nil
	}
	// A store that cannot tell: stored means a whole window may be left.
	st, err := s.nsp.store.LoadSession(ctx, s.rec.pid)
	if err != nil {
		return 0, fmt.Errorf("session ttl: %w", err)
	}
	if st == nil {
		return 0, nil
	}
	return s.nsp.srv.cfg.Recovery.MaxDisconnection, nil
}

// Connected reports whether the socket is still connected.
func (s *Socket) Connected() bool { return s.connected.Load() }

// SetData stores an application value with the socket (e.g. the
// authenticated user set by a middleware).
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Data returns the value stored by SetData.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// On registers the handler for event, replacing any earlier one.
func (s *Socket) On(event string, h EventHandler) {
	s.mu.Lock()
	if s.handlers == nil {
		// made on first use: a socket that only receives broadcasts
		// registers no handlers
		s.handlers = make(map[string]EventHandler)
	}
	s.handlers[event] = h
	s.mu.Unlock()
}

// OnDisconnect registers fn to run once when the socket disconnects, with
// the server-side reason (see the Reason constants).
func (s *Socket) OnDisconnect(fn func(reason string)) {
	s.mu.Lock()
	s.onDisconnect = append(s.onDisconnect, fn)
	s.mu.Unlock()
}

// Emit sends event to this socket. Args are encoded as described on
// appendArgs: json.RawMessage verbatim, []byte as binary, Args passed
// through, anything else via json.Marshal.
func (s *Socket) Emit(event string, args ...any) error {
	if !s.connected.Load() {
		return ErrDisconnected
	}
	p, err := eventPacket(s.nsp.name, event, parser.NoID, args)
	if err != nil {
		return err
	}
	return s.send(p)
}

// EmitWithAck sends event and asks the client to acknowledge it; cb runs
// once, with the client's answer or with ErrAckTimeout after timeout
// (timeout <= 0: no timeout) or ErrDisconnected.
func (s *Socket) EmitWithAck(event string, timeout time.Duration, cb AckCallback, args ...any) error {
	s.mu.Lock()
	// Checked under mu: onClose flips connected before it takes mu to fail
	// the pending acks, so an ack registered here is never orphaned.
	if !s.connected.Load() {
		s.mu.Unlock()
		return ErrDisconnected
	}
	id := s.nextAck
	s.nextAck++
	pa := &pendingAck{cb: cb}
	if s.acks == nil {
		s.acks = make(map[int64]*pendingAck) // most sockets never ask for acks
	}
	s.acks[id] = pa
	if timeout > 0 {
		pa.timer = time.AfterFunc(timeout, func() {
			if s.takeAck(id) != nil {
				cb(Args{}, ErrAckTimeout)
			}
		})
	}
	s.mu.Unlock()
	p, err := eventPacket(s.nsp.name, event, id, args)
	if err == nil {
		err = s.send(p)
	}
	if err != nil {
		s.takeAck(id)
		return err
	}
	return nil
}

func (s *Socket) takeAck(id int64) *pendingAck {
	s.mu.Lock()
	defer s.mu.Unlock()
	pa := s.acks[id]
	if pa != nil {
		delete(s.acks, id)
		if pa.timer != nil {
			pa.timer.Stop()
		}
	}
	return pa
}

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {
	if s.rec != nil {
		s.rec.jmu.Lock()
		if s.rec.joined != nil {
			for _, r := range rooms {
				s.rec.joined[r] = true
			}
		}
		s.rec.jmu.Unlock()
	}
	s.nsp.adapter.AddAll(s, rooms)
	s.nsp.srv.announceJoined(s, rooms)
	s.persistAsync()
}

// Leave removes the socket from room.
func (s *Socket) Leave(room string) {
	s.nsp.adapter.Del(s, room)
	s.nsp.srv.announceLeft(s, room)
	s.persistAsync()
}

// Rooms lists the rooms the socket is in, its own id room included.
func (s *Socket) Rooms() []string { return s.nsp.adapter.SocketRooms(s) }

// To starts a broadcast from this socket to rooms: every target but the
// socket itself.
func (s *Socket) To(rooms ...string) BroadcastOperator {
	return s.Broadcast().To(rooms...)
}

// Except starts a broadcast from this socket to everyone but rooms (and
// the socket itself).
func (s *Socket) Except(rooms ...string) BroadcastOperator {
	return s.Broadcast().Except(rooms...)
}

// Broadcast starts a broadcast to the whole namespace except this socket.
func (s *Socket) Broadcast() BroadcastOperator {
	return BroadcastOperator{nsp: s.nsp, except: []string{s.id}}
}

// Disconnect ends the socket. Without closeConn the client gets a
// DISCONNECT for this namespace: its "disconnect" handler sees "io server
// disconnect" and the official client does not reconnect. With closeConn
// the whole Engine.IO connection is closed instead, without a DISCONNECT:
// to the client the connection was lost ("transport close"), so it
// reconnects by itself and its new handshake runs the middlewares
// (authentication) again. Node's disconnect(true) sends the DISCONNECT
// before closing, which leaves the official client offline for good; walcast
// closes to cut a credential that stopped being valid, and the client must
// then hear the handshake's connect_error, not sit silently disconnected.
func (s *Socket) Disconnect(closeConn bool) {
	if !s.connected.Load() {
		return
	}
	if closeConn {
		s.onClose(ReasonForcedServerClose)
		s.client.sess.Close(ReasonForcedServerClose)
		return
	}
	_ = s.send(&parser.Packet{Type: parser.Disconnect, Namespace: s.nsp.name, ID: parser.NoID})
	s.onClose(ReasonServerNamespaceDisconn)
}

func (s *Socket) send(p *parser.Packet) error {
	if !s.client.sess.Send(encode(p)...) {
		return fmt.Errorf("send to socket %s: %w", s.id, ErrDisconnected)
	}
	return nil
}

// deliver hands an already encoded broadcast to the transport. Failure means
// the session is closed or was just cut as too slow; its OnClose cleans up.
func (s *Socket) deliver(pkts []*engineio.Packet, offset string) {
	if c := s.catchup.Load(); c != nil && c.hold(pkts, offset) {
		return
	}
	s.sess.Send(pkts...)
}

// onPacket handles a decoded packet addressed to this socket.
func (s *Socket) onPacket(p *parser.Packet) {
	switch p.Type {
	case parser.Event, parser.BinaryEvent:
		s.onEvent(p)
	case parser.Ack, parser.BinaryAck:
		if pa := s.takeAck(p.ID); pa != nil {
			pa.cb(Args{JSON: p.Args, Binary: p.Attachments}, nil)
		}
	case parser.Disconnect:
		s.onClose(ReasonClientNamespaceDisconn)
	}
}

var noAck AckFunc = func(...any) error { return nil }

func (s *Socket) onEvent(p *parser.Packet) {
	s.mu.Lock()
	h := s.handlers[p.Name]
	s.mu.Unlock()
	if h == nil {
		return
	}
	ack := noAck
	if p.ID != parser.NoID {
		var sent atomic.Bool
		ack = func(args ...any) error {
			if !sent.CompareAndSwap(false, true) {
				return nil
			}
			ap := &parser.Packet{Type: parser.Ack, Namespace: s.nsp.name, ID: p.ID, Args: make([]json.RawMessage, 0, len(args))}
			if err := appendArgs(ap, args); err != nil {
				return fmt.Errorf("ack %q: %w", p.Name, err)
			}
			return s.send(ap)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s.nsp.srv.log.Error("event handler panicked", "event", p.Name, "socket", s.id, "panic", r)
		}
	}()
	h(s, Args{JSON: p.Args[1:], Binary: p.Attachments}, ack)
}

// onClose runs the disconnect bookkeeping once.
func (s *Socket) onClose(reason string) {
	if !s.connected.CompareAndSwap(true, false) {
		return
	}
	if s.rec != nil && s.nsp.store != nil {
		// rooms are read before remove empties them
		if recoverable[reason] {
			rooms := s.Rooms()
			go s.persist(rooms, true)
		} else {
			go s.DropRecovery()
		}
	}
	s.nsp.srv.announceDisconnected(s, reason)
	s.nsp.remove(s)
	s.client.remove(s)
	s.mu.Lock()
	acks := s.acks
	s.acks = nil
	fns := s.onDisconnect
	s.mu.Unlock()
	for _, pa := range acks {
		if pa.timer != nil {
			pa.timer.Stop()
		}
		pa.cb(Args{}, ErrDisconnected)
	}
	for _, fn := range fns {
		fn(reason)
	}
}
