package main

import (
	"bytes"
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
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/auth"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/route"
)

// markKeyPrefix + slot is the Redis key of the high-water mark: the end LSN
// (and last index) of the latest transaction appended to the stream.
const markKeyPrefix = "walcast:mark:"

// Reserved room prefixes: rooms walcast puts sockets in from their token.
// join_room refuses them so a viewer cannot listen in on role:admin.
var reservedRoomPrefixes = []string{"user:", "role:", "member:"}

// Event names walcast adds to the contract.
const (
	eventTokenExpiring = "auth:expiring" // {expiresAt}: the token expires soon; the socket is disconnected then
	eventJoinRoom      = "join_room"
	eventLeaveRoom     = "leave_room"
)

// server is one running `walcast serve`.
type server struct {
	cfg      *settings
	log      *slog.Logger
	verifier *auth.Verifier
	router   *route.Router
	hub      *broadcast.Hub
	ns       *socketio.Namespace
	reader   *cdc.Reader
	locks    *locks.Service
	http     *http.Server
	listener net.Listener
	redis    *redis.Client         // nil without REDIS_URL
	streams  *redisadapter.Streams // with REDIS_URL and --redis-adapter streams
	pubsub   *redisadapter.PubSub  // with REDIS_URL and --redis-adapter pubsub
	markKey  string                // high-water mark of published transactions, with REDIS_URL
	stopping chan struct{}
	// lockUpdates queues lock announcements for sendLockUpdates.
	lockUpdates chan locks.Update
}

// socketState is what walcast keeps per socket.
type socketState struct {
	id     *auth.Identity
	caller locks.Caller
	lock   *locks.Session // set by onConnect
	timers []*time.Timer
}

