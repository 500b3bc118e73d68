package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an Engine.IO v4 server; mount it as an http.Handler at Config.Path.
type Server struct {
	cfg       Config
	onSession func(*Session)
	log       *slog.Logger

	// Control packets are immutable and shared by every session, like any
	// other packet, so their frames are built once per server.
	pingPkt  *Packet
	noopPkt  *Packet
	closePkt *Packet
	probePkt *Packet

	hb *heartbeats
	// shards write the WebSocket sessions' queues, one goroutine per CPU.
	shards    []*writeShard
	nextShard atomic.Uint32

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	// refusedOrigins are the origins already reported to OnRefusedOrigin.
	refusedOrigins firstSeen[string]
	// pending are the sessions not admitted yet (see admission.go);
	// hinted the peers already named in a hint about proxies.
	pending pendingSet
	hinted  firstSeen[netip.Addr]

	// poll is the idle-connection poller, made with the first WebSocket;
	// pollErr says why there is none.
	poll    *poller
	pollErr error

	// Recent handshake queries by their raw form, two generations, so
	// sessions that sent the same one share its map (see sharedQuery).
	qmu                  sync.Mutex
	queries, prevQueries map[string]url.Values

	// Counters for Stats beyond the open sessions' own.
	closedStats Stats
	late        lateCounts
	slowCuts    atomic.Uint64
	queueDrops  atomic.Uint64
	refused     refusalCounts
}

// maxReported bounds the keys a firstSeen remembers.
const maxReported = 64

// firstSeen makes a report once per key (a refused origin, a peer to hint
// about), remembering at most maxReported keys so that a stream of
// distinct ones cannot grow it; past that nothing more is reported. The
// caller holds Server.mu.
type firstSeen[K comparable] struct{ seen map[K]bool }

// first reports whether k is to be reported now: not seen before, and
// room to remember it.
func (f *firstSeen[K]) first(k K) bool {
	if f.seen[k] || len(f.seen) >= maxReported {
		return false
	}
	if f.seen == nil {
		f.seen = map[K]bool{}
	}
	f.seen[k] = true
	return true
}

