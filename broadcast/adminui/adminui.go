// Package adminui speaks the server side of the official Socket.IO Admin UI
// (@socket.io/admin-ui 0.5.x) on a socketio.Server, so an operator can open
// that UI (the hosted one, or the ui/dist its npm package ships) and see the
// server's namespaces, sockets, rooms and connection traffic.
//
// It implements the protocol of the package's instrument() in its
// development mode, on a namespace of its own ("/admin"): basic
// authentication with a bcrypt hash (the UI then reconnects with the session
// id it was given), "config" with the supported features, "all_sockets" at
// connect, "socket_connected", "socket_disconnected", "room_joined",
// "room_left" and "socket_updated" (transport upgrades) as they happen, and
// "server_stats" every two seconds. It differs where walcast's job requires:
//
//   - Read-only unless AllowChanges: without it the UI is offered no join,
//     leave or disconnect, and such requests are ignored. "emit" (sending
//     arbitrary events to browsers) is never offered.
//   - What sockets send and receive ("event_received", "event_sent") is not
//     mirrored: those payloads are rows of the application's database, and
//     mirroring them would cost on every delivery.
//   - A socket's handshake is shown without its auth object, cookies,
//     authorization headers or any header or query parameter whose name
//     looks like a credential; its client id is a digest of the Engine.IO
//     session id, which authenticates polling requests.
//   - It shows this server's sockets only: with several instances, each
//     instance's Admin UI namespace answers for itself.
package adminui

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/walcast/walcast/broadcast/socketio"
)

// Config enables the Admin UI. Username and PasswordHash are required: the
// Admin UI is never served without authentication.
type Config struct {
	// Namespace the UI connects to; default DefaultNamespace, the UI's
	// default.
	Namespace string
	// Username and PasswordHash (bcrypt, any of the $2a$, $2b$, $2y$
	// variants, e.g. from `htpasswd -nbB user pass` or bcrypt.hashSync) are
	// what the UI's login form must match.
	Username     string
	PasswordHash string
	// AllowChanges lets the UI make sockets join or leave rooms and
	// disconnect them. Off by default: the UI only looks.
	AllowChanges bool
	// ServerID names this server in the UI; default the host name.
	ServerID string
	// SessionTTL is how long a login stays valid for the UI's reconnects;
	// default 24h (the Admin UI's RedisStore default).
	SessionTTL time.Duration
	// StatsInterval is how often server_stats goes out; default 2s, what
	// the UI's health check (10 s) expects.
	StatsInterval time.Duration
	// Traffic, when set, gives the cumulative packets and bytes the server
	// received and sent, for the UI's traffic histogram.
	Traffic func() Traffic
	// SocketData, when set, is what the UI shows as a socket's data. By
	// default it shows none: what an application keeps with a socket may
	// be a credential.
	SocketData func(*socketio.Socket) any
	Logger     *slog.Logger
}

// DefaultNamespace is the namespace the Admin UI connects to unless told
// otherwise.
const DefaultNamespace = "/admin"

// Traffic is cumulative Engine.IO traffic since the server started.
type Traffic struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
}

// Feature names the UI knows (typed-events.ts of @socket.io/admin-ui).
const (
	featureJoin        = "JOIN"
	featureLeave       = "LEAVE"
	featureDisconnect  = "DISCONNECT"
	featureMJoin       = "MJOIN"
	featureMLeave      = "MLEAVE"
	featureMDisconnect = "MDISCONNECT"
	featureAggregated  = "AGGREGATED_EVENTS"
	// featureAllEvents is what makes the UI show its socket, room and
	// client views; event payloads are still not mirrored (see the package
	// doc).
	featureAllEvents = "ALL_EVENTS"
)

// AdminUI is the Admin UI server side attached to a socketio.Server.
type AdminUI struct {
	cfg      Config
	srv      *socketio.Server
	nsp      *socketio.Namespace
	log      *slog.Logger
	hostname string
	started  time.Time
	features []string
	auth     *authenticator

	mu     sync.Mutex
	admins map[*socketio.Socket]struct{}
	// transports is each socket's transport at the last stats tick, to
	// announce upgrades.
	transports map[*socketio.Socket]string
	events     eventBuffer
	traffic    Traffic

	stop chan struct{}
	done chan struct{}
}

