package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/gateway"
	"github.com/walcast/walcast/locks"
)

// settings is everything `walcast serve` can be told, from flags and the
// environment (flags win).
type settings struct {
	DatabaseURL     string
	JWTSecret       string
	JWTPublicKey    string // path to a PEM file
	JWTAlgorithm    string
	RedisURL        string
	RedisAdapter    string // "streams" or "pubsub"
	StreamWindow    time.Duration
	RecoveryWindow  time.Duration // 0: connection state recovery off
	WriteDelay      time.Duration // 0: a socket's writes start at once
	Listen          string
	Path            string
	CORSOrigins     []string
	ConfigFile      string
	Publication     string
	Slot            string
	RecreateSlot    bool
	LogLevel        slog.Level
	LogFormat       string
	ExpiryWarning   time.Duration
	LockTTL         time.Duration
	LockRenew       bool
	LockReleaseOnDC bool
	LockRate        float64 // lock calls per second per socket
	LockBurst       int
	MaxRooms        int // rooms a socket may join itself
	// Limits on what a client costs before it authenticates (0 for the
	// counts: no cap).
	MaxPayload           int64
	FrameTimeout         time.Duration
	MaxHeaderBytes       int
	HeaderTimeout        time.Duration
	BodyTimeout          time.Duration
	IdleTimeout          time.Duration
	ConnectTimeout       time.Duration
	MaxPending           int
	MaxPendingPerAddress int
	TrustedProxies       []netip.Prefix
	// InstanceID starts every Engine.IO session id this process hands out,
	// so a proxy can send a session's later requests back here.
	InstanceID string
	// AdminListen is the operator listener's address (/metrics); empty
	// when off, and then nothing is counted at all.
	AdminListen string
	AdminPprof  bool
	// The Admin UI's /admin namespace, served when a username is set.
	AdminUIUsername     string
	AdminUIPasswordHash string
	AdminUIAllowChanges bool
	AdminUIOrigins      []string
}

// setting is one setting of `walcast serve`, written once: its flag, its
// environment variable, its default, how its value is read and its help.
type setting struct {
	flag, env string
	arg       string // what the value is, for the help ("URL", "DURATION"); empty for on/off settings
	def       string // the default, read like a given value; empty: none
	defText   string // the default in words, when def does not say it
	usage     string
	apply     func(s *settings, v string, as setting) error
}

func (st setting) boolean() bool { return st.arg == "" }