// newServer prepares everything that can fail before anything is served:
// settings, routing against the live schema, the publication and the slot.
func newServer(ctx context.Context, cfg *settings, log *slog.Logger) (*server, error) {
	rcfg := route.GraceGiver()
	if cfg.ConfigFile != "" {
		var err error
		if rcfg, err = route.LoadFile(cfg.ConfigFile); err != nil {
			return nil, err
		}
	}
	identity, err := checkSchema(ctx, cfg.DatabaseURL, &rcfg, log)
	if err != nil {
		return nil, err
	}
	router, err := route.New(rcfg, log)
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
		Tables:       rcfg.TableSpecs(identity),
		RecreateSlot: cfg.RecreateSlot,
		Logger:       log,
	}
	res, err := cdc.Setup(ctx, cdcCfg)
	if err != nil {
		return nil, err
	}
	log.Info("database ready", "publication", cfg.Publication, "publication_created", res.PublicationCreated,
		"slot", cfg.Slot, "slot_created", res.SlotCreated, "resync_pending", res.ResyncPending, "server_version", res.ServerVersion)

	s := &server{cfg: cfg, log: log, verifier: verifier, router: router, stopping: make(chan struct{}), lockUpdates: make(chan locks.Update, 4096)}
	hubCfg := broadcast.Config{
		EngineIO: engineio.Config{Path: cfg.Path, AllowedOrigins: cfg.CORSOrigins, Logger: log, SIDPrefix: cfg.InstanceID + ".", WriteDelay: cfg.WriteDelay},
		Logger:   log,
	}
	hubCfg.Recovery = recoveryConfig(cfg.RecoveryWindow)
	if cfg.RedisURL != "" && cfg.RedisAdapter == "pubsub" {
		// Events go through hub.Emit, published on the classic adapter's
		// channels: no fencing, so a takeover may repeat the last
		// transactions (the flag's usage says so).
		rdb, err := redisadapter.NewClient(cfg.RedisURL, nil)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("connect the Redis pub/sub adapter (REDIS_URL): %w", err)
		}
		s.redis = rdb
		s.pubsub = redisadapter.NewPubSub(rdb, redisadapter.PubSubOptions{Logger: log})
		hubCfg.NewAdapter = s.pubsub.NewAdapter
	} else if cfg.RedisURL != "" {
		// Events (and lock announcements) travel through a Redis stream that
		// every instance reads back, the reader included, so a socket on any
		// instance gets every event once, in one order.
		rdb, err := redisadapter.NewClient(cfg.RedisURL, nil)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		s.streams, err = redisadapter.NewStreams(ctx, rdb, redisadapter.StreamsOptions{Window: cfg.StreamWindow, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("connect the Redis stream adapter (REDIS_URL): %w", err)
		}
		s.redis = rdb
		hubCfg.NewAdapter = s.streams.NewAdapter
		// One mark per slot: the slot is what orders the transactions the
		// mark's positions (their end LSNs) refer to.
		s.markKey = markKeyPrefix + cfg.Slot
		mark, ok, err := redisadapter.ReadMark(ctx, rdb, s.markKey)
		if err != nil {
			return nil, fmt.Errorf("read where publication stopped (REDIS_URL): %w", err)
		}
		if ok {
			// What is already in the stream need not be decoded again; cdc
			// starts from the later of this and the slot's confirmed position.
			// The Reader keeps it for every session, so a standby taking
			// over later starts from the slot's position, and the fence
			// drops what was published since this process started.
			cdcCfg.StartLSN = pglogrepl.LSN(mark.LSN)
			log.Info("resuming after published transactions", "mark", s.markKey, "end_lsn", cdcCfg.StartLSN)
		}
	}
	s.hub = broadcast.New(hubCfg)
	s.ns = s.hub.Namespace("/")
	store, err := newLockStore(cfg)
	if err != nil {
		return nil, err
	}
	s.locks, err = locks.NewService(store, locks.NotifierFunc(s.announceLock), locks.Config{
		Renew:               cfg.LockRenew,
		ReleaseOnDisconnect: cfg.LockReleaseOnDC,
		// a client that may still recover its session keeps its locks
		DisconnectGrace: cfg.RecoveryWindow,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	s.reader = cdc.NewReader(cdcCfg)
	s.ns.Use(s.refuseWhenStandby)
	s.ns.Use(s.authenticate)
	s.ns.OnConnection(s.onConnect)
	if hubCfg.Recovery != nil {
		go s.sendOffsets()
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle(cfg.Path, s.hub.Handler())
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s, nil
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

func newLockStore(cfg *settings) (locks.Store, error) {
	if cfg.RedisURL == "" {
		return locks.NewMemoryStore(cfg.LockTTL), nil
	}
	rdb, err := locks.NewRedisClient(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	return locks.NewRedisStore(rdb, cfg.LockTTL), nil
}

// run serves until ctx ends, then shuts down: stop accepting, let the
// reader finish and confirm what was delivered, close the sockets.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	s.listener = ln
	readerCtx, stopReader := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReader()
	var wg sync.WaitGroup
	announced := make(chan struct{})
	go func() { s.sendLockUpdates(); close(announced) }()
	readerErr := make(chan error, 1)
	var consumer cdc.Consumer = &changeConsumer{s: s}
	if s.streams != nil {
		// Several transactions already read make one Redis call.
		consumer = &fencedConsumer{changeConsumer: changeConsumer{s: s}}
	}
	wg.Go(func() { readerErr <- s.reader.Run(readerCtx, consumer) })
	locksCtx, stopLocks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLocks()
	wg.Go(func() {
		if err := s.locks.Run(locksCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("lock sweeper stopped", "err", err)
		}
	})
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Serve(ln) }()
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
	}
	close(s.stopping)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(shutdownCtx) // stops accepting; hijacked websockets stay until hub.Close
	stopReader()
	if err := <-readerErr; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("replication reader: %w", err)
	}
	stopLocks()
	<-announced
	s.hub.Close()
	if s.streams != nil {
		s.streams.Close()
	}
	wg.Wait()
	return runErr
}

func (s *server) ready() (bool, string) {
	select {
	case <-s.stopping:
		return false, "shutting down"
	default:
	}
	if s.redis != nil {
		// Without Redis no event reaches any socket and locks fail closed.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := s.redis.Ping(ctx).Err()
		cancel()
		if err != nil {
			return false, "Redis unreachable: " + err.Error()
		}
	}
	st := s.reader.Status()
	switch st.State {
	case cdc.StateLeader:
		return true, "reading the replication slot"
	case cdc.StateStandby:
		if s.redis != nil {
			return true, "standby: another instance reads the replication slot; its events reach this one through Redis"
		}
		return false, "standby: another instance reads the replication slot and REDIS_URL is not set, so its events cannot reach this one"
	default:
		msg := "replication " + st.State.String()
		if st.LastError != nil {
			msg += ": " + st.LastError.Error()
		}
		return false, msg
	}
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.ready()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	st := s.reader.Status()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ready": ok, "reason": why, "reader": st.State.String(),
		"confirmed_lsn": st.Confirmed.String(), "seconds_since_last_accepted": st.SinceLastAccepted.Seconds(),
		"sockets": s.ns.Len(),
	})
}

