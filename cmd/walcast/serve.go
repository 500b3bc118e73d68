package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/adminui"
	"github.com/walcast/walcast/broadcast/auth"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/gateway"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/metrics"
	"github.com/walcast/walcast/relay"
	"github.com/walcast/walcast/route"
)

// markKeyPrefix + slot is the Redis key of the high-water mark: the end LSN
// of the latest transaction appended to the stream. One mark per slot: the
// slot is what orders the transactions its positions refer to.
const markKeyPrefix = "walcast:mark:"

// usersReloadInterval is how often the users projection is read again with
// --redis-adapter pubsub, where an instance cut off from Redis misses the
// account changes published meanwhile.
const usersReloadInterval = 30 * time.Second

// server is one running `walcast serve`: the row changes flow
// cdc.Reader -> relay -> hub, the sockets meet the gateway.
type server struct {
	cfg      *settings
	log      *slog.Logger
	hub      *broadcast.Hub
	gateway  *gateway.Gateway
	accounts *accounts.Directory // nil when the routing file turns the users check off
	reader   *cdc.Reader
	relay    cdc.Consumer
	http     *http.Server
	stopping chan struct{}
	// lastReady is the reason /readyz gave last (a string).
	lastReady atomic.Value
	// The Redis clients (nil without REDIS_URL): the hub's and the lock
	// store's, which has short timeouts of its own so a lock ack fails fast.
	redis     *redis.Client
	lockRedis *redis.Client
	// Operating walcast: metrics (nil with --admin-listen off), the slot
	// sampler that feeds them, the operator listener, the Admin UI.
	metrics *metrics.Metrics
	sampler *cdc.SlotSampler
	admin   *http.Server
	adminLn net.Listener
	adminUI *adminui.AdminUI
}

