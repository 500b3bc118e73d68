// Package socketio is a Socket.IO v5 server on top of package engineio, for
// the official socket.io-client v4.
//
// A Server has namespaces ("/" always; others via Of). Each namespace runs
// its middlewares on CONNECT (refusals reach the client's connect_error with
// the exact message), then its OnConnection handlers, where event handlers
// are registered with Socket.On. Events and acknowledgements flow both ways,
// binary attachments included; see Args for how arguments are represented.
//
// Broadcasts (Namespace.To/Except/Emit, Socket.To/Broadcast) encode the
// packet once into Engine.IO packets and hand the same packets to every
// receiving session: the cost per receiver is one Session.Send, with no
// allocation. Rooms and delivery belong to the namespace's Adapter.
package socketio

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Config holds the server settings. Zero values take the defaults noted.
type Config struct {
	EngineIO engineio.Config
	// ConnectTimeout closes sessions that have not joined a namespace (a
	// CONNECT its middlewares accepted) by then. Default
	// DefaultConnectTimeout: a legitimate client sends its CONNECT as soon
	// as the session opens, and until it is accepted the session is one
	// that anybody could open (Node's default is 45s).
	ConnectTimeout time.Duration
	// Limits cap binary attachments per packet (default 10, 1e6 bytes).
	Limits parser.Limits
	// NewAdapter builds each namespace's adapter; default NewMemoryAdapter.
	NewAdapter func(*Namespace) Adapter
	// Recovery, when set, turns on connection state recovery (see Recovery).
	Recovery *Recovery
	Logger   *slog.Logger
}

// Server is a Socket.IO server; mount it (it is an http.Handler) at the
// Engine.IO path.
type Server struct {
	cfg Config
	eio *engineio.Server
	log *slog.Logger

	mu   sync.RWMutex
	nsps map[string]*Namespace
	obs  observers

	stopRefresh chan struct{}
	refreshDone chan struct{}

	connectTimeouts atomic.Uint64
}

// DefaultConnectTimeout is Config.ConnectTimeout's default.
const DefaultConnectTimeout = 10 * time.Second

// NewServer returns a server with the "/" namespace.
func NewServer(cfg Config) *Server {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EngineIO.Logger == nil {
		cfg.EngineIO.Logger = cfg.Logger
	}
	if r := cfg.Recovery; r != nil {
		rc := *r
		if rc.MaxDisconnection <= 0 {
			rc.MaxDisconnection = 2 * time.Minute
		}
		if rc.MaxHistoryBytes <= 0 {
			rc.MaxHistoryBytes = 16 << 20
		}
		cfg.Recovery = &rc
	}
	s := &Server{cfg: cfg, log: cfg.Logger, nsps: make(map[string]*Namespace)}
	s.nsps["/"] = newNamespace(s, "/")
	s.eio = engineio.NewServer(cfg.EngineIO, func(sess *engineio.Session) { newClient(s, sess) })
	if cfg.Recovery != nil {
		s.stopRefresh = make(chan struct{})
		s.refreshDone = make(chan struct{})
		go s.refreshSessions(cfg.Recovery.MaxDisconnection / 4)
	}
	return s
}

// refreshSessions saves the state of every connected socket again before
// its stored copy expires, so a session stays recoverable for the whole
// window after its instance dies without seeing the disconnect.
func (s *Server) refreshSessions(every time.Duration) {
	defer close(s.refreshDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopRefresh:
			return
		case <-t.C:
		}
		s.mu.RLock()
		nsps := make([]*Namespace, 0, len(s.nsps))
		for _, n := range s.nsps {
			nsps = append(nsps, n)
		}
		s.mu.RUnlock()
		for _, n := range nsps {
			n.mu.RLock()
			socks := make([]*Socket, 0, len(n.sockets))
			for _, so := range n.sockets {
				socks = append(socks, so)
			}
			n.mu.RUnlock()
			for _, so := range socks {
				so.persist(nil, false)
			}
		}
	}
}

// ServeHTTP serves the Engine.IO endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.eio.ServeHTTP(w, r) }

// Recovery reports whether connection state recovery is on.
func (s *Server) Recovery() bool { return s.cfg.Recovery != nil }

// EngineIO returns the underlying Engine.IO server.
func (s *Server) EngineIO() *engineio.Server { return s.eio }

// Of returns the namespace name, creating it on first use ("admin" and
// "/admin" are the same).
func (s *Server) Of(name string) *Namespace {
	name = normalizeNamespace(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsps[name]
	if n == nil {
		n = newNamespace(s, name)
		s.nsps[name] = n
	}
	return n
}

// Sockets is the "/" namespace.
func (s *Server) Sockets() *Namespace { return s.Of("/") }

// namespace returns an existing namespace or nil.
func (s *Server) namespace(name string) *Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nsps[name]
}

// Lookup returns an existing namespace, or nil when none has that name.
func (s *Server) Lookup(name string) *Namespace {
	return s.namespace(normalizeNamespace(name))
}

// normalizeNamespace makes "" and "admin" mean "/" and "/admin", as the
// client writes them on the wire.
func normalizeNamespace(name string) string {
	if !strings.HasPrefix(name, "/") {
		return "/" + name
	}
	return name
}

// Close closes every session; sockets see "server shutting down".
func (s *Server) Close() {
	if s.stopRefresh != nil {
		select {
		case <-s.stopRefresh:
		default:
			close(s.stopRefresh)
			<-s.refreshDone
		}
	}
	s.eio.Close()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.nsps {
		if err := n.adapter.Close(); err != nil {
			s.log.Warn("close adapter", "nsp", n.name, "err", err)
		}
	}
}