// refuseWhenStandby: without Redis a standby instance's sockets would get no
// events and its locks would not be shared, so it refuses them clearly.
func (s *server) refuseWhenStandby(*socketio.Socket) error {
	if s.cfg.RedisURL == "" && s.reader.State() == cdc.StateStandby {
		return &socketio.ConnectError{Message: "Service unavailable: this walcast instance is standby (another instance reads the replication slot and REDIS_URL is not set)"}
	}
	return nil
}

func (s *server) authenticate(sock *socketio.Socket) error {
	hs := sock.Handshake()
	id, err := s.verifier.Verify(auth.FromHandshake(hs.Auth, hs.Header.Get("Authorization")))
	if err != nil {
		s.log.Debug("socket refused", "remote", hs.RemoteAddr, "err", err)
		if errors.Is(err, auth.ErrNoToken) {
			return &socketio.ConnectError{Message: auth.MsgNoToken}
		}
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	caller, err := callerOf(id)
	if err != nil {
		return &socketio.ConnectError{Message: auth.MsgInvalidToken}
	}
	sock.SetData(&socketState{id: id, caller: caller})
	return nil
}

// Connection state recovery (socket.io-client 4.6+): a client that was
// away for up to recoveryWindow gets its session back (socket.recovered) and
// every event it missed; otherwise it gets recovered === false and must
// refetch. Every broadcast carries an offset as an extra last argument; a
// quiet tab would never learn one, so every socket gets the event
// eventOffset (no payload, only the offset) at connect and every
// offsetInterval.
//
// On by default (--recovery-window 2m); 0 turns it off.
const (
	offsetInterval = 30 * time.Second
	eventOffset    = "walcast:offset"
)

// recoveryConfig returns the recovery settings, nil when recovery is off.
func recoveryConfig(window time.Duration) *socketio.Recovery {
	if window <= 0 {
		return nil
	}
	return &socketio.Recovery{
		MaxDisconnection: window,
		Owner:            recoveryOwner,
		KeepRoom:         keepOnRecovery,
		Rooms:            recoveryRooms,
		Breaks:           isResyncNotice,
	}
}

// resyncNotice is the payload of route's RESYNC notice: a client that
// missed one must refetch anyway, so its session is not restored.
var resyncNotice = []byte(`{"type":"RESYNC"}`)

// recoveryOwner makes a session restorable only with a token of the same user.
func recoveryOwner(sock *socketio.Socket) string {
	if st := stateOf(sock); st != nil {
		return st.id.IDString
	}
	return ""
}

// recoveryRooms: a restored session's missed events are selected with the
// reserved rooms of the new token, not the stored ones.
func recoveryRooms(sock *socketio.Socket) []string {
	if st := stateOf(sock); st != nil {
		return audienceRooms(st.id)
	}
	return nil
}

// keepOnRecovery restores the rooms the client joined itself; onConnect
// recomputes the reserved ones from the new token.
func keepOnRecovery(room string) bool {
	for _, p := range reservedRoomPrefixes {
		if strings.HasPrefix(room, p) {
			return false
		}
	}
	return true
}

func isResyncNotice(p *parser.Packet) bool {
	return len(p.Args) > 2 && bytes.Equal(p.Args[1], resyncNotice)
}

func (s *server) sendOffset(op socketio.BroadcastOperator) {
	if err := op.Emit(eventOffset); err != nil {
		s.log.Debug("send offset event", "err", err)
	}
}

// sendOffsets broadcasts eventOffset to every socket every offsetInterval
// until the server stops.
func (s *server) sendOffsets() {
	t := time.NewTicker(offsetInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
			s.sendOffset(s.ns.Except())
		}
	}
}

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