// newServer prepares everything that can fail before anything is served:
// routing against the live schema, the publication and the slot, Redis.
func newServer(ctx context.Context, cfg *settings, log *slog.Logger) (_ *server, err error) {
	routing, err := loadRouting(cfg)
	if err != nil {
		return nil, err
	}
	catalog, err := cdc.DescribeDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	resolved, err := route.Resolve(routing, catalog)
	if err != nil {
		return nil, err
	}
	for _, n := range resolved.Notes {
		if n.Warning {
			log.Warn(n.Message, "table", n.Table, "fix", n.Fix)
		} else {
			log.Info(n.Message, "table", n.Table)
		}
	}
	router, err := route.New(resolved.Config, log)
	if err != nil {
		return nil, err
	}
	verifier, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	cdcCfg := cdc.Config{
		ConnString:   cfg.DatabaseURL,
		Publication:  cfg.Publication,
		Slot:         cfg.Slot,
		Tables:       resolved.Tables,
		RecreateSlot: cfg.RecreateSlot,
		Logger:       log,
	}
	res, err := cdc.Setup(ctx, cdcCfg)
	if err != nil {
		return nil, err
	}
	log.Info("database ready", "publication", cfg.Publication, "publication_created", res.PublicationCreated,
		"slot", cfg.Slot, "slot_created", res.SlotCreated, "resync_pending", res.ResyncPending, "server_version", res.ServerVersion)

	s := &server{cfg: cfg, log: log, stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			if s.hub != nil {
				s.hub.Close()
			}
			s.closeRedis()
			if s.adminLn != nil {
				_ = s.adminLn.Close()
			}
		}
	}()
	if cfg.AdminListen != "" {
		s.metrics = metrics.New(metrics.Options{Sources: s.metricSources()})
		cdcCfg.Observer = s.metrics.ReaderObserver()
	}
	if u := resolved.Config.Users; !u.Disabled {
		s.accounts = accounts.New(accounts.Columns{Table: u.Table, ID: u.IDColumn, Role: u.RoleColumn, MemberID: u.MemberIDColumn, LockedUntil: u.LockedUntilColumn})
	}
	// The hub subscribes to the account changes other instances carry
	// before the SELECT below, so a change the SELECT misses still comes.
	if err := s.openHub(ctx, routing.ReservedRooms()); err != nil {
		return nil, err
	}
	if s.metrics != nil {
		s.hub.Server().AddObserver(s.metrics.SocketObserver())
	}
	if s.accounts != nil {
		if err := s.accounts.Load(ctx, cfg.DatabaseURL); err != nil {
			return nil, fmt.Errorf("%w (walcast's role needs SELECT on %s; the routing file's users section names it)", err, resolved.Config.Users.Table)
		}
		log.Info("users loaded for the handshake check", "table", resolved.Config.Users.Table, "users", s.accounts.Len())
	}
	if pos, ok, err := s.hub.PublishedPosition(ctx); err != nil {
		return nil, fmt.Errorf("read where publication stopped (REDIS_URL): %w", err)
	} else if ok {
		// What is already in the stream need not be decoded again; cdc
		// starts from the later of this and the slot's confirmed position.
		// The Reader keeps it for every session, so a standby taking over
		// later starts from the slot's position, and the fence drops what
		// was published since this process started.
		cdcCfg.StartLSN = pglogrepl.LSN(pos)
		log.Info("resuming after published transactions", "mark", markKeyPrefix+cfg.Slot, "end_lsn", cdcCfg.StartLSN)
	}
	s.reader = cdc.NewReader(cdcCfg)
	relayCfg := relay.Config{Hub: s.hub, Router: router, Logger: log}
	lockCfg := locks.Config{
		Renew:               cfg.LockRenew,
		ReleaseOnDisconnect: cfg.LockReleaseOnDC,
		// a client that may still recover its session keeps its locks
		DisconnectGrace: cfg.RecoveryWindow,
	}
	var gatewayObs gateway.Observer
	var onRefusal func(kind string)
	if s.metrics != nil {
		onRefusal = s.metrics.Refused
		relayCfg.Observer = s.metrics.RelayObserver(s.redis != nil)
		lockCfg.Observer = s.metrics.LockObserver()
		gatewayObs = s.metrics
		s.sampler = cdc.NewSlotSampler(cdc.SlotSamplerConfig{ConnString: cfg.DatabaseURL, Slot: cfg.Slot, Logger: log,
			// The instance that reads the slot reports it, also while it
			// reconnects; a standby leaves it to that one.
			When: func() bool { st := s.reader.State(); return st == cdc.StateLeader || st == cdc.StateReconnecting }})
	}
	s.relay = relay.New(relayCfg)

	store, err := s.newLockStore()
	if err != nil {
		return nil, err
	}
	s.gateway, err = gateway.Attach(s.hub, gateway.Config{
		Verifier:      verifier,
		Accounts:      s.accounts,
		LockStore:     store,
		Locks:         lockCfg,
		Reserved:      routing.ReservedRooms(),
		MaxRooms:      cfg.MaxRooms,
		LockRate:      cfg.LockRate,
		LockBurst:     cfg.LockBurst,
		OnRefusal:     onRefusal,
		ExpiryWarning: cfg.ExpiryWarning,
		Standby:       func() bool { return cfg.RedisURL == "" && s.reader.State() == cdc.StateStandby },
		Logger:        log,
		Observer:      gatewayObs,
	})
	if err != nil {
		return nil, err
	}
	if err := s.attachAdminUI(); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle(cfg.Path, s.hub.Handler())
	s.http = s.hub.Server().EngineIO().HTTPServer(mux)
	s.http.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if err := s.listenAdmin(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadRouting reads the routing file, or takes the built-in profile.
func loadRouting(cfg *settings) (route.Config, error) {
	if cfg.ConfigFile == "" {
		return route.GraceGiver(), nil
	}
	return route.LoadFile(cfg.ConfigFile)
}

// openHub opens the broadcast hub: in memory, or joined to the other
// instances through Redis as --redis-adapter says.
func (s *server) openHub(ctx context.Context, reserved route.ReservedRooms) error {
	cfg := s.cfg
	hubCfg := broadcast.Config{
		EngineIO: engineio.Config{Path: cfg.Path, AllowedOrigins: cfg.CORSOrigins, Logger: s.log, SIDPrefix: cfg.InstanceID + ".", WriteDelay: cfg.WriteDelay,
			OnRefusedOrigin: func(origin string) {
				s.log.Warn("refused a browser handshake from an origin that is not allowed (logged once per origin)", "origin", origin,
					"admit_with", "--cors-origins (WALCAST_CORS_ORIGINS) "+strings.Join(append(slices.Clone(cfg.CORSOrigins), origin), ","))
			},
			KeepHeaders:          engineio.ClientHeaders,
			MaxPayload:           cfg.MaxPayload,
			FrameTimeout:         cfg.FrameTimeout,
			MaxHeaderBytes:       cfg.MaxHeaderBytes,
			HeaderTimeout:        cfg.HeaderTimeout,
			BodyTimeout:          cfg.BodyTimeout,
			IdleTimeout:          cfg.IdleTimeout,
			MaxPending:           noCapIfZero(cfg.MaxPending),
			MaxPendingPerAddress: noCapIfZero(cfg.MaxPendingPerAddress),
			TrustedProxies:       cfg.TrustedProxies,
		},
		ConnectTimeout: cfg.ConnectTimeout,
		Recovery:       gateway.Recovery(cfg.RecoveryWindow, reserved),
		Logger:         s.log,
	}
	if cfg.adminUI() {
		hubCfg.EngineIO.CredentialedOrigins = cfg.AdminUIOrigins
	}
	var cluster broadcast.Cluster
	if cfg.RedisURL != "" {
		rdb, err := redisadapter.NewClient(cfg.RedisURL, nil)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		if s.metrics != nil {
			rdb.AddHook(s.metrics.RedisHook(metrics.RedisHub))
		}
		s.redis = rdb
		cluster = broadcast.Cluster{Redis: rdb, Adapter: broadcast.ClusterAdapter(cfg.RedisAdapter), StreamWindow: cfg.StreamWindow, MarkKey: markKeyPrefix + cfg.Slot}
		if cfg.adminUI() {
			cluster.LocalNamespaces = []string{adminui.DefaultNamespace}
		}
	}
	if s.accounts != nil {
		cluster.OnState = func(state []byte) {
			if err := s.accounts.ApplyEncoded(state); err != nil {
				s.log.Warn("skip account changes", "err", err)
			}
		}
	}
	hub, err := broadcast.Open(ctx, hubCfg, cluster)
	if err != nil {
		return fmt.Errorf("%w (REDIS_URL)", err)
	}
	s.hub = hub
	return nil
}

// noCapIfZero turns a setting's 0 (no cap) into engineio's.
func noCapIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func newVerifier(cfg *settings) (*auth.Verifier, error) {
	vc := auth.Config{Algorithm: cfg.JWTAlgorithm, Secret: []byte(cfg.JWTSecret)}
	if cfg.JWTPublicKey != "" {
		pem, err := os.ReadFile(cfg.JWTPublicKey)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		vc.Secret, vc.PublicKeyPEM = nil, pem
	}
	return auth.NewVerifier(vc)
}

func (s *server) newLockStore() (locks.Store, error) {
	if s.cfg.RedisURL == "" {
		return locks.NewMemoryStore(s.cfg.LockTTL), nil
	}
	rdb, err := locks.NewRedisClient(s.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	if s.metrics != nil {
		rdb.AddHook(s.metrics.RedisHook(metrics.RedisLocks))
	}
	s.lockRedis = rdb
	return locks.NewRedisStore(rdb, s.cfg.LockTTL), nil
}

func (s *server) closeRedis() {
	for _, c := range []*redis.Client{s.redis, s.lockRedis} {
		if c != nil {
			if err := c.Close(); err != nil {
				s.log.Warn("close Redis client", "err", err)
			}
		}
	}
}

// run serves until ctx ends, then shuts down: stop accepting, let the
// reader finish and confirm what was delivered, send the last lock
// announcements, close the sockets and the Redis clients.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	readerCtx, stopReader := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReader()
	gatewayCtx, stopGateway := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGateway()
	gatewayErr := make(chan error, 1)
	go func() { gatewayErr <- s.gateway.Run(gatewayCtx) }()
	readerErr := make(chan error, 1)
	go func() { readerErr <- s.reader.Run(readerCtx, s.relay) }()
	if s.accounts != nil && s.cfg.RedisURL != "" && s.cfg.RedisAdapter == string(broadcast.AdapterPubSub) {
		go s.accounts.Reload(gatewayCtx, s.cfg.DatabaseURL, usersReloadInterval, func(err error) {
			s.log.Warn("reload users for the handshake check", "err", err)
		})
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Serve(ln) }()
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	adminErr := make(chan error, 1) // never sent to without the listener
	if s.admin != nil {
		go func() { adminErr <- s.admin.Serve(s.adminLn) }()
		go s.metrics.Run(opsCtx)
		go func() { _ = s.sampler.Run(opsCtx) }()
		s.log.Info("operator listener", "addr", s.adminLn.Addr().String(), "metrics", "/metrics", "pprof", s.cfg.AdminPprof)
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "path", s.cfg.Path)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err := <-readerErr:
		if err != nil {
			runErr = fmt.Errorf("replication reader: %w", err)
		}
		readerErr <- nil // Run has returned; let the wait below pass
	case err := <-httpErr:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-adminErr:
		runErr = fmt.Errorf("operator listener: %w", err)
	}
	close(s.stopping)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(shutdownCtx) // stops accepting; hijacked websockets stay until hub.Close
	if s.admin != nil {
		_ = s.admin.Shutdown(shutdownCtx)
	}
	stopOps()
	stopReader()
	if err := <-readerErr; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("replication reader: %w", err)
	}
	stopGateway()
	if err := <-gatewayErr; err != nil {
		s.log.Error("lock service stopped", "err", err)
	}
	if s.adminUI != nil {
		s.adminUI.Close()
	}
	s.hub.Close()
	s.closeRedis()
	return runErr
}

