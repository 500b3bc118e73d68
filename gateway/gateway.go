// Package gateway is the socket policy of the client contract
// (shared/reference/websocket-contract.md): who a socket is (its token,
// checked against the users projection), which rooms it is in and may
// join, what it may lock and how fast, when its token runs out, and how a
// reconnecting client gets its session back.
//
//	reserved := routing.ReservedRooms()
//	dir := accounts.New(columns)
//	hub, err := broadcast.Open(ctx, broadcast.Config{Recovery: gateway.Recovery(window, reserved)},
//		broadcast.Cluster{OnState: func(b []byte) { _ = dir.ApplyEncoded(b) }})
//	err = dir.Load(ctx, databaseURL)
//	gw, err := gateway.Attach(hub, gateway.Config{Verifier: v, Accounts: dir, LockStore: store, Reserved: reserved})
//	go gw.Run(ctx)
//
// The room vocabulary (user:, role:, member:) comes from route, so the
// rooms a token puts a socket in are the rooms route's audiences name.
//
// Every browser is hostile (DESIGN.md decision 10): a token is honoured
// only while its user's row says what it says; a socket's lock calls go
// through a token bucket; the rooms it joins are capped, never reserved
// (the token rooms and every audience of the routing file) and never a
// socket's id. A cut for an authentication reason (the row changed, the
// token expired) closes the connection, so the official client reconnects
// and hears connect_error "Authentication error: Invalid token".
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/auth"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/route"
)

// Event names walcast adds to the contract.
const (
	EventTokenExpiring = "auth:expiring" // {expiresAt}: the token expires soon; the socket is disconnected then
	EventJoinRoom      = "join_room"
	EventLeaveRoom     = "leave_room"
)

// DefaultExpiryWarning is how long before its token expires a socket hears
// EventTokenExpiring unless Config.ExpiryWarning says otherwise.
const DefaultExpiryWarning = time.Minute

// MaxRoomName is the longest room name a client may join, in bytes of
// UTF-8 (128 ASCII characters; fewer of other scripts): bytes are what a
// room costs in memory and in Redis.
const MaxRoomName = 128

// DefaultMaxRooms is how many rooms a socket may join itself (join_room)
// unless Config.MaxRooms says otherwise.
const DefaultMaxRooms = 100

// Lock calls a socket may make (lock:acquire, lock:release, lock:check
// together) unless Config.LockRate says otherwise: a sustained rate per
// second and a burst. Each acquire or release may announce a lock:update
// to every client, so this bounds what one socket can make walcast send.
const (
	DefaultLockRate  = 5.0
	DefaultLockBurst = 10
)

// Refusal texts in {success: false, error} acks.
const (
	ErrInvalidRoom  = "invalid room"
	ErrReservedRoom = "reserved room"
	ErrTooManyRooms = "too many rooms"
	ErrRateLimited  = "rate limited"
)

// StandbyMessage is the connect_error of a socket refused because this
// instance would get no events (Config.Standby).
const StandbyMessage = "Service unavailable: this walcast instance is standby (another instance reads the replication slot and REDIS_URL is not set)"

// Config is the socket policy of one namespace.
type Config struct {
	// Namespace is the Socket.IO namespace the policy guards; default "/".
	Namespace string
	// Verifier checks the handshake's token.
	Verifier *auth.Verifier
	// Accounts, when set, is the users projection a token must match at
	// the handshake (its user exists, with the token's role and member
	// id, not locked out); the gateway cuts the sockets of users whose row
	// stops matching it. Nil: tokens are not checked against any table.
	Accounts *accounts.Directory
	// LockStore holds the record locks; Locks is the lock policy (its
	// Logger defaults to Logger).
	LockStore locks.Store
	Locks     locks.Config
	// Reserved are the rooms a client may not join or leave itself.
	Reserved route.ReservedRooms
	// MaxRooms caps the rooms a socket joins itself; default
	// DefaultMaxRooms.
	MaxRooms int
	// LockRate and LockBurst are each socket's token bucket for lock calls;
	// defaults DefaultLockRate and DefaultLockBurst.
	LockRate  float64
	LockBurst int
	// OnRefusal, when set, is told each request the policy refused, by
	// kind (lock_rate, rooms, reserved_room, invalid_room, standby), for
	// metrics.
	OnRefusal func(kind string)
	// ExpiryWarning is how long before its token expires a socket hears
	// EventTokenExpiring; default DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// Standby, when set and true, refuses new sockets with StandbyMessage:
	// this instance would deliver them no events.
	Standby func() bool
	Logger  *slog.Logger
	// Observer, when set, counts authentication failures and lock
	// announcements (metrics).
	Observer Observer
}