// audienceRooms are the reserved rooms a token puts its sockets in.
func audienceRooms(id *auth.Identity) []string {
	rooms := []string{"user:" + id.IDString}
	if id.Role != "" {
		rooms = append(rooms, "role:"+id.Role)
	}
	if id.MemberID != "" {
		rooms = append(rooms, "member:"+id.MemberID)
	}
	return rooms
}

func (s *server) onConnect(sock *socketio.Socket) {
	st := stateOf(sock)
	// Here, not in authenticate: a restored socket has its old id only
	// after the middlewares, and it must find the lock session (and locks)
	// its id had. A session resumed on another instance keeps this one's
	// locks until it is gone everywhere (its stored recovery session).
	st.lock = s.locks.Connect(sock.ID(), st.caller)
	st.lock.SetPresence(sock.SessionTTL)
	sock.Join(audienceRooms(st.id)...)
	if s.hub.Server().Recovery() {
		// A tab learns offsets only from broadcasts: give it one right away.
		go s.sendOffset(s.ns.To(sock.ID()))
	}
	s.scheduleExpiry(sock, st)
	sock.OnDisconnect(func(string) {
		for _, t := range st.timers {
			t.Stop()
		}
		st.lock.Disconnect()
	})
	sock.On(eventJoinRoom, s.joinRoom)
	sock.On(eventLeaveRoom, s.leaveRoom)
	// Lock calls run on the socket's read loop, so one client's acquire and
	// release apply in the order it sent them; each store call is bounded
	// by the lock service's timeout (2 s), so a sick Redis cannot stall a
	// socket for long.
	sock.On("lock:acquire", func(_ *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		_ = ack(st.lock.Acquire(context.Background(), firstArg(args)))
	})
	sock.On("lock:release", func(_ *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		_ = ack(st.lock.Release(context.Background(), firstArg(args)))
	})
	sock.On("lock:check", func(_ *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
		_ = ack(st.lock.Check(context.Background(), firstArg(args)))
	})
}

func firstArg(args socketio.Args) json.RawMessage {
	if args.Len() == 0 {
		return nil
	}
	return args.JSON[0]
}

// scheduleExpiry warns a socket shortly before its token expires and
// disconnects it then: the original served expired tokens for as long as
// the socket stayed up.
func (s *server) scheduleExpiry(sock *socketio.Socket, st *socketState) {
	exp := st.id.ExpiresAt
	if exp.IsZero() {
		return
	}
	until := time.Until(exp)
	warnAt := until - s.cfg.ExpiryWarning
	if warnAt < 0 {
		warnAt = 0
	}
	st.timers = append(st.timers,
		time.AfterFunc(warnAt, func() {
			_ = sock.Emit(eventTokenExpiring, map[string]any{"expiresAt": exp.UTC().Format(time.RFC3339)})
		}),
		time.AfterFunc(until, func() {
			s.log.Info("token expired: disconnecting socket", "user", st.id.IDString, "socket", sock.ID())
			sock.Disconnect(false)
		}),
	)
}

