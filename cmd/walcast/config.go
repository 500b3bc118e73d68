package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
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
	Production      bool
	// InstanceID starts every Engine.IO session id this process hands out,
	// so a proxy can send a session's later requests back here.
	InstanceID string
}

// setting binds one flag to its environment variable.
type setting struct {
	flag, env, usage string
}

var serveSettings = []setting{
	{"database-url", "DATABASE_URL", "PostgreSQL URL of a role with REPLICATION; wal_level must be logical (required)"},
	{"jwt-secret", "JWT_SECRET", "HS256 secret the app signs its tokens with (required unless --jwt-public-key)"},
	{"jwt-public-key", "JWT_PUBLIC_KEY_FILE", "PEM public key file for RS256/ES256 tokens"},
	{"jwt-algorithm", "JWT_ALGORITHM", "the one accepted token algorithm: HS256, RS256 or ES256 (default HS256, or RS256 with a public key)"},
	{"redis-url", "REDIS_URL", "Redis URL (redis:// or rediss://); unset: one instance, locks in memory"},
	{"recovery-window", "WALCAST_RECOVERY_WINDOW", "how long a disconnected client may come back and receive what it missed (socket.recovered); 0 turns recovery off. Broadcasts carry an offset as an extra last argument (handlers written for the contract ignore it) and sockets get walcast:offset at connect and every 30s"},
	{"stream-window", "WALCAST_STREAM_WINDOW", "how long events stay in the Redis stream (it is trimmed by age with XADD MINID, not by count)"},
	{"redis-adapter", "WALCAST_REDIS_ADAPTER", "how instances share events through Redis: streams (a fenced Redis stream, @socket.io/redis-streams-adapter 0.3 compatible: each change delivered exactly once across a reader failover) or pubsub (@socket.io/redis-adapter 8 compatible, reachable by @socket.io/redis-emitter: no fencing, so a failover can deliver the last transactions twice, and an instance cut off from Redis misses what is published meanwhile; revocations go out as disconnect requests on the request channel, equally unkept); needs --redis-url"},
	{"listen", "WALCAST_LISTEN", "HTTP listen address"},
	{"path", "WALCAST_PATH", "Socket.IO path"},
	{"cors-origins", "WALCAST_CORS_ORIGINS", "comma-separated allowed browser origins; * allows any (default: same origin only)"},
	{"config", "WALCAST_CONFIG", "YAML routing file (default: the built-in GraceGiver profile)"},
	{"publication", "WALCAST_PUBLICATION", "publication name"},
	{"slot", "WALCAST_SLOT", "replication slot name"},
	{"recreate-slot", "WALCAST_RECREATE_SLOT", "accept that changes were lost when the slot is gone: create a new one and tell clients to refetch"},
	{"log-level", "WALCAST_LOG_LEVEL", "debug, info, warn or error"},
	{"log-format", "WALCAST_LOG_FORMAT", "text or json"},
	{"token-expiry-warning", "WALCAST_TOKEN_EXPIRY_WARNING", "how long before a token expires its socket gets auth:expiring"},
	{"lock-ttl", "WALCAST_LOCK_TTL", "record lock lifetime"},
	{"lock-renew", "WALCAST_LOCK_RENEW", "extend a connected holder's locks before they expire"},
	{"lock-release-on-disconnect", "WALCAST_LOCK_RELEASE_ON_DISCONNECT", "release a socket's locks once it has been gone for the recovery window (2m when recovery is off) without resuming its session on any instance"},
	{"write-delay", "WALCAST_WRITE_DELAY", "how long an idle socket's writes wait for more events to leave in the same system call: less CPU per delivered event when each socket gets several events per interval, for up to this much added latency (0 to 1s; 0 writes at once)"},
	{"instance-id", "WALCAST_INSTANCE_ID", "1-16 letters or digits naming this instance; session ids start with it and a dot, so a proxy can route a session's requests back (see deploy/nginx.conf; default: random per process)"},
}

