// Package engineio implements the server side of the Engine.IO v4 protocol
// (EIO=4): the handshake, the WebSocket and HTTP long-polling transports, the
// upgrade from polling to WebSocket, and the heartbeat.
//
// Its one job is moving opaque messages between the Socket.IO layer and a
// browser. The unit of sending is a *Packet that is encoded once and shared by
// every session it is sent to, so a broadcast to N sessions costs one encode.
package engineio

import (
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Config holds the server settings. Zero values take the defaults noted.
type Config struct {
	Path         string        // default "/socket.io/"
	PingInterval time.Duration // default 25s
	PingTimeout  time.Duration // default 20s
	// MaxPayload is the largest message a client may send (Node's
	// maxHttpBufferSize): a WebSocket message is refused on its frame
	// header, before anything is allocated for it, a polling POST on its
	// Content-Length or once its body passes the limit. Default 1e6 bytes.
	MaxPayload     int64
	UpgradeTimeout time.Duration // default 10s
	// FrameTimeout bounds a WebSocket message once it has started to
	// arrive: a client that sends part of a message and then stalls has
	// its connection closed (1008) instead of holding a reader and a
	// buffer. Default 10s; negative: no bound.
	FrameTimeout time.Duration
	// AllowedOrigins is the CORS allow-list; "*" allows any origin. Empty
	// means no CORS headers are sent (same-origin only). A request from
	// its own origin (same scheme, host and port) is always allowed.
	AllowedOrigins []string
	// OnRefusedOrigin, when set, is told each origin refused, once per
	// origin (the first 64 distinct ones), so an operator learns what to
	// add to the allow-list without a log line per request.
	OnRefusedOrigin func(origin string)
	// AllowCredentials adds Access-Control-Allow-Credentials: true for
	// allowed origins (the origin is echoed, never "*").
	AllowCredentials bool
	// CredentialedOrigins are allowed too, with credentials, whatever
	// AllowCredentials says: for a tool that connects withCredentials from
	// its own origin (the Socket.IO Admin UI), without allowing
	// credentials to the application's origins.
	CredentialedOrigins []string
	// SendQueue bounds the packets queued per session; a session whose queue
	// overflows has its transport closed with reason "slow consumer".
	// Default 1024.
	SendQueue int
	// SendBuffer is the kernel send buffer (SO_SNDBUF) of each WebSocket
	// connection, in bytes. Bounding it makes SendQueue the real limit: with
	// Linux autotuning a peer that stops reading can park megabytes in the
	// kernel before the queue sees any backlog. Default 128 KiB (Linux
	// doubles the value for its bookkeeping); negative leaves the kernel's
	// autotuned default.
	SendBuffer int
	// WriteDelay, when positive, holds back the start of an idle WebSocket
	// session's writes for up to this long, so events that follow within
	// it leave in the same writev: fewer system calls per delivered event
	// at high event rates, for up to WriteDelay of added latency. Default
	// 0: writes start at once.
	WriteDelay time.Duration
	// KeepHeaders names the request headers (canonical form) a session
	// keeps from its handshake for the application: Socket.IO
	// middlewares, fetchSockets answers, the Admin UI. The rest are
	// dropped once the handshake is answered. Empty keeps every header
	// but the upgrade mechanics, as Node does, ClientHeaders first. What
	// is kept is bounded either way: 4 KiB of header values and 1 KiB of
	// query parameters (what does not fit whole is left out, in the order
	// named), so what a client sends costs its session at most that.
	KeepHeaders []string

	// Limits for what a client that has not been admitted (see
	// Session.Admit) may hold. A handshake beyond them is refused: 503
	// past MaxPending, 429 past MaxPendingPerAddress, both with
	// Retry-After, so the official client retries with its backoff.
	//
	// MaxPending caps the sessions not admitted yet, overall. Default
	// DefaultMaxPending; negative: no cap.
	MaxPending int
	// MaxPendingPerAddress caps them per client address (an IPv6 client
	// by its /64). Default DefaultMaxPendingPerAddress; negative: no cap.
	MaxPendingPerAddress int
	// TrustedProxies are the peers whose X-Forwarded-For names the client:
	// behind them, the client address is the right-most address in it
	// that is not itself a trusted proxy. From any other peer the header
	// is ignored (anyone can send it) and the peer is the client. Default
	// none.
	TrustedProxies []netip.Prefix

	// Limits of the HTTP server that HTTPServer builds, and of the polling
	// transport's requests.
	//
	// MaxHeaderBytes caps a request's line and headers; beyond it (and
	// the up to 4 KiB Go's reader takes ahead) the request is answered 431
	// and the connection closed. Default DefaultMaxHeaderBytes (16 KiB,
	// Node's default).
	MaxHeaderBytes int
	// HeaderTimeout bounds reading a request's line and headers, from the
	// first byte of the request (or from accepting the connection).
	// Default 10s.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has not started its
	// next request by then. Default 75s: longer than the 60s for which
	// nginx and the usual cloud load balancers keep an idle upstream
	// connection, so the proxy, not walcast, closes it first and never
	// sends a request on a connection that is being closed.
	IdleTimeout time.Duration
	// BodyTimeout bounds reading a polling POST's body, and writing a
	// poll's answer, so a client that trickles its body or never reads
	// cannot hold a request. Default 10s.
	BodyTimeout time.Duration

	// SIDPrefix is prepended to every session id (sticky routing).
	SIDPrefix string
	Logger    *slog.Logger
}

// HandshakeInfo is what the first HTTP request of a session carried. Header
// leaves out the headers that only performed the WebSocket upgrade
// (Connection, Upgrade, Sec-WebSocket-Key, -Version, -Extensions); a
// session lives long, and they are of no use after it opened. Query is
// shared by the sessions whose handshakes sent the same query string: read
// Header and Query, never modify them.
type HandshakeInfo struct {
	Header     http.Header
	Query      url.Values
	RemoteAddr string
	Transport  string // "polling" or "websocket" at handshake time
}

// Handlers receive a session's traffic. OnMessage is called sequentially,
// never concurrently for one session; data must not be retained after it
// returns. OnClose is called exactly once.
type Handlers struct {
	OnMessage func(data []byte, binary bool)
	OnClose   func(reason string)
}

// The exported API (implemented in server.go, session.go, packet.go;
// transports in polling.go and websocket.go):
//
//	func NewServer(cfg Config, onSession func(s *Session)) *Server
//	    onSession runs once per new session, after the handshake, before any
//	    message is delivered; it must call s.SetHandlers.
//	func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request)
//	func (s *Server) Close()                       // closes every session, reason "server shutting down"
//	func (s *Server) Config() Config               // with defaults applied
//	func (s *Server) SessionCount() int            // open sessions (added)
//	func (s *Server) Stats() Stats                 // delivery counters, summed when asked (added)
//
//	func (s *Session) ID() string
//	func (s *Session) Handshake() *HandshakeInfo
//	func (s *Session) Transport() string           // current: "polling" or "websocket"
//	func (s *Session) SetHandlers(h Handlers)
//	func (s *Session) Send(pkts ...*Packet) bool   // enqueue all or none, never blocks;
//	                                               // false when closed or queue overflow (session then closed)
//	func (s *Session) Close(reason string)         // closes the transport; OnClose(reason) follows
//	func (s *Session) Cork(); (s *Session) Uncork() // hold sends back, then release them together (added)
//
//	func NewMessage(payload []byte) *Packet        // Engine.IO "message" (type 4) carrying text
//	func NewBinaryMessage(payload []byte) *Packet  // Engine.IO "message" carrying binary
//	    A Packet is immutable after creation; its WebSocket frame bytes and
//	    its long-polling encoding are computed at most once each, on first
//	    use, and shared by every session it is sent to. The payload is not
//	    copied: do not modify it after creating the packet.
//
// Cross-origin requests (an Origin header naming another scheme, host or
// port than the request's) are refused with 403 {"code":4} unless the origin
// is in AllowedOrigins; requests without Origin (non-browser clients) are
// always allowed. The request's scheme is https over TLS, else the first
// X-Forwarded-Proto a proxy set, else http.

// Defaults of the limits in Config.
const (
	DefaultFrameTimeout         = 10 * time.Second
	DefaultMaxPending           = 1000
	DefaultMaxPendingPerAddress = 100
	DefaultMaxHeaderBytes       = 16 << 10
	DefaultHeaderTimeout        = 10 * time.Second
	DefaultIdleTimeout          = 75 * time.Second
	DefaultBodyTimeout          = 10 * time.Second
)