// serveSettings is every setting, in the order the help lists them.
var serveSettings = []setting{
	{flag: "database-url", env: "DATABASE_URL", arg: "URL", defText: "required",
		usage: "PostgreSQL URL of a role with REPLICATION; wal_level must be logical",
		apply: text(func(s *settings) *string { return &s.DatabaseURL })},
	{flag: "jwt-secret", env: "JWT_SECRET", arg: "SECRET", defText: "required unless --jwt-public-key",
		usage: "HS256 secret the app signs its tokens with",
		apply: func(s *settings, v string, _ setting) error { s.JWTSecret = v; return nil }}, // taken verbatim
	{flag: "jwt-public-key", env: "JWT_PUBLIC_KEY_FILE", arg: "FILE",
		usage: "PEM public key file for RS256/ES256 tokens",
		apply: text(func(s *settings) *string { return &s.JWTPublicKey })},
	{flag: "jwt-algorithm", env: "JWT_ALGORITHM", arg: "ALG", defText: "HS256, or RS256 with a public key",
		usage: "the one accepted token algorithm: HS256, RS256 or ES256",
		apply: func(s *settings, v string, _ setting) error {
			s.JWTAlgorithm = strings.ToUpper(strings.TrimSpace(v))
			return nil
		}},
	{flag: "redis-url", env: "REDIS_URL", arg: "URL", defText: "unset: one instance, locks in memory",
		usage: "Redis URL (redis://, rediss:// or unix://) joining several instances",
		apply: redisURL},
	{flag: "redis-adapter", env: "WALCAST_REDIS_ADAPTER", arg: "NAME", def: string(broadcast.AdapterStreams),
		usage: "how instances share events through Redis: streams (a fenced Redis stream, " +
			"@socket.io/redis-streams-adapter 0.3 compatible: each change delivered exactly once across a reader failover) " +
			"or pubsub (@socket.io/redis-adapter 8 compatible, reachable by @socket.io/redis-emitter; at least once: " +
			"a failover can deliver the last transactions twice, an instance cut off from Redis misses what is published " +
			"meanwhile, revocations are disconnect requests on the request channel, equally unkept); needs --redis-url",
		apply: redisAdapter},
	{flag: "stream-window", env: "WALCAST_STREAM_WINDOW", arg: "DURATION", def: durationText(redisadapter.DefaultStreamWindow),
		usage: "how long events stay in the Redis stream (trimmed by age with XADD MINID, not by count)",
		apply: duration(func(s *settings) *time.Duration { return &s.StreamWindow }, positive)},
	{flag: "recovery-window", env: "WALCAST_RECOVERY_WINDOW", arg: "DURATION", def: durationText(gateway.DefaultRecoveryWindow),
		usage: "how long a disconnected client may come back and receive what it missed (socket.recovered); 0 turns recovery off. " +
			"Broadcasts carry an offset as an extra last argument (handlers written for the contract ignore it) " +
			"and sockets get " + gateway.EventOffset + " at connect and every " + durationText(gateway.OffsetInterval),
		apply: duration(func(s *settings) *time.Duration { return &s.RecoveryWindow }, nonNegative)},
	{flag: "instance-id", env: "WALCAST_INSTANCE_ID", arg: "ID", defText: "random per process",
		usage: "1-16 letters or digits naming this instance; session ids start with it and a dot, " +
			"so a proxy can route a session's requests back (see deploy/nginx.conf)",
		apply: instanceID},
	{flag: "listen", env: "WALCAST_LISTEN", arg: "ADDR", def: defaultListen,
		usage: "HTTP listen address",
		apply: text(func(s *settings) *string { return &s.Listen })},
	{flag: "path", env: "WALCAST_PATH", arg: "PATH", def: broadcast.DefaultPath,
		usage: "Socket.IO path",
		apply: socketPath},
	{flag: "write-delay", env: "WALCAST_WRITE_DELAY", arg: "DURATION", def: "0",
		usage: "how long an idle socket's writes wait for more events to leave in the same system call: " +
			"less CPU per delivered event when each socket gets several events per interval, " +
			"for up to this much added latency (0 to 1s; 0 writes at once)",
		apply: writeDelay},
	{flag: "cors-origins", env: "WALCAST_CORS_ORIGINS", arg: "LIST", def: "*",
		usage: "comma-separated browser origins allowed besides the page's own (same scheme, host and port), or * for any. " +
			"Any is the default, as in the original: authentication is a token in the handshake, never a cookie, " +
			"so a page of another site gains nothing from a visitor's browser; a refused origin is logged once with this setting",
		apply: corsOrigins},
	{flag: "config", env: "WALCAST_CONFIG", arg: "FILE", defText: "the built-in GraceGiver profile",
		usage: "YAML routing file",
		apply: text(func(s *settings) *string { return &s.ConfigFile })},
	{flag: "publication", env: "WALCAST_PUBLICATION", arg: "NAME", def: cdc.DefaultPublication,
		usage: "publication name",
		apply: text(func(s *settings) *string { return &s.Publication })},
	{flag: "slot", env: "WALCAST_SLOT", arg: "NAME", def: cdc.DefaultSlot,
		usage: "replication slot name",
		apply: text(func(s *settings) *string { return &s.Slot })},
	{flag: "recreate-slot", env: "WALCAST_RECREATE_SLOT", def: "false",
		usage: "accept that changes were lost when the slot is gone: create a new one and tell clients to refetch",
		apply: boolean(func(s *settings) *bool { return &s.RecreateSlot })},
	{flag: "log-level", env: "WALCAST_LOG_LEVEL", arg: "LEVEL", def: "info",
		usage: "debug, info, warn or error",
		apply: logLevel},
	{flag: "log-format", env: "WALCAST_LOG_FORMAT", arg: "FORMAT", def: "text",
		usage: "text or json",
		apply: logFormat},
	{flag: "token-expiry-warning", env: "WALCAST_TOKEN_EXPIRY_WARNING", arg: "DURATION", def: durationText(gateway.DefaultExpiryWarning),
		usage: "how long before a token expires its socket gets auth:expiring",
		apply: duration(func(s *settings) *time.Duration { return &s.ExpiryWarning }, positive)},
	{flag: "lock-ttl", env: "WALCAST_LOCK_TTL", arg: "DURATION", def: durationText(locks.DefaultTTL),
		usage: "record lock lifetime",
		apply: duration(func(s *settings) *time.Duration { return &s.LockTTL }, positive)},
	{flag: "lock-renew", env: "WALCAST_LOCK_RENEW", def: "false",
		usage: "extend a connected holder's locks before they expire",
		apply: boolean(func(s *settings) *bool { return &s.LockRenew })},
	{flag: "lock-release-on-disconnect", env: "WALCAST_LOCK_RELEASE_ON_DISCONNECT", def: "false",
		usage: "release a socket's locks once it has been gone for the recovery window (2m when recovery is off) " +
			"without resuming its session on any instance",
		apply: boolean(func(s *settings) *bool { return &s.LockReleaseOnDC })},
	{flag: "lock-rate", env: "WALCAST_LOCK_RATE", arg: "N", def: strconv.FormatFloat(gateway.DefaultLockRate, 'g', -1, 64),
		usage: "lock calls (lock:acquire, lock:release, lock:check together) a socket may make per second on average; " +
			"beyond it they are answered {success: false, error: \"rate limited\"}. Each acquire or release announces a " +
			"lock:update to every client, so this bounds what one socket can make walcast send",
		apply: positiveFloat(func(s *settings) *float64 { return &s.LockRate })},
	{flag: "lock-burst", env: "WALCAST_LOCK_BURST", arg: "N", def: strconv.Itoa(gateway.DefaultLockBurst),
		usage: "lock calls a socket may make at once above --lock-rate",
		apply: positiveInt(func(s *settings) *int { return &s.LockBurst })},
	{flag: "max-rooms", env: "WALCAST_MAX_ROOMS", arg: "N", def: strconv.Itoa(gateway.DefaultMaxRooms),
		usage: "rooms a socket may join itself with join_room; beyond it join_room answers " +
			"{success: false, error: \"too many rooms\"}",
		apply: positiveInt(func(s *settings) *int { return &s.MaxRooms })},
	{flag: "max-payload", env: "WALCAST_MAX_PAYLOAD", arg: "BYTES", def: strconv.Itoa(defaultMaxPayload),
		usage: "the largest message a client may send (Node's maxHttpBufferSize); a WebSocket message is refused on its frame header, " +
			"before anything is allocated for it, and its connection closed (1009)",
		apply: func(s *settings, v string, as setting) error {
			var n int
			err := positiveInt(func(*settings) *int { return &n })(s, v, as)
			s.MaxPayload = int64(n)
			return err
		}},
	{flag: "frame-timeout", env: "WALCAST_FRAME_TIMEOUT", arg: "DURATION", def: durationText(engineio.DefaultFrameTimeout),
		usage: "how long a WebSocket message may take to arrive once it has started; a client that stalls mid-message is cut (1008)",
		apply: duration(func(s *settings) *time.Duration { return &s.FrameTimeout }, positive)},
	{flag: "max-header-bytes", env: "WALCAST_MAX_HEADER_BYTES", arg: "BYTES", def: strconv.Itoa(engineio.DefaultMaxHeaderBytes),
		usage: "the largest request line and headers (Go's reader may take up to 4 KiB more); beyond it the request is answered 431",
		apply: positiveInt(func(s *settings) *int { return &s.MaxHeaderBytes })},
	{flag: "header-timeout", env: "WALCAST_HEADER_TIMEOUT", arg: "DURATION", def: durationText(engineio.DefaultHeaderTimeout),
		usage: "how long a request's line and headers may take to arrive, from the connection's start or its next request's first byte",
		apply: duration(func(s *settings) *time.Duration { return &s.HeaderTimeout }, positive)},
	{flag: "body-timeout", env: "WALCAST_BODY_TIMEOUT", arg: "DURATION", def: durationText(engineio.DefaultBodyTimeout),
		usage: "how long a request body (a polling POST) may take to arrive, and a poll's answer to be taken by the client",
		apply: duration(func(s *settings) *time.Duration { return &s.BodyTimeout }, positive)},
	{flag: "idle-timeout", env: "WALCAST_IDLE_TIMEOUT", arg: "DURATION", def: strconv.Itoa(int(engineio.DefaultIdleTimeout/time.Second)) + "s",
		usage: "how long a keep-alive HTTP connection may wait for its next request; keep it above your proxy's upstream idle timeout " +
			"(nginx and cloud load balancers: 60s). Clients that have not authenticated get no keep-alive",
		apply: duration(func(s *settings) *time.Duration { return &s.IdleTimeout }, positive)},
	{flag: "connect-timeout", env: "WALCAST_CONNECT_TIMEOUT", arg: "DURATION", def: durationText(socketio.DefaultConnectTimeout),
		usage: "how long a connection may take to complete its Socket.IO CONNECT with a valid token before it is closed",
		apply: duration(func(s *settings) *time.Duration { return &s.ConnectTimeout }, positive)},
	{flag: "max-pending", env: "WALCAST_MAX_PENDING", arg: "N", def: strconv.Itoa(engineio.DefaultMaxPending),
		usage: "connections that have not authenticated yet, at once; beyond it handshakes are answered 503 and the client retries. 0: no cap",
		apply: nonNegativeInt(func(s *settings) *int { return &s.MaxPending })},
	{flag: "max-pending-per-address", env: "WALCAST_MAX_PENDING_PER_ADDRESS", arg: "N", def: strconv.Itoa(engineio.DefaultMaxPendingPerAddress),
		usage: "connections that have not authenticated yet from one client address (IPv6: one /64); beyond it handshakes are " +
			"answered 429. Behind a proxy, see --trusted-proxies. 0: no cap",
		apply: nonNegativeInt(func(s *settings) *int { return &s.MaxPendingPerAddress })},
	{flag: "trusted-proxies", env: "WALCAST_TRUSTED_PROXIES", arg: "LIST", defText: "none",
		usage: "comma-separated addresses or CIDRs of your proxies: from them, X-Forwarded-For names the client " +
			"(the right-most address in it that is not a trusted proxy); from anyone else the header is ignored",
		apply: trustedProxies},

	// Operating walcast.
	{flag: "admin-listen", env: "WALCAST_ADMIN_LISTEN", arg: "ADDR", def: defaultAdminListen,
		usage: "the operator listener: Prometheus metrics at /metrics (and the profiler with --admin-pprof); " +
			"never the public --listen address; off turns it off and counts nothing",
		apply: adminListen},
	{flag: "admin-pprof", env: "WALCAST_ADMIN_PPROF", def: "false",
		usage: "serve Go's profiler under /debug/pprof/ on the operator listener",
		apply: boolean(func(s *settings) *bool { return &s.AdminPprof })},
	{flag: "admin-ui-username", env: "WALCAST_ADMIN_UI_USERNAME", arg: "NAME", defText: "unset: no Admin UI",
		usage: "serve the Socket.IO Admin UI's /admin namespace on --listen, to this user with --admin-ui-password-hash",
		apply: text(func(s *settings) *string { return &s.AdminUIUsername })},
	{flag: "admin-ui-password-hash", env: "WALCAST_ADMIN_UI_PASSWORD_HASH", arg: "HASH",
		usage: "bcrypt hash of the Admin UI password ($2a$, $2b$ or $2y$, e.g. from htpasswd -nbB admin PASSWORD)",
		apply: bcryptHash},
	{flag: "admin-ui-allow-changes", env: "WALCAST_ADMIN_UI_ALLOW_CHANGES", def: "false",
		usage: "let the Admin UI make sockets join or leave rooms and disconnect them; without it the UI only looks",
		apply: boolean(func(s *settings) *bool { return &s.AdminUIAllowChanges })},
	{flag: "admin-ui-origin", env: "WALCAST_ADMIN_UI_ORIGIN", arg: "LIST", def: defaultAdminUIOrigin, defText: "the hosted UI's",
		usage: "comma-separated origins the Admin UI page is loaded from (default " + defaultAdminUIOrigin + ", the hosted UI); " +
			"allowed with credentials for the /admin namespace only",
		apply: adminUIOrigins},
}