// NewServer returns a server; onSession runs once per new session after the
// handshake and must call SetHandlers.
func NewServer(cfg Config, onSession func(s *Session)) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		onSession: onSession,
		log:       cfg.Logger,
		pingPkt:   newControl(typePing, ""),
		noopPkt:   newControl(typeNoop, ""),
		closePkt:  newControl(typeClose, ""),
		probePkt:  newControl(typePong, "probe"),
		sessions:  make(map[string]*Session),
	}
	s.shards = newWriteShards(runtime.GOMAXPROCS(0), cfg.WriteDelay)
	s.hb = newHeartbeats((*Session).onPingDue, (*Session).onPongDue)
	return s
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = "/socket.io/"
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1e6
	}
	if c.UpgradeTimeout <= 0 {
		c.UpgradeTimeout = 10 * time.Second
	}
	switch {
	case c.FrameTimeout == 0:
		c.FrameTimeout = DefaultFrameTimeout
	case c.FrameTimeout < 0:
		c.FrameTimeout = 0
	}
	c.KeepHeaders = canonicalHeaders(c.KeepHeaders)
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerAddress == 0 {
		c.MaxPendingPerAddress = DefaultMaxPendingPerAddress
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 1024
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = 128 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Config returns the settings with defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Engine.IO error codes and messages, as the reference server answers them.
const (
	errUnknownTransport = 0
	errUnknownSID       = 1
	errBadHandshake     = 2
	errBadRequest       = 3
	errForbidden        = 4
	errUnsupportedProto = 5
)

var errorMessages = [...]string{
	errUnknownTransport: "Transport unknown",
	errUnknownSID:       "Session ID unknown",
	errBadHandshake:     "Bad handshake method",
	errBadRequest:       "Bad request",
	errForbidden:        "Forbidden",
	errUnsupportedProto: "Unsupported protocol version",
}

// abort answers a request the server refuses. Upgrade requests get a plain
// text body like the reference server's abortUpgrade; others get JSON.
func abort(w http.ResponseWriter, r *http.Request, code int) {
	status := http.StatusBadRequest
	if code == errForbidden {
		status = http.StatusForbidden
	}
	// A refused request's connection is not kept for another.
	w.Header().Set("Connection", "close")
	if isWebSocketUpgrade(r) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(errorMessages[code]))
		return
	}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, errorMessages[code]})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// ServeHTTP answers Engine.IO requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != s.cfg.Path && p != strings.TrimSuffix(s.cfg.Path, "/") {
		http.NotFound(w, r)
		return
	}
	if !s.applyCORS(w, r) {
		abort(w, r, errForbidden)
		return
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	// The constants, not the query's string: a session keeps its
	// transport name, and the query's strings hold the request line.
	var transport string
	switch q.Get("transport") {
	case "polling":
		transport = "polling"
	case "websocket":
		transport = "websocket"
	default:
		abort(w, r, errUnknownTransport)
		return
	}
	upgrade := isWebSocketUpgrade(r)
	if transport == "websocket" && !upgrade {
		abort(w, r, errBadRequest)
		return
	}
	if transport == "polling" && upgrade {
		abort(w, r, errBadRequest)
		return
	}
	if sid := q.Get("sid"); sid != "" {
		sess := s.lookup(sid)
		if sess == nil {
			abort(w, r, errUnknownSID)
			return
		}
		if transport == "websocket" {
			s.upgradeSession(sess, w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			sess.handlePoll(w, r)
		case http.MethodPost:
			sess.handlePost(w, r)
		default:
			abort(w, r, errBadRequest)
		}
		return
	}
	if r.Method != http.MethodGet {
		abort(w, r, errBadHandshake)
		return
	}
	if q.Get("EIO") != "4" {
		abort(w, r, errUnsupportedProto)
		return
	}
	s.handshake(w, r, transport, q)
}

// applyCORS sets the CORS headers for an allowed origin and reports whether
// the request may proceed. Requests without Origin (non-browser clients) and
// same-origin requests always may; a cross-origin request must be on the
// allow-list, for WebSocket too, where browsers do not enforce CORS.
func (s *Server) applyCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	credentialed := slices.Contains(s.cfg.CredentialedOrigins, origin)
	if !credentialed && !s.originAllowed(origin) {
		if sameOrigin(origin, r) {
			return true
		}
		s.reportRefusedOrigin(origin)
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if s.cfg.AllowCredentials || credentialed {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if reqH := r.Header.Get("Access-Control-Request-Headers"); reqH != "" {
			h.Set("Access-Control-Allow-Headers", reqH)
		}
	}
	return true
}

func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return false
}

// sameOrigin reports whether origin is the request's own: same scheme,
// host and port (a default port spelled out or not).
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := requestScheme(r)
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(hostPort(u.Host, u.Scheme), hostPort(r.Host, scheme))
}

// requestScheme is https for TLS, else what the proxy in front said in
// X-Forwarded-Proto (a browser cannot set it on a WebSocket handshake, nor
// on a cross-origin request without a preflight, which this check answers
// without it), else http.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.TrimSpace(p) != "" {
		return strings.ToLower(strings.TrimSpace(p))
	}
	return "http"
}

// hostPort spells out the scheme's default port.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if strings.EqualFold(scheme, "https") {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

func (s *Server) reportRefusedOrigin(origin string) {
	if s.cfg.OnRefusedOrigin == nil {
		return
	}
	s.mu.Lock()
	report := s.refusedOrigins.first(origin)
	s.mu.Unlock()
	if report {
		s.cfg.OnRefusedOrigin(origin)
	}
}