// parseServe reads settings for serve from args and env. Unknown flags,
// unknown WALCAST_* variables and contradictions are errors naming the
// setting.
func parseServe(args []string, env []string, stderr io.Writer) (*settings, error) {
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	known := map[string]bool{}
	for _, s := range serveSettings {
		known[s.env] = true
	}
	var unknown []string
	for k := range envMap {
		if strings.HasPrefix(k, "WALCAST_") && !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown environment setting %s (known: %s)", strings.Join(unknown, ", "), strings.Join(walcastEnvNames(), ", "))
	}

	fs := flag.NewFlagSet("walcast serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := map[string]*string{}
	defaults := map[string]string{
		"listen": ":8080", "redis-adapter": "streams", "stream-window": "10m", "recovery-window": "2m", "write-delay": "0", "path": "/socket.io/", "publication": "walcast", "slot": "walcast",
		"log-level": "info", "log-format": "text", "token-expiry-warning": "1m", "lock-ttl": "15m",
		"recreate-slot": "false", "lock-renew": "false", "lock-release-on-disconnect": "false",
	}
	for _, s := range serveSettings {
		def := defaults[s.flag]
		if v, ok := envMap[s.env]; ok {
			def = v
		}
		usage := fmt.Sprintf("%s [$%s]", s.usage, s.env)
		if boolSettings[s.flag] {
			// Registered as a boolean flag so a bare --lock-renew means true;
			// the value is still checked below, with the env's.
			v := def
			fs.Var(boolFlag{&v}, s.flag, usage)
			vals[s.flag] = &v
			continue
		}
		vals[s.flag] = fs.String(s.flag, def, usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: walcast serve [flags]\n\nEvery flag can also be set by the environment variable shown; the flag wins.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	get := func(name string) string { return strings.TrimSpace(*vals[name]) }
	var errs []error
	boolOf := func(name string) bool {
		switch strings.ToLower(get(name)) {
		case "", "0", "false", "no", "off":
			return false
		case "1", "true", "yes", "on":
			return true
		}
		errs = append(errs, fmt.Errorf("--%s: %q is not a boolean", name, get(name)))
		return false
	}
	durationOf := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("--%s: %q is not a positive duration (like 30s, 15m)", name, get(name)))
		}
		return d
	}
	nonNegativeDuration := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("--%s: %q is not a duration (like 0, 2m)", name, get(name)))
		}
		return d
	}
	s := &settings{
		DatabaseURL:     get("database-url"),
		JWTSecret:       *vals["jwt-secret"], // secrets are taken verbatim
		JWTPublicKey:    get("jwt-public-key"),
		JWTAlgorithm:    strings.ToUpper(get("jwt-algorithm")),
		RedisURL:        get("redis-url"),
		RedisAdapter:    strings.ToLower(get("redis-adapter")),
		StreamWindow:    durationOf("stream-window"),
		RecoveryWindow:  nonNegativeDuration("recovery-window"),
		WriteDelay:      nonNegativeDuration("write-delay"),
		Listen:          get("listen"),
		Path:            get("path"),
		ConfigFile:      get("config"),
		Publication:     get("publication"),
		Slot:            get("slot"),
		RecreateSlot:    boolOf("recreate-slot"),
		LogFormat:       get("log-format"),
		ExpiryWarning:   durationOf("token-expiry-warning"),
		LockTTL:         durationOf("lock-ttl"),
		LockRenew:       boolOf("lock-renew"),
		LockReleaseOnDC: boolOf("lock-release-on-disconnect"),
		InstanceID:      get("instance-id"),
	}
	if s.WriteDelay > time.Second {
		errs = append(errs, fmt.Errorf("--write-delay (WALCAST_WRITE_DELAY): %s is over 1s: every event would wait that long", s.WriteDelay))
	}
	if s.InstanceID == "" {
		s.InstanceID = randomInstanceID()
	} else if !validInstanceID(s.InstanceID) {
		errs = append(errs, fmt.Errorf("--instance-id (WALCAST_INSTANCE_ID): %q must be 1-16 letters or digits", s.InstanceID))
	}
	for _, o := range strings.Split(get("cors-origins"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.CORSOrigins = append(s.CORSOrigins, o)
		}
	}
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
	if err := s.LogLevel.UnmarshalText([]byte(get("log-level"))); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %q is not debug, info, warn or error", get("log-level")))
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format: %q is not text or json", s.LogFormat))
	}
	if !strings.HasPrefix(s.Path, "/") {
		errs = append(errs, fmt.Errorf("--path: %q must start with /", s.Path))
	}
	if !strings.HasSuffix(s.Path, "/") {
		s.Path += "/"
	}
	if s.RecoveryWindow > 0 && s.RedisURL != "" && s.RedisAdapter == "streams" && s.StreamWindow < s.RecoveryWindow {
		errs = append(errs, fmt.Errorf("--stream-window %s is shorter than --recovery-window %s: the stream would be trimmed before a client comes back", s.StreamWindow, s.RecoveryWindow))
	}
	if s.RedisURL != "" && !strings.HasPrefix(s.RedisURL, "redis://") && !strings.HasPrefix(s.RedisURL, "rediss://") && !strings.HasPrefix(s.RedisURL, "unix://") {
		errs = append(errs, fmt.Errorf("--redis-url: %q must start with redis://, rediss:// or unix://", s.RedisURL))
	}
	switch s.RedisAdapter {
	case "streams":
	case "pubsub":
		if s.RedisURL == "" {
			errs = append(errs, errors.New("--redis-adapter (WALCAST_REDIS_ADAPTER) pubsub needs --redis-url (REDIS_URL)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--redis-adapter (WALCAST_REDIS_ADAPTER): %q is not streams or pubsub", s.RedisAdapter))
	}
	if slices.Contains(s.CORSOrigins, "*") && len(s.CORSOrigins) > 1 {
		errs = append(errs, errors.New("--cors-origins: * together with named origins is contradictory"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// boolSettings are the on/off settings: flags that may be given bare.
var boolSettings = map[string]bool{"recreate-slot": true, "lock-renew": true, "lock-release-on-disconnect": true}

// boolFlag is a string-valued flag that the flag package treats as boolean.
type boolFlag struct{ p *string }

func (b boolFlag) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b boolFlag) Set(v string) error { *b.p = v; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

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