// Readiness reasons /readyz gives. They say what an operator or a load
// balancer needs and nothing more: error texts, positions and counts go to
// the log (readyz logs each change of reason with them).
const (
	reasonShuttingDown   = "shutting down"
	reasonRedisDown      = "Redis unreachable"
	reasonReading        = "reading the replication slot"
	reasonStandbyRedis   = "standby: events arrive through Redis"
	reasonStandbyNoRedis = "standby without REDIS_URL: no events would reach this instance"
)

// ready reports readiness, a short reason and, for the log, the details.
func (s *server) ready() (ok bool, reason string, details []any) {
	select {
	case <-s.stopping:
		return false, reasonShuttingDown, nil
	default:
	}
	if s.redis != nil {
		// Without Redis no event reaches any socket and locks fail closed.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := s.redis.Ping(ctx).Err()
		cancel()
		if err != nil {
			return false, reasonRedisDown, []any{"err", err}
		}
	}
	st := s.reader.Status()
	details = []any{"reader", st.State.String(), "confirmed_lsn", st.Confirmed.String(), "seconds_since_last_accepted", st.SinceLastAccepted.Seconds()}
	switch st.State {
	case cdc.StateLeader:
		return true, reasonReading, details
	case cdc.StateStandby:
		if s.redis != nil {
			return true, reasonStandbyRedis, details
		}
		return false, reasonStandbyNoRedis, details
	default:
		if st.LastError != nil {
			details = append(details, "err", st.LastError)
		}
		return false, "replication " + st.State.String(), details
	}
}

// readyz answers on the public port: the status code and a short reason.
// Whatever changed the reason is logged with the details.
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why, details := s.ready()
	if prev, _ := s.lastReady.Swap(why).(string); prev != why {
		level := slog.LevelInfo
		if !ok {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "readiness changed", append([]any{"ready", ok, "reason", why, "was", prev}, details...)...)
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "reason": why})
}