// defaultMaxPayload is Node's maxHttpBufferSize.
const defaultMaxPayload = 1_000_000

const (
	defaultListen        = ":8080"
	defaultAdminListen   = "127.0.0.1:9464"
	defaultAdminUIOrigin = "https://admin.socket.io"
)

// parseServe reads settings for serve from args and env. Unknown flags,
// unknown WALCAST_* variables and contradictions are errors naming the
// setting.
func parseServe(args []string, env []string, stderr io.Writer) (*settings, error) {
	fs := flag.NewFlagSet("walcast serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: walcast serve [flags]\n\n")
		printSettingsUsage(stderr)
	}
	s, problems, err := parseSettings(fs, args, env)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return s, nil
}

// parseSettings reads every setting into s through fs (which may define
// flags of its own): err is what stops the command outright (an unknown
// flag or variable, -h), problems the settings that are wrong, each
// naming itself; s holds what could be read either way.
func parseSettings(fs *flag.FlagSet, args []string, env []string) (s *settings, problems []error, err error) {
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	if unknown := unknownEnv(envMap); len(unknown) > 0 {
		return nil, nil, fmt.Errorf("unknown environment setting %s (known: %s)", strings.Join(unknown, ", "), strings.Join(walcastEnvNames(), ", "))
	}
	vals := make([]*string, len(serveSettings))
	for i, st := range serveSettings {
		v := st.def
		if e, ok := envMap[st.env]; ok {
			v = e
		}
		vals[i] = &v
		if st.boolean() {
			// A boolean flag, so a bare --lock-renew means true; the value
			// is still checked by apply, like the environment's.
			fs.Var(boolFlag{stringFlag{vals[i]}}, st.flag, st.usage)
		} else {
			fs.Var(stringFlag{vals[i]}, st.flag, st.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s = &settings{}
	for i, st := range serveSettings {
		if err := st.apply(s, *vals[i], st); err != nil {
			problems = append(problems, err)
		}
	}
	return s, append(problems, s.contradictions()...), nil
}

// contradictions checks what no single setting can: required settings and
// settings that only make sense together.
func (s *settings) contradictions() []error {
	var errs []error
	if s.DatabaseURL == "" {
		errs = append(errs, errors.New("--database-url (DATABASE_URL) is required"))
	}
	switch {
	case s.JWTSecret == "" && s.JWTPublicKey == "":
		errs = append(errs, errors.New("--jwt-secret (JWT_SECRET) is required unless --jwt-public-key (JWT_PUBLIC_KEY_FILE) is given"))
	case s.JWTSecret != "" && s.JWTPublicKey != "":
		errs = append(errs, errors.New("--jwt-secret and --jwt-public-key contradict each other: give one"))
	}
	switch s.JWTAlgorithm {
	case "":
		s.JWTAlgorithm = "HS256"
		if s.JWTPublicKey != "" {
			s.JWTAlgorithm = "RS256"
		}
	case "HS256":
		if s.JWTPublicKey != "" {
			errs = append(errs, errors.New("--jwt-algorithm HS256 needs --jwt-secret, not --jwt-public-key"))
		}
	case "RS256", "ES256":
		if s.JWTPublicKey == "" {
			errs = append(errs, fmt.Errorf("--jwt-algorithm %s needs --jwt-public-key", s.JWTAlgorithm))
		}
	default:
		errs = append(errs, fmt.Errorf("--jwt-algorithm: %q is not HS256, RS256 or ES256", s.JWTAlgorithm))
	}
	if s.RecoveryWindow > 0 && s.RedisURL != "" && s.RedisAdapter == string(broadcast.AdapterStreams) && s.StreamWindow < s.RecoveryWindow {
		errs = append(errs, fmt.Errorf("--stream-window %s is shorter than --recovery-window %s: the stream would be trimmed before a client comes back", s.StreamWindow, s.RecoveryWindow))
	}
	if s.RedisAdapter == string(broadcast.AdapterPubSub) && s.RedisURL == "" {
		errs = append(errs, errors.New("--redis-adapter (WALCAST_REDIS_ADAPTER) pubsub needs --redis-url (REDIS_URL)"))
	}
	return append(errs, s.adminContradictions()...)
}

// adminContradictions checks the operator settings against each other and
// against the public listener.
func (s *settings) adminContradictions() []error {
	var errs []error
	if s.AdminListen != "" && samePort(s.AdminListen, s.Listen) {
		errs = append(errs, fmt.Errorf("--admin-listen (WALCAST_ADMIN_LISTEN) %s is the public --listen address %s: metrics and the profiler are for operators, never on the public port", s.AdminListen, s.Listen))
	}
	if s.AdminPprof && s.AdminListen == "" {
		errs = append(errs, errors.New("--admin-pprof (WALCAST_ADMIN_PPROF) needs the operator listener, which --admin-listen off turns off"))
	}
	switch {
	case s.AdminUIUsername != "" && s.AdminUIPasswordHash == "":
		errs = append(errs, errors.New("--admin-ui-username (WALCAST_ADMIN_UI_USERNAME) needs --admin-ui-password-hash (WALCAST_ADMIN_UI_PASSWORD_HASH): the Admin UI is never served without a password"))
	case s.AdminUIUsername == "" && s.AdminUIPasswordHash != "":
		errs = append(errs, errors.New("--admin-ui-password-hash (WALCAST_ADMIN_UI_PASSWORD_HASH) needs --admin-ui-username (WALCAST_ADMIN_UI_USERNAME)"))
	}
	if s.AdminUIAllowChanges && s.AdminUIUsername == "" {
		errs = append(errs, errors.New("--admin-ui-allow-changes (WALCAST_ADMIN_UI_ALLOW_CHANGES) needs the Admin UI (--admin-ui-username and --admin-ui-password-hash)"))
	}
	return errs
}

// samePort reports whether two listen addresses would share a port: the
// same port on the same host, or on any host when either listens on all.
func samePort(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	all := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || all(ha) || all(hb)
}

// Readers of setting values. Each error names the setting.

func text(field func(*settings) *string) func(*settings, string, setting) error {
	return func(s *settings, v string, _ setting) error {
		*field(s) = strings.TrimSpace(v)
		return nil
	}
}

func boolean(field func(*settings) *bool) func(*settings, string, setting) error {
	return func(s *settings, v string, as setting) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "", "0", "false", "no", "off":
			*field(s) = false
		case "1", "true", "yes", "on":
			*field(s) = true
		default:
			return fmt.Errorf("--%s: %q is not a boolean", as.flag, strings.TrimSpace(v))
		}
		return nil
	}
}

type durationRange int

const (
	positive durationRange = iota
	nonNegative
)

func duration(field func(*settings) *time.Duration, r durationRange) func(*settings, string, setting) error {
	return func(s *settings, v string, as setting) error {
		v = strings.TrimSpace(v)
		d, err := time.ParseDuration(v)
		switch {
		case r == positive && (err != nil || d <= 0):
			return fmt.Errorf("--%s: %q is not a positive duration (like 30s, 15m)", as.flag, v)
		case r == nonNegative && (err != nil || d < 0):
			return fmt.Errorf("--%s: %q is not a duration (like 0, 2m)", as.flag, v)
		}
		*field(s) = d
		return nil
	}
}

func positiveInt(field func(*settings) *int) func(*settings, string, setting) error {
	return func(s *settings, v string, as setting) error {
		v = strings.TrimSpace(v)
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("--%s (%s): %q is not a positive whole number", as.flag, as.env, v)
		}
		*field(s) = n
		return nil
	}
}