func (s *server) joinRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	room, err := s.clientRoom(args)
	if err != nil {
		_ = ack(map[string]any{"success": false, "error": err.Error()})
		return
	}
	sock.Join(room)
	_ = ack(map[string]any{"success": true})
}

func (s *server) leaveRoom(sock *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
	room, err := s.clientRoom(args)
	if err != nil {
		_ = ack(map[string]any{"success": false, "error": err.Error()})
		return
	}
	sock.Leave(room)
	_ = ack(map[string]any{"success": true})
}

// clientRoom validates a room a client asks for: a string of 1-128
// characters, not reserved, not another socket's own room.
func (s *server) clientRoom(args socketio.Args) (string, error) {
	var room string
	if args.Len() == 0 || args.Unmarshal(0, &room) != nil || room == "" || len(room) > 128 {
		return "", errors.New("invalid room")
	}
	for _, p := range reservedRoomPrefixes {
		if strings.HasPrefix(room, p) {
			return "", errors.New("reserved room")
		}
	}
	if s.ns.Socket(room) != nil {
		return "", errors.New("reserved room")
	}
	return room, nil
}

// announceLock queues a lock:update for every client. The lock service
// calls it before it acks; with Redis, delivering it is a round trip of its
// own, so a separate goroutine sends the queue in order and the ack does not
// wait for it.
func (s *server) announceLock(u locks.Update) {
	select {
	case s.lockUpdates <- u:
	case <-s.stopping:
	}
}

// sendLockUpdates delivers queued lock announcements, in order, until the
// server stops; what is queued by then is still sent.
func (s *server) sendLockUpdates() {
	send := func(u locks.Update) {
		payload, err := json.Marshal(u.Payload)
		if err != nil {
			s.log.Error("encode lock update", "err", err)
			return
		}
		if err := s.hub.Emit(context.Background(), broadcast.Event{Name: u.Event(), Payload: payload}); err != nil {
			s.log.Error("announce lock update", "event", u.Event(), "err", err)
		}
	}
	for {
		select {
		case u := <-s.lockUpdates:
			send(u)
		case <-s.stopping:
			for {
				select {
				case u := <-s.lockUpdates:
					send(u)
				default:
					return
				}
			}
		}
	}
}

// changeConsumer feeds committed transactions through the router to the hub.
type changeConsumer struct {
	s *server
	// open: a transaction began and has not been committed. A Begin while
	// one is open means the connection dropped mid-transaction.
	open bool
}

func (c *changeConsumer) Begin(_ context.Context, tx cdc.TxInfo) error {
	if c.open {
		c.forget()
	}
	c.open = true
	c.s.router.Begin(tx)
	return nil
}

func (c *changeConsumer) Change(_ context.Context, ch *cdc.Change) error {
	c.s.router.Change(ch)
	return nil
}

func (c *changeConsumer) Commit(ctx context.Context, tx cdc.TxInfo) error {
	c.open = false
	b := c.s.router.Commit(tx)
	var err error
	// (With the Redis stream, fencedConsumer commits instead.)
	switch {
	case c.s.pubsub != nil:
		if err = c.emitLocal(ctx, tx, b.Emits); err == nil {
			err = c.requestRevocations(ctx, tx, b.Users)
		}
	default:
		if err = c.emitLocal(ctx, tx, b.Emits); err == nil {
			for _, u := range b.Users {
				c.s.revoke(u)
			}
		}
	}
	if err != nil {
		// The transaction comes again: a router that remembered its rows
		// would take them for unchanged and drop them.
		c.forget()
		return err
	}
	return nil
}

