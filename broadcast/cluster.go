package broadcast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
)

// ClusterAdapter names how instances share events through Redis.
type ClusterAdapter string

const (
	// AdapterStreams: a Redis stream every instance reads back, compatible
	// with @socket.io/redis-streams-adapter; transactions are fenced, so
	// each is delivered once across reader failovers.
	AdapterStreams ClusterAdapter = "streams"
	// AdapterPubSub: Redis pub/sub, compatible with @socket.io/redis-adapter
	// and reachable by @socket.io/redis-emitter; at least once.
	AdapterPubSub ClusterAdapter = "pubsub"
)

// Cluster says how a hub shares events with other instances. The zero
// value is one instance, everything in memory.
type Cluster struct {
	// Redis joins the instances; nil: one instance. The caller closes it,
	// after the hub.
	Redis *redis.Client
	// Adapter is AdapterStreams (when empty) or AdapterPubSub.
	Adapter ClusterAdapter
	// StreamWindow is how long events stay in the stream (streams only;
	// default redisadapter.DefaultStreamWindow).
	StreamWindow time.Duration
	// MarkKey is the Redis key of the high-water mark that fences published
	// transactions (streams only; required with them): use one per source
	// of positions, such as one per replication slot.
	MarkKey string
	// LocalNamespaces stay off Redis: their sockets and broadcasts are
	// this instance's alone (an operator tool each instance serves for
	// itself, such as the Admin UI's namespace). They also stay out of the
	// stream that Node peers read.
	LocalNamespaces []string
	// OnState, when set, receives the State of every transaction any
	// instance publishes, on every instance, in transaction order, after
	// its events and before its revocations: in memory when Publish runs;
	// with pub/sub when the walcast-only channel delivers it (lost for an
	// instance cut off from Redis); with streams when the stream is read
	// back, exactly once and caught up after an outage. It is set before
	// the hub reads anything, so nothing published after Open is missed.
	OnState func(state []byte)
}

// Open returns a hub whose instances share events as cluster says: it
// sets cfg.NewAdapter (which must be nil) and, with Redis, fails when
// Redis cannot be reached.
func Open(ctx context.Context, cfg Config, cluster Cluster) (*Hub, error) {
	if cfg.NewAdapter != nil {
		return nil, errors.New("open hub: Config.NewAdapter is set; Open chooses the adapter from the Cluster")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cluster.Redis == nil {
		h := New(cfg)
		h.carrier = memoryCarrier{hub: h, onState: cluster.OnState}
		return h, nil
	}
	switch cluster.Adapter {
	case AdapterStreams, "":
		if cluster.MarkKey == "" {
			return nil, errors.New("open hub: the streams adapter needs a mark key")
		}
		streams, err := redisadapter.NewStreams(ctx, cluster.Redis, redisadapter.StreamsOptions{Window: cluster.StreamWindow, Logger: log, OnState: cluster.OnState})
		if err != nil {
			return nil, fmt.Errorf("connect the Redis stream adapter: %w", err)
		}
		cfg.NewAdapter = cluster.localFirst(streams.NewAdapter)
		h := New(cfg)
		h.streams = streams
		h.carrier = &streamsCarrier{streams: streams, client: cluster.Redis, markKey: cluster.MarkKey, log: log}
		return h, nil
	case AdapterPubSub:
		if err := cluster.Redis.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("connect the Redis pub/sub adapter: %w", err)
		}
		pubsub := redisadapter.NewPubSub(cluster.Redis, redisadapter.PubSubOptions{Logger: log, OnState: cluster.OnState})
		cfg.NewAdapter = cluster.localFirst(pubsub.NewAdapter)
		h := New(cfg)
		h.carrier = pubsubCarrier{hub: h, pubsub: pubsub}
		return h, nil
	}
	return nil, fmt.Errorf("open hub: cluster adapter %q is not %s or %s", cluster.Adapter, AdapterStreams, AdapterPubSub)
}

// localFirst gives LocalNamespaces a memory adapter and the others the
// cluster's.
func (c Cluster) localFirst(shared func(*socketio.Namespace) socketio.Adapter) func(*socketio.Namespace) socketio.Adapter {
	return func(n *socketio.Namespace) socketio.Adapter {
		if slices.Contains(c.LocalNamespaces, n.Name()) {
			return socketio.NewMemoryAdapter()
		}
		return shared(n)
	}
}

// StreamLength is the number of entries in the Redis events stream; ok is
// false when the hub has no stream (in memory, or pub/sub).
func (h *Hub) StreamLength(ctx context.Context) (n int64, ok bool, err error) {
	if h.streams == nil {
		return 0, false, nil
	}
	n, err = h.streams.Length(ctx)
	return n, err == nil, err
}