func nonNegativeInt(field func(*settings) *int) func(*settings, string, setting) error {
	return func(s *settings, v string, as setting) error {
		v = strings.TrimSpace(v)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("--%s (%s): %q is not a whole number (0 or more)", as.flag, as.env, v)
		}
		*field(s) = n
		return nil
	}
}

func positiveFloat(field func(*settings) *float64) func(*settings, string, setting) error {
	return func(s *settings, v string, as setting) error {
		v = strings.TrimSpace(v)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return fmt.Errorf("--%s (%s): %q is not a positive number", as.flag, as.env, v)
		}
		*field(s) = f
		return nil
	}
}

func writeDelay(s *settings, v string, as setting) error {
	if err := duration(func(s *settings) *time.Duration { return &s.WriteDelay }, nonNegative)(s, v, as); err != nil {
		return err
	}
	if s.WriteDelay > time.Second {
		return fmt.Errorf("--%s (%s): %s is over 1s: every event would wait that long", as.flag, as.env, s.WriteDelay)
	}
	return nil
}

func redisURL(s *settings, v string, as setting) error {
	s.RedisURL = strings.TrimSpace(v)
	if s.RedisURL != "" && !strings.HasPrefix(s.RedisURL, "redis://") && !strings.HasPrefix(s.RedisURL, "rediss://") && !strings.HasPrefix(s.RedisURL, "unix://") {
		return fmt.Errorf("--%s: %q must start with redis://, rediss:// or unix://", as.flag, s.RedisURL)
	}
	return nil
}