// revocation says which sockets of every instance an account change cuts,
// as rooms for a cluster disconnect request: all of the user's sockets when
// the row is deleted or locked out; on a role change, those whose token
// carries another role (a socket is in role:<its token's role>). A row whose
// role is empty cuts every socket of the user: no room marks "no role", and
// cutting too many beats serving a demoted user. ok is false when nothing
// is cut.
func revocation(u route.UserChange, now time.Time) (opts socketio.BroadcastOptions, why string, ok bool) {
	opts.Rooms = []string{"user:" + u.ID}
	switch {
	case u.Deleted:
		return opts, "user deleted", true
	case u.LockedUntil.After(now):
		return opts, "user locked out", true
	case u.RoleKnown:
		if u.Role != "" {
			opts.Except = []string{"role:" + u.Role}
		}
		return opts, "role changed", true
	}
	return socketio.BroadcastOptions{}, "", false
}

// requestRevocations publishes a disconnect request per account change on
// the pub/sub adapter's request channel; every instance, this one included,
// applies it to its sockets.
func (c *changeConsumer) requestRevocations(ctx context.Context, tx cdc.TxInfo, users []route.UserChange) error {
	if len(users) == 0 {
		return nil
	}
	a, ok := c.s.ns.Adapter().(*redisadapter.PubSubAdapter)
	if !ok {
		return fmt.Errorf("revoke sockets at %s: namespace adapter is %T, not Redis pub/sub", tx.EndLSN, c.s.ns.Adapter())
	}
	now := time.Now()
	for _, u := range users {
		opts, why, ok := revocation(u, now)
		if !ok {
			continue
		}
		if err := a.RequestDisconnect(ctx, opts); err != nil {
			return fmt.Errorf("revoke sockets of user %s (%s) at %s: %w", u.ID, why, tx.EndLSN, err)
		}
		c.s.log.Info("revoking sockets on every instance", "user", u.ID, "reason", why, "except", opts.Except)
	}
	return nil
}

// forget replaces the router by a fresh one: its noise suppression
// remembers rows of transactions that were not delivered.
func (c *changeConsumer) forget() {
	r, err := route.New(c.s.router.Config(), c.s.log)
	if err != nil {
		c.s.log.Error("rebuild router", "err", err)
		return
	}
	c.s.router = r
}

func (c *changeConsumer) emitLocal(ctx context.Context, tx cdc.TxInfo, emits []route.Emit) error {
	for _, e := range emits {
		ev := broadcast.Event{Name: e.Event, Rooms: e.Rooms, Except: e.Except, Payload: e.Payload}
		if !e.All && len(e.Rooms) == 0 {
			continue // nobody is in the audience of this row
		}
		if err := c.s.hub.Emit(ctx, ev); err != nil {
			return fmt.Errorf("emit %s for %s at %s: %w", e.Event, e.Table, tx.CommitLSN, err)
		}
	}
	return nil
}

// publishFenced appends the transaction's events to the Redis stream in one
// step, only if no reader published this transaction (or a later one)
// already: a reader that crashed after publishing but before acknowledging,
// or one that was paused while another took over, cannot double events. The
// position is the transaction's end LSN, what PostgreSQL is acknowledged,
// not each event's index: a new reader's router (its noise suppression is
// per process) may produce a different list of events for the same
// transaction. A fenced transaction counts as accepted.
// fencedConsumer publishes to the Redis stream: each transaction's events
// (and its revocation disconnects) as one fenced batch, and the
// transactions the reader has already read behind one another in one Redis
// call (cdc.GroupCommitter), each still fenced on its own.
type fencedConsumer struct {
	changeConsumer
	pending []redisadapter.FencedBatch
	entries int   // stream entries among pending
	revoked []any // revocations among pending, for the log
}

func (c *fencedConsumer) Commit(ctx context.Context, tx cdc.TxInfo) error {
	if err := c.CommitDeferred(ctx, tx); err != nil {
		return err
	}
	return c.Flush(ctx)
}

// maxPendingEntries bounds the stream entries one fenced script call
// appends: Redis runs a script to its end, and every lock operation waits
// behind it.
const maxPendingEntries = 1024

