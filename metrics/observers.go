package metrics

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/relay"
)

// SocketObserver counts connects, disconnects by reason and recoveries;
// register it with socketio.Server.AddObserver.
func (m *Metrics) SocketObserver() socketio.Observer { return m.socketObs }

// LockObserver counts lock operations by result, their latency and the
// expiries announced; pass it as locks.Config.Observer.
func (m *Metrics) LockObserver() locks.Observer { return m.lockObs }

type socketObserver struct{ m *Metrics }

func (o socketObserver) SocketConnected(s *socketio.Socket) {
	o.m.connects.with(s.Namespace().Name()).Inc()
	switch {
	case s.Recovered():
		o.m.recoveries.WithLabelValues("recovered").Inc()
	case s.RecoveryAttempted():
		o.m.recoveries.WithLabelValues("failed").Inc()
	}
}

func (o socketObserver) SocketDisconnected(s *socketio.Socket, reason string, _ []string) {
	o.m.disconnects.with(s.Namespace().Name(), reason).Inc()
}

func (socketObserver) RoomsJoined(*socketio.Socket, []string) {}
func (socketObserver) RoomLeft(*socketio.Socket, string)      {}

type lockObserver struct{ m *Metrics }

func (o lockObserver) LockOperation(op, result string, took time.Duration) {
	o.m.lockOps.with(op, result).Inc()
	o.m.lockLatency.with(op).Observe(took.Seconds())
}

func (o lockObserver) LocksExpired(n int) { o.m.lockExpiries.Add(float64(n)) }

// ReaderObserver counts takeovers (this reader leading after standing by)
// and the errors that end replication sessions, by kind; pass it as
// cdc.Config.Observer.
func (m *Metrics) ReaderObserver() cdc.Observer { return &readerObserver{m: m} }

type readerObserver struct {
	m *Metrics
	// stoodBy: the reader found the slot held since it last led, so
	// leading next is taking over. Calls come from the reader's goroutines
	// one at a time.
	stoodBy atomic.Bool
}

func (o *readerObserver) StateChanged(_, to cdc.State) {
	switch to {
	case cdc.StateStandby:
		o.stoodBy.Store(true)
	case cdc.StateLeader:
		if o.stoodBy.Swap(false) {
			o.m.ReaderTookOver()
		}
	}
}

func (o *readerObserver) SessionFailed(err error) { o.m.ReplicationError(cdc.ErrorKind(err)) }

// pausedFor is how long after Redis refused a transaction the reader
// counts as paused, unless a publish succeeds meanwhile. While
// transactions wait, the reader retries well within it (its backoff is at
// most 10 s); with none waiting, it is reading again.
const pausedFor = 30 * time.Second

// publishPaused reports whether the relay's latest publish was refused,
// within pausedFor.
func (m *Metrics) publishPaused() bool {
	refused := m.lastRefused.Load()
	return refused > m.lastPublished.Load() && time.Since(time.Unix(0, refused)) < pausedFor
}

// RelayObserver counts what the relay reports; redis says whether its hub
// publishes to Redis, whose latency is then observed. Pass it as
// relay.Config.Observer.
func (m *Metrics) RelayObserver(redis bool) relay.Observer { return relayObserver{m: m, redis: redis} }

type relayObserver struct {
	m     *Metrics
	redis bool
}

func (o relayObserver) TransactionDecoded()                 { o.m.TransactionDecoded() }
func (o relayObserver) RowsDecoded(table, op string, n int) { o.m.RowsDecoded(table, op, n) }
func (o relayObserver) EventEmitted(event string, n int)    { o.m.EventEmitted(event, n) }
func (o relayObserver) ResyncSent(table, reason string)     { o.m.ResyncSent(table, reason) }

func (o relayObserver) Published(took time.Duration, err error) {
	now := time.Now().UnixNano()
	if err != nil {
		o.m.lastRefused.Store(now)
		return
	}
	o.m.lastPublished.Store(now)
	if o.redis {
		o.m.RedisPublished(took)
	}
}

// RedisClient says what a Redis client is used for, which decides how its
// failed commands are counted (RedisHook).
type RedisClient int

const (
	// RedisHub is the broadcast hub's client: appends to the stream and
	// pub/sub messages count as "publish", stream reads as "read",
	// recovery sessions as "session".
	RedisHub RedisClient = iota
	// RedisLocks is the lock store's client: everything counts as "lock".
	RedisLocks
)

// RedisHook counts the client's failed commands in
// walcast_redis_errors_total by operation; add it with
// redis.Client.AddHook. A missing key, a script not cached yet (the
// client then sends it whole) and a cancelled call are not failures;
// PING is left to walcast_redis_up.
func (m *Metrics) RedisHook(c RedisClient) redis.Hook { return redisHook{m: m, client: c} }

type redisHook struct {
	m      *Metrics
	client RedisClient
}

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(cmd.Name(), err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && len(cmds) > 0 {
			h.count(cmds[0].Name(), err)
		}
		return err
	}
}

func (h redisHook) count(name string, err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) || strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return
	}
	if op := h.op(name); op != "" {
		h.m.RedisError(op)
	}
}

// op names the operation a command belongs to, "" for none counted.
func (h redisHook) op(name string) string {
	switch name = strings.ToLower(name); {
	case name == "ping", name == "hello", name == "client", name == "auth", name == "select":
		// PING is walcast_redis_up's; the others set up a connection
		// (the client tolerates an older server refusing CLIENT SETINFO),
		// and a connection that cannot be set up fails the command after.
		return ""
	case h.client == RedisLocks:
		return "lock"
	case name == "xread":
		return "read"
	case name == "get", name == "set", name == "del", name == "pttl", name == "xrange":
		return "session"
	case name == "evalsha", name == "eval", name == "xadd", name == "publish", name == "spublish":
		return "publish"
	}
	return "other"
}
