// Package gateway is the socket policy of the client contract
// (shared/reference/websocket-contract.md): who a socket is (its token),
// which rooms it is in and may join, what it may lock, when its token runs
// out, and how a reconnecting client gets its session back.
//
//	reserved := routing.ReservedRooms()
//	hub, err := broadcast.Open(ctx, broadcast.Config{Recovery: gateway.Recovery(window, reserved)}, cluster)
//	gw, err := gateway.Attach(hub, gateway.Config{Verifier: v, LockStore: store, Reserved: reserved})
//	go gw.Run(ctx)
//
// The room vocabulary (user:, role:, member:) comes from route, so the
// rooms a token puts a socket in are the rooms route's audiences name.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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

// MaxRoomName is the longest room name a client may join, in bytes.
const MaxRoomName = 128

// StandbyMessage is the connect_error of a socket refused because this
// instance would get no events (Config.Standby).
const StandbyMessage = "Service unavailable: this walcast instance is standby (another instance reads the replication slot and REDIS_URL is not set)"

// Config is the socket policy of one namespace.
type Config struct {
	// Namespace is the Socket.IO namespace the policy guards; default "/".
	Namespace string
	// Verifier checks the handshake's token.
	Verifier *auth.Verifier
	// LockStore holds the record locks; Locks is the lock policy (its
	// Logger defaults to Logger).
	LockStore locks.Store
	Locks     locks.Config
	// Reserved are the rooms a client may not join or leave itself.
	Reserved route.ReservedRooms
	// ExpiryWarning is how long before its token expires a socket hears
	// EventTokenExpiring; default DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// Standby, when set and true, refuses new sockets with StandbyMessage:
	// this instance would deliver them no events.
	Standby func() bool
	Logger  *slog.Logger
	// Observer, when set, counts refusals and lock announcements
	// (metrics).
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

// socketState is what the gateway keeps per socket.
type socketState struct {
	id     *auth.Identity
	caller locks.Caller
	lock   *locks.Session // set by onConnect
	timers []*time.Timer
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
		g.cfg.Observer.Refused(RefusedStandby)
		return &socketio.ConnectError{Message: StandbyMessage}
	}
	return nil
}

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
	caller, err := callerOf(id)
	if err != nil {
		g.cfg.Observer.AuthFailed(auth.ReasonClaims)
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	sock.SetData(&socketState{id: id, caller: caller})
	return nil
}

// callerOf is the lock service's view of a token's user.
func callerOf(id *auth.Identity) (locks.Caller, error) {
	var claim any
	if err := json.Unmarshal(id.ID, &claim); err != nil {
		return locks.Caller{}, err
	}
	if n, ok := claim.(float64); ok {
		claim = int64(n)
	}
	uid, err := locks.UserIDFromClaim(claim)
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
	// Here, not in authenticate: a restored socket has its old id only
	// after the middlewares, and it must find the lock session (and locks)
	// its id had. A session resumed on another instance keeps this one's
	// locks until it is gone everywhere (its stored recovery session).
	st.lock = g.locks.Connect(sock.ID(), st.caller)
	st.lock.SetPresence(sock.SessionTTL)
	sock.Join(tokenRooms(st.id)...)
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
// disconnects it then: the original served expired tokens for as long as
// the socket stayed up.
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
			g.log.Info("token expired: disconnecting socket", "user", st.id.IDString, "socket", sock.ID())
			sock.Disconnect(false)
		}),
	)
}

func (g *Gateway) joinRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	g.roomRequest(args, ack, func(room string) { sock.Join(room) })
}

func (g *Gateway) leaveRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	g.roomRequest(args, ack, sock.Leave)
}

// roomRequest does what a client asked for a room, if it may, and acks
// {success} or {success: false, error}.
func (g *Gateway) roomRequest(args socketio.Args, ack socketio.AckFunc, do func(room string)) {
	room, err := g.clientRoom(args)
	if err != nil {
		if errors.Is(err, errReservedRoom) {
			g.cfg.Observer.Refused(RefusedReservedRoom)
		} else {
			g.cfg.Observer.Refused(RefusedInvalidRoom)
		}
		_ = ack(map[string]any{"success": false, "error": err.Error()})
		return
	}
	do(room)
	_ = ack(map[string]any{"success": true})
}

var (
	errInvalidRoom  = errors.New("invalid room")
	errReservedRoom = errors.New("reserved room")
)

// clientRoom validates a room a client asks for: a string of 1 to
// MaxRoomName bytes, not reserved, not another socket's own room.
func (g *Gateway) clientRoom(args socketio.Args) (string, error) {
	var room string
	if args.Len() == 0 || args.Unmarshal(0, &room) != nil || room == "" || len(room) > MaxRoomName {
		return "", errInvalidRoom
	}
	if g.cfg.Reserved.Contains(room) || g.ns.Socket(room) != nil {
		return "", errReservedRoom
	}
	return room, nil
}