// CommitDeferred routes tx and keeps its batch for Flush. Past
// maxPendingEntries it flushes what it holds (making transactions durable
// before the reader accepts them is always safe: if the reader's own Flush
// fails later, they come again and are fenced).
func (c *fencedConsumer) CommitDeferred(ctx context.Context, tx cdc.TxInfo) error {
	c.open = false
	b := c.s.router.Commit(tx)
	items, revoked, err := fencedItems(tx, b.Emits, b.Users)
	if err != nil {
		c.Reset()
		return err
	}
	if len(items) == 0 {
		return nil // nothing to publish; the mark need not move for it
	}
	c.pending = append(c.pending, redisadapter.FencedBatch{Items: items, Position: redisadapter.Position{LSN: uint64(tx.EndLSN)}})
	c.revoked = append(c.revoked, revoked...)
	c.entries += len(items)
	if c.entries >= maxPendingEntries {
		return c.Flush(ctx)
	}
	return nil
}

// Flush appends every pending batch in one script call.
func (c *fencedConsumer) Flush(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	a, ok := c.s.ns.Adapter().(*redisadapter.StreamsAdapter)
	if !ok {
		c.Reset()
		return fmt.Errorf("publish transactions: namespace adapter is %T, not the Redis stream", c.s.ns.Adapter())
	}
	appended, err := a.PublishBatches(ctx, c.pending, c.s.markKey)
	if err != nil {
		n, first, last := len(c.pending), c.pending[0].Position, c.pending[len(c.pending)-1].Position
		c.Reset()
		return fmt.Errorf("publish %d transactions (end %s to %s): %w", n, first, last, err)
	}
	for i, ok := range appended {
		if !ok {
			c.s.log.Debug("transaction already published: skipped", "end_lsn", c.pending[i].Position)
		}
	}
	c.s.log.Debug("published to the stream", "transactions", len(c.pending), "entries", c.entries)
	if len(c.revoked) > 0 {
		c.s.log.Info("revoking sockets on every instance", "users", c.revoked)
	}
	clear(c.pending)
	c.pending, c.entries, c.revoked = c.pending[:0], 0, nil
	return nil
}

// Reset drops what was not flushed: those transactions come again, and a
// router that remembered their rows would take them for unchanged.
func (c *fencedConsumer) Reset() {
	clear(c.pending)
	c.pending, c.entries, c.revoked = c.pending[:0], 0, nil
	c.forget()
}

// fencedItems turns one transaction's emits and account changes into the
// entries of its fenced batch.
func fencedItems(tx cdc.TxInfo, emits []route.Emit, users []route.UserChange) (items []redisadapter.BatchItem, revoked []any, err error) {
	items = make([]redisadapter.BatchItem, 0, len(emits)+len(users))
	for _, e := range emits {
		if !e.All && len(e.Rooms) == 0 {
			continue // nobody is in the audience of this row
		}
		if len(e.Payload) != 0 && !json.Valid(e.Payload) {
			return nil, nil, fmt.Errorf("emit %s for %s at %s: invalid JSON payload", e.Event, e.Table, tx.CommitLSN)
		}
		p := &parser.Packet{Type: parser.Event, Namespace: "/", ID: parser.NoID, Name: e.Event,
			Args: []json.RawMessage{parser.AppendJSONString(nil, e.Event)}}
		if len(e.Payload) != 0 {
			p.Args = append(p.Args, json.RawMessage(e.Payload))
		}
		items = append(items, redisadapter.BatchItem{Packet: p, Opts: socketio.BroadcastOptions{Rooms: e.Rooms, Except: e.Except}})
	}
	// After the events, as the local path revokes after emitting.
	now := time.Now()
	for _, u := range users {
		if opts, why, ok := revocation(u, now); ok {
			items = append(items, redisadapter.BatchItem{Disconnect: true, Opts: opts})
			revoked = append(revoked, u.ID+" ("+why+")")
		}
	}
	return items, revoked, nil
}