func redisAdapter(s *settings, v string, as setting) error {
	s.RedisAdapter = strings.ToLower(strings.TrimSpace(v))
	switch broadcast.ClusterAdapter(s.RedisAdapter) {
	case broadcast.AdapterStreams, broadcast.AdapterPubSub:
		return nil
	}
	return fmt.Errorf("--%s (%s): %q is not %s or %s", as.flag, as.env, s.RedisAdapter, broadcast.AdapterStreams, broadcast.AdapterPubSub)
}

func instanceID(s *settings, v string, as setting) error {
	s.InstanceID = strings.TrimSpace(v)
	if s.InstanceID == "" {
		s.InstanceID = randomInstanceID()
	} else if !validInstanceID(s.InstanceID) {
		return fmt.Errorf("--%s (%s): %q must be 1-16 letters or digits", as.flag, as.env, s.InstanceID)
	}
	return nil
}

func adminListen(s *settings, v string, as setting) error {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "off") {
		s.AdminListen = ""
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("--%s (%s): %q is not host:port (like 127.0.0.1:9464) or off", as.flag, as.env, v)
	}
	s.AdminListen = v
	return nil
}

// bcryptHash takes the hash verbatim, like a secret, and checks it is one.
func bcryptHash(s *settings, v string, as setting) error {
	s.AdminUIPasswordHash = v
	if v == "" {
		return nil
	}
	if _, err := bcrypt.Cost([]byte(v)); err != nil {
		return fmt.Errorf("--%s (%s) is not a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from htpasswd -nbB admin PASSWORD): %w", as.flag, as.env, err)
	}
	return nil
}