// Attach serves the Admin UI on srv until Close. It refuses a config
// without credentials or with a hash that is not bcrypt.
func Attach(srv *socketio.Server, cfg Config) (*AdminUI, error) {
	if cfg.Username == "" || cfg.PasswordHash == "" {
		return nil, errors.New("admin ui: a username and a bcrypt password hash are required")
	}
	if _, err := bcrypt.Cost([]byte(cfg.PasswordHash)); err != nil {
		return nil, fmt.Errorf("admin ui: password hash is not a bcrypt hash: %w", err)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 24 * time.Hour
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	if cfg.ServerID == "" {
		cfg.ServerID = host
	}
	a := &AdminUI{
		cfg:        cfg,
		srv:        srv,
		log:        cfg.Logger,
		hostname:   host,
		started:    time.Now(),
		auth:       newAuthenticator(cfg.Username, cfg.PasswordHash, cfg.SessionTTL),
		admins:     make(map[*socketio.Socket]struct{}),
		transports: make(map[*socketio.Socket]string),
		events:     eventBuffer{},
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if cfg.AllowChanges {
		a.features = []string{featureJoin, featureLeave, featureDisconnect, featureMJoin, featureMLeave, featureMDisconnect}
	}
	a.features = append(a.features, featureAggregated, featureAllEvents)
	if cfg.Traffic != nil {
		a.traffic = cfg.Traffic()
	}
	a.nsp = srv.Of(cfg.Namespace)
	a.nsp.Use(a.authenticate)
	a.nsp.OnConnection(a.onAdmin)
	srv.AddObserver(observer{a})
	go a.run()
	return a, nil
}

// Close stops the stats and disconnects the UI's sockets.
func (a *AdminUI) Close() {
	select {
	case <-a.stop:
		return
	default:
	}
	close(a.stop)
	<-a.done
	for _, s := range a.adminSockets() {
		s.Disconnect(false)
	}
}

// sessionKey is what the authentication middleware leaves in an admin
// socket's data: the session id to send it once it is connected.
type sessionKey struct{ id string }

func (a *AdminUI) authenticate(s *socketio.Socket) error {
	var auth struct {
		SessionID string `json:"sessionId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
	}
	_ = json.Unmarshal(s.Handshake().Auth, &auth)
	id, err := a.auth.login(auth.SessionID, auth.Username, auth.Password)
	if err != nil {
		a.log.Info("admin ui login refused", "remote", s.Handshake().RemoteAddr, "err", err)
		return &socketio.ConnectError{Message: err.Error()}
	}
	if id != "" {
		s.SetData(sessionKey{id})
	}
	return nil
}

func (a *AdminUI) onAdmin(s *socketio.Socket) {
	if k, ok := s.Data().(sessionKey); ok {
		_ = s.Emit("session", k.id)
	}
	a.mu.Lock()
	a.admins[s] = struct{}{}
	a.mu.Unlock()
	s.OnDisconnect(func(string) {
		a.mu.Lock()
		delete(a.admins, s)
		a.mu.Unlock()
	})
	_ = s.Emit("config", map[string]any{"supportedFeatures": a.features})
	if b, err := json.Marshal(a.allSockets()); err == nil {
		_ = s.Emit("all_sockets", json.RawMessage(b))
	}
	a.emitStatsTo([]*socketio.Socket{s}, a.stats(false))
	if a.cfg.AllowChanges {
		a.registerChanges(s)
	}
}

// registerChanges answers the UI's join, leave and _disconnect requests
// (Socket.IO v4 form: the last argument selects the sockets by room,
// their own id room for one socket; none selects all).
func (a *AdminUI) registerChanges(s *socketio.Socket) {
	selected := func(args socketio.Args, filterAt int) (*socketio.Namespace, socketio.BroadcastOperator, bool) {
		var name string
		if args.Unmarshal(0, &name) != nil {
			return nil, socketio.BroadcastOperator{}, false
		}
		nsp := a.srv.Lookup(name)
		if nsp == nil {
			return nil, socketio.BroadcastOperator{}, false
		}
		var filter string
		if args.Len() > filterAt {
			_ = args.Unmarshal(filterAt, &filter)
		}
		if filter == "" {
			return nsp, nsp.To(), true
		}
		return nsp, nsp.To(filter), true
	}
	s.On("join", func(s *socketio.Socket, args socketio.Args, _ socketio.AckFunc) {
		var room string
		nsp, sel, ok := selected(args, 2)
		if !ok || args.Unmarshal(1, &room) != nil || room == "" {
			return
		}
		a.log.Info("admin ui: sockets join a room", "nsp", nsp.Name(), "room", room, "admin", s.Handshake().RemoteAddr)
		sel.SocketsJoin(room)
	})
	s.On("leave", func(s *socketio.Socket, args socketio.Args, _ socketio.AckFunc) {
		var room string
		nsp, sel, ok := selected(args, 2)
		if !ok || args.Unmarshal(1, &room) != nil || room == "" {
			return
		}
		a.log.Info("admin ui: sockets leave a room", "nsp", nsp.Name(), "room", room, "admin", s.Handshake().RemoteAddr)
		sel.SocketsLeave(room)
	})
	s.On("_disconnect", func(s *socketio.Socket, args socketio.Args, _ socketio.AckFunc) {
		var closeConn bool
		nsp, sel, ok := selected(args, 2)
		if !ok || args.Unmarshal(1, &closeConn) != nil {
			return
		}
		a.log.Info("admin ui: disconnecting sockets", "nsp", nsp.Name(), "close", closeConn, "admin", s.Handshake().RemoteAddr)
		sel.DisconnectSockets(closeConn)
	})
}

func (a *AdminUI) adminSockets() []*socketio.Socket {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*socketio.Socket, 0, len(a.admins))
	for s := range a.admins {
		out = append(out, s)
	}
	return out
}

// broadcast sends event to every logged-in UI. Each UI socket is sent to
// directly rather than through the namespace's adapter, which may be one
// that carries broadcasts to other instances.
func (a *AdminUI) broadcast(event string, args ...any) {
	admins := a.adminSockets()
	if len(admins) == 0 {
		return
	}
	raw := make([]any, len(args))
	for i, v := range args {
		b, err := json.Marshal(v)
		if err != nil {
			a.log.Warn("admin ui: encode event", "event", event, "err", err)
			return
		}
		raw[i] = json.RawMessage(b)
	}
	for _, s := range admins {
		_ = s.Emit(event, raw...)
	}
}

// clientID stands for the Engine.IO session in the UI: the same for a
// client's sockets of every namespace, and of no use to impersonate it.
func clientID(s *socketio.Socket) string {
	sum := sha256.Sum256([]byte(s.ConnID()))
	return hex.EncodeToString(sum[:6])
}

// timestamp is a JavaScript Date as JSON.stringify writes it.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// observer turns socket lifecycle notices into the UI's events.
type observer struct{ a *AdminUI }

func (o observer) SocketConnected(s *socketio.Socket) {
	if s.Namespace().Name() != o.a.cfg.Namespace {
		o.a.countEvent("rawConnection", "")
	}
	if o.a.hasAdmins() {
		o.a.broadcast("socket_connected", o.a.serialize(s), timestamp(time.Now()))
	}
}

func (o observer) SocketDisconnected(s *socketio.Socket, reason string, rooms []string) {
	if s.Namespace().Name() != o.a.cfg.Namespace {
		o.a.countEvent("rawDisconnection", reason)
	}
	if !o.a.hasAdmins() {
		return
	}
	now := timestamp(time.Now())
	nsp := s.Namespace().Name()
	o.a.broadcast("socket_disconnected", nsp, s.ID(), reason, now)
	// The UI drops a room once its last socket left it.
	for _, r := range rooms {
		o.a.broadcast("room_left", nsp, r, s.ID(), now)
	}
}

func (o observer) RoomsJoined(s *socketio.Socket, rooms []string) {
	if !o.a.hasAdmins() {
		return
	}
	now := timestamp(time.Now())
	for _, r := range rooms {
		o.a.broadcast("room_joined", s.Namespace().Name(), r, s.ID(), now)
	}
}

func (o observer) RoomLeft(s *socketio.Socket, room string) {
	if o.a.hasAdmins() {
		o.a.broadcast("room_left", s.Namespace().Name(), room, s.ID(), timestamp(time.Now()))
	}
}

func (a *AdminUI) hasAdmins() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.admins) > 0
}