// revoke disconnects the sockets whose token no longer matches the account
// row: deleted, role changed, or locked out.
func (s *server) revoke(u route.UserChange) {
	now := time.Now()
	for _, sock := range s.ns.To("user:" + u.ID).Sockets() {
		st := stateOf(sock)
		if st == nil {
			continue
		}
		var why string
		switch {
		case u.Deleted:
			why = "user deleted"
		case u.RoleKnown && u.Role != st.id.Role:
			why = "role changed"
		case u.LockedUntil.After(now):
			why = "user locked out"
		default:
			continue
		}
		s.log.Info("revoking socket", "user", u.ID, "socket", sock.ID(), "reason", why)
		sock.Disconnect(false)
	}
}

// checkSchema verifies the routing config against the live schema, fills
// each table's key from its primary key when the config names none, and
// returns each published table's replica identity columns (nil for
// REPLICA IDENTITY FULL), which decide its publication column list.
func checkSchema(ctx context.Context, dsn string, rcfg *route.Config, log *slog.Logger) (map[string][]string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT n.nspname || '.' || c.relname, a.attname
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
		ORDER BY 1, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	existing := map[string][]string{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		existing[table] = append(existing[table], column)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	if err := rcfg.CheckSchema(existing); err != nil {
		return nil, fmt.Errorf("routing config does not match the database: %w", err)
	}
	identity := map[string][]string{}
	for _, spec := range rcfg.TableSpecs(nil) {
		qname := spec.Table.String()
		var replident string
		var pk, identCols []string
		err := conn.QueryRow(ctx, `
			SELECT c.relreplident::text,
			       coalesce((SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
			                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
			       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
			                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			                 WHERE i.indrelid = c.oid
			                   AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}')
			FROM pg_class c WHERE c.oid = $1::regclass`, qname).Scan(&replident, &pk, &identCols)
		if err != nil {
			return nil, fmt.Errorf("read key of %s: %w", qname, err)
		}
		if replident == "f" {
			identity[qname] = nil
		} else if len(identCols) > 0 {
			identity[qname] = identCols
		}
		t := tableConfig(rcfg, qname)
		if t == nil {
			continue // read only to revoke sockets
		}
		if len(t.Key) == 0 && allAllowed(t, pk) {
			t.Key = pk
		}
		if replident != "f" && audienceNeedsOldRow(t) {
			log.Warn("table's audience uses a non-key column but the table lacks REPLICA IDENTITY FULL: its DELETEs reach only the fixed rooms, and moves are not detected",
				"table", qname, "fix", fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;", qname))
		}
		if replident == "f" && len(t.Columns) > 0 {
			log.Info("table has REPLICA IDENTITY FULL, so PostgreSQL 15 cannot publish it with a column list: every column enters the replication stream; the allow-list still keeps the others out of events",
				"table", qname)
		}
	}
	return identity, nil
}

// tableConfig finds a table's route by its schema-qualified name, whether
// the config spells it qualified or not.
func tableConfig(rcfg *route.Config, qname string) *route.TableConfig {
	for name, t := range rcfg.Tables {
		if route.QualifiedName(name) == qname {
			return t
		}
	}
	return nil
}

// audienceNeedsOldRow reports whether a room is built from a column outside
// the key: routing a DELETE there needs the whole old row.
func audienceNeedsOldRow(t *route.TableConfig) bool {
	for _, room := range t.Audience {
		for part := range strings.SplitSeq(room, "{") {
			col, _, ok := strings.Cut(part, "}")
			if !ok {
				continue
			}
			if !slices.Contains(t.Key, col) {
				return true
			}
		}
	}
	return false
}

// allAllowed reports whether every column is in the table's allow-list (an
// empty list allows all): a key outside it would leak in DELETE payloads.
func allAllowed(t *route.TableConfig, cols []string) bool {
	if len(t.Columns) == 0 {
		return true
	}
	for _, c := range cols {
		if !slices.Contains(t.Columns, c) {
			return false
		}
	}
	return true
}