func adminUIOrigins(s *settings, v string, as setting) error {
	s.AdminUIOrigins = nil
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("--%s (%s): %q is not an origin (scheme and host, like https://admin.socket.io)", as.flag, as.env, o)
		}
		s.AdminUIOrigins = append(s.AdminUIOrigins, strings.TrimSuffix(o, "/"))
	}
	return nil
}

func socketPath(s *settings, v string, as setting) error {
	s.Path = strings.TrimSpace(v)
	if !strings.HasPrefix(s.Path, "/") {
		return fmt.Errorf("--%s: %q must start with /", as.flag, s.Path)
	}
	if !strings.HasSuffix(s.Path, "/") {
		s.Path += "/"
	}
	return nil
}

func corsOrigins(s *settings, v string, as setting) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("--%s (%s): empty; give origins, or * for any", as.flag, as.env)
	}
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.CORSOrigins = append(s.CORSOrigins, o)
		}
	}
	if slices.Contains(s.CORSOrigins, "*") && len(s.CORSOrigins) > 1 {
		return fmt.Errorf("--%s: * together with named origins is contradictory", as.flag)
	}
	return nil
}

func trustedProxies(s *settings, v string, as setting) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("--%s (%s): %q is not an address or a CIDR (like 10.0.0.0/8)", as.flag, as.env, item)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		s.TrustedProxies = append(s.TrustedProxies, p.Masked())
	}
	return nil
}