// newSessionID returns 120 random bits, URL-safe, behind the configured
// prefix.
func (s *Server) newSessionID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return s.cfg.SIDPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// openPacket is the handshake packet, specific to one session.
func (s *Server) openPacket(sid string, upgrades bool) *Packet {
	var up []string
	if upgrades {
		up = []string{"websocket"}
	} else {
		up = []string{}
	}
	body, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}{sid, up, s.cfg.PingInterval.Milliseconds(), s.cfg.PingTimeout.Milliseconds(), s.cfg.MaxPayload})
	return &Packet{typ: typeOpen, data: body}
}

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, transport string, q url.Values) {
	sid, err := s.newSessionID()
	if err != nil {
		s.log.Error("engine.io handshake", "err", err)
		abort(w, r, errBadRequest)
		return
	}
	sess := newSession(s, sid, nil, transport)
	client := s.clientAddr(r)
	s.mu.Lock()
	why := s.addPendingLocked(sess, addrKey(client))
	s.mu.Unlock()
	if why != refuseNone {
		s.refuse(w, r, why, client)
		return
	}
	sess.handshake = &HandshakeInfo{
		Header:     keptHeader(r.Header, s.cfg.KeepHeaders),
		Query:      s.sharedQuery(r.URL.RawQuery, q),
		RemoteAddr: r.RemoteAddr,
		Transport:  transport,
	}
	if transport == "websocket" {
		s.acceptWebSocket(sess, w, r)
		return
	}
	if !s.register(sess) {
		abort(w, r, errBadRequest)
		return
	}
	s.keepAliveIfAdmitted(w, r, sess)
	s.writeDeadline(w)
	// The heartbeat starts before the open packet leaves, as in the
	// reference server, so the client's clock never runs ahead of ours.
	sess.start()
	body := appendPayload(nil, []*Packet{s.openPacket(sid, true)})
	_ = writePollResponse(w, body)
}

// queryGeneration bounds each generation of the query cache.
const queryGeneration = 256

// sharedQuery returns the kept form of a handshake's query, the same map
// for every session whose handshake sent the same query string: clients of
// one application mostly send the same few (EIO=4&transport=websocket),
// and a map is the largest part of an idle session after its connection.
// Queries that differ every time (a polling cache-buster) only cycle
// through the cache: a full generation replaces the older one.
func (s *Server) sharedQuery(raw string, parsed url.Values) url.Values {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if v, ok := s.queries[raw]; ok {
		return v
	}
	v, ok := s.prevQueries[raw]
	if !ok {
		v = keptQuery(parsed)
	}
	if len(s.queries) >= queryGeneration || s.queries == nil {
		s.prevQueries, s.queries = s.queries, make(map[string]url.Values)
	}
	// A copy: raw points into the request line.
	s.queries[strings.Clone(raw)] = v
	return v
}

// register makes the session reachable by id; it fails once the server is
// closed, or when the session was closed while onSession had it.
// onSession runs first so handlers are in place before any request
// naming the sid can deliver a message.
func (s *Server) register(sess *Session) bool {
	if s.onSession != nil {
		s.onSession(sess)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.dropPendingLocked(sess)
		return false
	}
	// onSession hands the session out before it is in the map, so it can
	// be closed already; its unregister then found nothing to remove, and
	// inserting it now would keep it (and count it as open) for ever.
	sess.mu.Lock()
	closed := sess.closed
	sess.mu.Unlock()
	if closed {
		s.foldStatsLocked(sess)
		s.dropPendingLocked(sess)
		return false
	}
	s.sessions[sess.id] = sess
	return true
}

func (s *Server) unregister(sess *Session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		s.foldStatsLocked(sess)
	}
	s.dropPendingLocked(sess)
	s.mu.Unlock()
}

// shardFor spreads new sessions over the write shards.
func (s *Server) shardFor() *writeShard {
	return s.shards[int(s.nextShard.Add(1))%len(s.shards)]
}

// poller returns the server's idle-connection poller, starting it on first
// use; nil where there is none (then readers wait on goroutines).
func (s *Server) poller() *poller {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poll == nil && s.pollErr == nil && !s.closed {
		s.poll, s.pollErr = newPoller()
		if s.pollErr != nil && !errors.Is(s.pollErr, errNoPoller) {
			s.log.Warn("engine.io: idle connections will each hold a reader goroutine", "err", s.pollErr)
		}
	}
	return s.poll
}

// Close closes every session with reason "server shutting down".
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	p := s.poll
	s.mu.Unlock()
	for _, sess := range all {
		sess.Close("server shutting down")
	}
	if p != nil {
		// The closing handshakes still need their readers: the poller
		// stops once they are over (or cut off).
		time.AfterFunc(2*closeGrace, p.close)
	}
	for _, w := range s.shards {
		w.close()
	}
}

// SessionCount returns the number of open sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// writePollResponse answers a poll with body and reports whether it all
// reached the connection (within the write deadline the caller set).
func writePollResponse(w http.ResponseWriter, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

func (s *Server) lookup(sid string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sid]
}