// Gateway applies the policy to a hub's namespace.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	hub   *broadcast.Hub
	ns    *socketio.Namespace
	locks *locks.Service
	// lockUpdates queues lock announcements for sendLockUpdates; stopping
	// is closed when it stops sending them.
	lockUpdates chan locks.Update
	stopping    chan struct{}
}

// socketState is what the gateway keeps per socket. rooms and lockCalls
// are only touched by the socket's event handlers, which run one at a time
// on its read loop.
type socketState struct {
	id     *auth.Identity
	caller locks.Caller
	lock   *locks.Session // set by onConnect
	timers []*time.Timer
	// rooms are the rooms the client joined itself; nil until the first.
	rooms     map[string]struct{}
	lockCalls tokenBucket
}

// Attach puts the policy on hub's namespace: middlewares (standby, token),
// the rooms a token joins, join_room/leave_room, the lock events and token
// expiry. Call Run for the lock service's background work.
func Attach(hub *broadcast.Hub, cfg Config) (*Gateway, error) {
	if cfg.Verifier == nil || cfg.LockStore == nil {
		return nil, errors.New("gateway: Verifier and LockStore are required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "/"
	}
	if cfg.ExpiryWarning <= 0 {
		cfg.ExpiryWarning = DefaultExpiryWarning
	}
	if cfg.MaxRooms <= 0 {
		cfg.MaxRooms = DefaultMaxRooms
	}
	if cfg.LockRate <= 0 {
		cfg.LockRate = DefaultLockRate
	}
	if cfg.LockBurst <= 0 {
		cfg.LockBurst = DefaultLockBurst
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Locks.Logger == nil {
		cfg.Locks.Logger = cfg.Logger
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, hub: hub, ns: hub.Namespace(cfg.Namespace),
		lockUpdates: make(chan locks.Update, 4096), stopping: make(chan struct{})}
	svc, err := locks.NewService(cfg.LockStore, locks.NotifierFunc(g.announceLock), cfg.Locks)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.locks = svc
	g.ns.Use(g.refuseWhenStandby)
	g.ns.Use(g.authenticate)
	g.ns.OnConnection(g.onConnect)
	if cfg.Accounts != nil {
		cfg.Accounts.OnChange(g.recheck)
	}
	return g, nil
}

// Run does the background work until ctx ends: the lock service's expiry
// sweeps and renewals, the lock announcements (those queued when ctx ends
// are still sent) and, with recovery on, the offset keep-alive. Lock
// announcements wait in a bounded queue until Run sends them.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { g.sendLockUpdates(ctx) })
	if g.hub.Server().Recovery() {
		wg.Go(func() { g.sendOffsets(ctx) })
	}
	err := g.locks.Run(ctx)
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// refuseWhenStandby: without Redis a standby instance's sockets would get
// no events and its locks would not be shared, so it refuses them clearly.
func (g *Gateway) refuseWhenStandby(*socketio.Socket) error {
	if g.cfg.Standby != nil && g.cfg.Standby() {
		g.refused("standby")
		return &socketio.ConnectError{Message: StandbyMessage}
	}
	return nil
}

// authenticate admits a socket whose token verifies and, with Accounts,
// whose user's row says what the token says. A recovered session goes
// through it too: nothing is restored before it passed.
func (g *Gateway) authenticate(sock *socketio.Socket) error {
	hs := sock.Handshake()
	id, err := g.cfg.Verifier.Verify(auth.FromHandshake(hs.Auth, hs.Header.Get("Authorization")))
	if err != nil {
		g.log.Debug("socket refused", "remote", hs.RemoteAddr, "err", err)
		g.cfg.Observer.AuthFailed(auth.FailureReason(err))
		if errors.Is(err, auth.ErrNoToken) {
			return &socketio.ConnectError{Message: auth.MsgNoToken}
		}
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	if why := g.refusal(id); why != "" {
		g.log.Debug("socket refused: the token does not match the users table", "remote", hs.RemoteAddr, "user", id.IDString, "reason", why)
		g.cfg.Observer.AuthFailed(usersTableReason(why))
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	caller, err := callerOf(id)
	if err != nil {
		g.cfg.Observer.AuthFailed(auth.ReasonClaims)
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	st := &socketState{id: id, caller: caller}
	st.lockCalls.init(g.cfg.LockRate, g.cfg.LockBurst)
	sock.SetData(st)
	return nil
}

// refusal is why the users table refuses id's token now; "" when it does
// not (or there is no users table).
func (g *Gateway) refusal(id *auth.Identity) string {
	if g.cfg.Accounts == nil {
		return ""
	}
	return g.cfg.Accounts.Refusal(id.IDString, id.Role, id.MemberID, time.Now())
}

// recheck cuts this instance's sockets of users whose row changed and no
// longer matches their token: the directory tells every instance, in
// commit order, so this is the cut for what no room can express (a member
// id change) and a second one for the revocations the hub delivers.
func (g *Gateway) recheck(ids []string) {
	for _, uid := range ids {
		for _, sock := range g.ns.To(route.UserRoom(uid)).Sockets() {
			if st := stateOf(sock); st != nil {
				g.cutIfRefused(sock, st)
			}
		}
	}
}

// cutIfRefused closes a socket whose token the users table refuses now.
func (g *Gateway) cutIfRefused(sock *socketio.Socket, st *socketState) bool {
	why := g.refusal(st.id)
	if why == "" {
		return false
	}
	g.log.Info("account changed: closing the socket's connection", "user", st.id.IDString, "socket", sock.ID(), "reason", why)
	sock.Disconnect(true)
	return true
}

// callerOf is the lock service's view of a token's user. The id is read
// from its text (IDString, the digits of a numeric claim), never through a
// float: 1 and "1" are one user, and an id above 2^53 keeps its digits.
func callerOf(id *auth.Identity) (locks.Caller, error) {
	uid, err := locks.StringUserID(id.IDString)
	if err != nil {
		return locks.Caller{}, err
	}
	return locks.Caller{UserID: uid, Username: id.Username, Role: id.Role, MemberID: id.MemberID}, nil
}

func stateOf(sock *socketio.Socket) *socketState {
	st, _ := sock.Data().(*socketState)
	return st
}

// tokenRooms are the reserved rooms a token puts its sockets in.
func tokenRooms(id *auth.Identity) []string {
	return route.TokenRooms(id.IDString, id.Role, id.MemberID)
}

func (g *Gateway) onConnect(sock *socketio.Socket) {
	st := stateOf(sock)
	sock.Join(tokenRooms(st.id)...)
	// The row may have changed since authenticate: a cut delivered while
	// the socket was not yet in its user's room missed it, so look again
	// now that it is (the directory is updated before any cut is sent).
	if g.cutIfRefused(sock, st) {
		return
	}
	// Here, not in authenticate: a restored socket has its old id only
	// after the middlewares, and it must find the lock session (and locks)
	// its id had. A session resumed on another instance keeps this one's
	// locks until it is gone everywhere (its stored recovery session).
	st.lock = g.locks.Connect(sock.ID(), st.caller)
	st.lock.SetPresence(sock.SessionTTL)
	if sock.Recovered() {
		for _, r := range sock.Rooms() {
			if r != sock.ID() && !g.cfg.Reserved.Contains(r) {
				st.addRoom(r)
			}
		}
	}
	if g.hub.Server().Recovery() {
		// A tab learns offsets only from broadcasts: give it one right away.
		go g.sendOffset(g.ns.To(sock.ID()))
	}
	g.scheduleExpiry(sock, st)
	sock.OnDisconnect(func(string) {
		for _, t := range st.timers {
			t.Stop()
		}
		st.lock.Disconnect()
	})
	sock.On(EventJoinRoom, g.joinRoom)
	sock.On(EventLeaveRoom, g.leaveRoom)
	g.handleLocks(sock, st)
}

// scheduleExpiry warns a socket shortly before its token expires and
// closes its connection then (the original served expired tokens for as
// long as the socket stayed up): the client reconnects with the same
// token and hears connect_error "Authentication error: Invalid token".
func (g *Gateway) scheduleExpiry(sock *socketio.Socket, st *socketState) {
	exp := st.id.ExpiresAt
	if exp.IsZero() {
		return
	}
	until := time.Until(exp)
	warnAt := max(until-g.cfg.ExpiryWarning, 0)
	st.timers = append(st.timers,
		time.AfterFunc(warnAt, func() {
			_ = sock.Emit(EventTokenExpiring, map[string]any{"expiresAt": exp.UTC().Format(time.RFC3339)})
		}),
		time.AfterFunc(until, func() {
			g.log.Info("token expired: closing the socket's connection", "user", st.id.IDString, "socket", sock.ID())
			sock.Disconnect(true)
		}),
	)
}

func (g *Gateway) joinRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	st := stateOf(sock)
	room, err := g.clientRoom(args)
	switch {
	case err != nil:
	case st.hasRoom(room):
	case len(st.rooms) >= g.cfg.MaxRooms:
		err = errors.New(ErrTooManyRooms)
		g.refused("rooms")
	default:
		st.addRoom(room)
		sock.Join(room)
	}
	roomAck(ack, err)
}

func (g *Gateway) leaveRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	st := stateOf(sock)
	room, err := g.clientRoom(args)
	if err == nil && st.hasRoom(room) {
		delete(st.rooms, room)
		sock.Leave(room)
	}
	roomAck(ack, err)
}

// roomAck answers {success: true} or {success: false, error}.
func roomAck(ack socketio.AckFunc, err error) {
	if err != nil {
		_ = ack(map[string]any{"success": false, "error": err.Error()})
		return
	}
	_ = ack(map[string]any{"success": true})
}

// clientRoom validates a room a client asks for: a string of 1 to
// MaxRoomName bytes, not reserved (token rooms, audiences) and not in the
// form of a socket id, wherever that socket is.
func (g *Gateway) clientRoom(args socketio.Args) (string, error) {
	var room string
	if args.Len() == 0 || args.Unmarshal(0, &room) != nil || room == "" || len(room) > MaxRoomName {
		g.refused("invalid_room")
		return "", errors.New(ErrInvalidRoom)
	}
	if g.cfg.Reserved.Contains(room) || isSocketID(room) {
		g.refused("reserved_room")
		return "", errors.New(ErrReservedRoom)
	}
	return room, nil
}

// isSocketID reports whether room has the form of a Socket.IO socket id
// (walcast's and Node's alike: 20 characters of base64url, 15 random
// bytes). A socket is alone in the room of its id, on whichever instance
// it is; joining it would receive what is sent to that socket.
func isSocketID(room string) bool {
	if len(room) != 20 {
		return false
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (g *Gateway) refused(kind string) {
	if g.cfg.OnRefusal != nil {
		g.cfg.OnRefusal(kind)
	}
}

func (st *socketState) hasRoom(room string) bool {
	_, ok := st.rooms[room]
	return ok
}

func (st *socketState) addRoom(room string) {
	if st.rooms == nil {
		st.rooms = make(map[string]struct{})
	}
	st.rooms[room] = struct{}{}
}