func logLevel(s *settings, v string, as setting) error {
	v = strings.TrimSpace(v)
	if err := s.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("--%s: %q is not debug, info, warn or error", as.flag, v)
	}
	return nil
}

func logFormat(s *settings, v string, as setting) error {
	s.LogFormat = strings.TrimSpace(v)
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return fmt.Errorf("--%s: %q is not text or json", as.flag, s.LogFormat)
	}
	return nil
}

// durationText writes a default duration the way a user would: 10m, not
// 10m0s.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// stringFlag is a flag holding a setting's raw text.
type stringFlag struct{ p *string }

func (f stringFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}
func (f stringFlag) Set(v string) error { *f.p = v; return nil }

// boolFlag is a string-valued flag that the flag package treats as boolean.
type boolFlag struct{ stringFlag }

func (boolFlag) IsBoolFlag() bool { return true }

// printSettingsUsage lists every setting with its variable, default and
// help, wrapped to a terminal's width.
func printSettingsUsage(w io.Writer) {
	fmt.Fprint(w, "Every flag can also be set by the environment variable shown; the flag wins.\n\n")
	for _, st := range serveSettings {
		head := "  --" + st.flag
		if !st.boolean() {
			head += " " + st.arg
		}
		head += "  $" + st.env
		switch {
		case st.defText != "":
			head += "  (" + st.defText + ")"
		case st.def != "" && !st.boolean():
			head += "  (default " + st.def + ")"
		}
		fmt.Fprintln(w, head)
		for _, line := range wrap(st.usage, usageWidth-8) {
			fmt.Fprintln(w, "        "+line)
		}
	}
}

const usageWidth = 80

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

func unknownEnv(env map[string]string) []string {
	var unknown []string
	for k := range env {
		if strings.HasPrefix(k, "WALCAST_") && !slices.Contains(walcastEnvNames(), k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return unknown
}

func walcastEnvNames() []string {
	var names []string
	for _, s := range serveSettings {
		if strings.HasPrefix(s.env, "WALCAST_") {
			names = append(names, s.env)
		}
	}
	return names
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// validInstanceID accepts 1-16 of [A-Za-z0-9]: none of them is the '.'
// that ends the prefix, and all are safe in a URL query and an nginx map.
func validInstanceID(id string) bool {
	if len(id) < 1 || len(id) > 16 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// randomInstanceID names an instance nobody named: sticky routing then
// needs --instance-id, but a lone instance still gets distinct session ids.
func randomInstanceID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}
