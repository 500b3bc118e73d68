package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/cdc"
)

// Sources are read when Prometheus scrapes, except those marked polled,
// which ask other servers and are refreshed by Run so that a scrape never
// waits on them. Each may be nil: its metrics are then left out rather
// than reported as zero.
type Sources struct {
	// Reader is this instance's replication reader (cdc.Reader.Status).
	Reader func() cdc.ReaderStatus
	// Slot is the latest fresh sample of the slot (cdc.SlotSampler.Last).
	Slot func() (cdc.SlotHealth, bool)
	// Delivery are the socket layer's delivery counters and open
	// connections (DeliveryOf); ok false leaves them out.
	Delivery func() (d DeliveryStats, ok bool)
	// Rooms counts rooms by namespace (RoomsOf).
	Rooms func() map[string]int
	// Redis is nil when walcast runs without Redis. Polled.
	Redis func(ctx context.Context) RedisStatus
	// Ready reports what /readyz reports. Polled.
	Ready func(ctx context.Context) bool
	// LocksHeld counts the locks held (gateway.Gateway.LocksHeld). Polled.
	LocksHeld func(ctx context.Context) (int, error)
}

// DeliveryStats are cumulative counters of the socket layer, and the
// connections open now.
type DeliveryStats struct {
	// Sockets counts the Engine.IO connections open now by transport
	// (polling, websocket): each connection once, however many namespaces
	// it joined.
	Sockets          map[string]int
	Deliveries       uint64
	BytesWritten     uint64
	SlowConsumerCuts uint64
	SendQueueDrops   uint64
	// Refusals counts handshakes refused and connections cut by the limits
	// on clients, by the kinds in refusalKinds.
	Refusals map[string]uint64
}

// refusalKinds are walcast_connection_refusals_total's kinds, all reported
// so a query never misses a series.
var refusalKinds = []string{"payload_too_large", "slow_message", "slow_body", "pending", "pending_per_address", "connect_timeout"}

// RedisStatus is Redis as this instance sees it.
type RedisStatus struct {
	Up bool
	// StreamLength is the events stream's length; negative when unknown
	// (the pub/sub adapter has no stream).
	StreamLength int64
}

// RoomsOf counts the rooms of srv's namespaces whose adapters can tell
// (the memory adapter and the adapters built on it).
func RoomsOf(srv *socketio.Server) func() map[string]int {
	return func() map[string]int {
		out := map[string]int{}
		for _, n := range srv.Namespaces() {
			if c, ok := n.Adapter().(interface{ RoomCount() int }); ok {
				out[n.Name()] = c.RoomCount()
			}
		}
		return out
	}
}

// DeliveryOf reads the delivery counters and open connections of srv's
// Engine.IO server from one snapshot (engineio.Server.Stats: each session
// counts under its own lock, summed only here, when Prometheus scrapes).
func DeliveryOf(srv *socketio.Server) func() (DeliveryStats, bool) {
	return func() (DeliveryStats, bool) {
		sst := srv.Stats()
		st := sst.EngineIO
		r := st.Refused
		return DeliveryStats{Sockets: map[string]int{"websocket": st.SessionsWebSocket, "polling": st.SessionsPolling},
			Deliveries: st.Delivered, BytesWritten: st.BytesWritten,
			SlowConsumerCuts: st.SlowConsumerCuts, SendQueueDrops: st.Dropped,
			Refusals: map[string]uint64{
				"payload_too_large": r.PayloadTooLarge, "slow_message": r.SlowMessage, "slow_body": r.SlowBody,
				"pending": r.PendingOverall, "pending_per_address": r.PendingPerAddress,
				"connect_timeout": sst.ConnectTimeouts,
			}}, true
	}
}

// readerStates are the values of walcast_replication_reader_state's label,
// all reported (the current one 1) so a query never misses a series.
var readerStates = []string{"reading", "standby", "paused", "reconnecting", "starting", "stopped"}

// readerState names the reader's state; paused: Redis refused what it read
// lately (it stays the slot's reader, retrying).
func readerState(st cdc.State, paused bool) string {
	switch st {
	case cdc.StateLeader, cdc.StateReconnecting:
		if paused {
			return "paused"
		}
		if st == cdc.StateLeader {
			return "reading"
		}
		return "reconnecting"
	case cdc.StateStandby:
		return "standby"
	case cdc.StateStarting:
		return "starting"
	default:
		return "stopped"
	}
}

// walStatuses are pg_replication_slots.wal_status's values.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// polled is what Run last learned from the polled sources.
type polled struct {
	at          time.Time
	redis       RedisStatus
	ready       bool
	locksHeld   int
	locksHeldOK bool
}

// poller refreshes the polled sources.
type poller struct {
	src   Sources
	every time.Duration

	mu   sync.Mutex
	last polled
}

// poll asks every polled source once, each within the interval.
func (p *poller) poll(ctx context.Context) {
	var got polled
	call := func(f func(ctx context.Context)) {
		ctx, cancel := context.WithTimeout(ctx, p.every)
		defer cancel()
		f(ctx)
	}
	if p.src.Redis != nil {
		call(func(ctx context.Context) { got.redis = p.src.Redis(ctx) })
	}
	if p.src.Ready != nil {
		call(func(ctx context.Context) { got.ready = p.src.Ready(ctx) })
	}
	if p.src.LocksHeld != nil {
		call(func(ctx context.Context) {
			n, err := p.src.LocksHeld(ctx)
			got.locksHeld, got.locksHeldOK = n, err == nil
		})
	}
	got.at = time.Now()
	p.mu.Lock()
	p.last = got
	p.mu.Unlock()
}

// fresh returns the last poll unless Run has not polled yet or stopped.
func (p *poller) fresh() (polled, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last.at.IsZero() || time.Since(p.last.at) > 3*p.every {
		return polled{}, false
	}
	return p.last, true
}

// sourceCollector turns Sources into samples at scrape time.
type sourceCollector struct {
	m   *Metrics
	src Sources
}

func desc(name string) *prometheus.Desc {
	d := lookup(name)
	return prometheus.NewDesc(d.Name, d.Help, d.Labels, nil)
}

var (
	descSlotLag      = desc("walcast_replication_slot_lag_bytes")
	descSlotRetained = desc("walcast_replication_slot_retained_wal_bytes")
	descSlotSafe     = desc("walcast_replication_slot_safe_wal_size_bytes")
	descSlotActive   = desc("walcast_replication_slot_active")
	descSlotStatus   = desc("walcast_replication_slot_wal_status")
	descReaderState  = desc("walcast_replication_reader_state")
	descSinceAck     = desc("walcast_replication_seconds_since_ack")
	descDeliveries   = desc("walcast_deliveries_total")
	descBytes        = desc("walcast_delivered_bytes_total")
	descSockets      = desc("walcast_sockets")
	descSlowCuts     = desc("walcast_slow_consumer_cuts_total")
	descQueueDrops   = desc("walcast_send_queue_drops_total")
	descConnRefusals = desc("walcast_connection_refusals_total")
	descRooms        = desc("walcast_rooms")
	descStreamLen    = desc("walcast_redis_stream_length")
	descRedisUp      = desc("walcast_redis_up")
	descReady        = desc("walcast_ready")
	descLocksHeld    = desc("walcast_locks_held")
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSlotLag, descSlotRetained, descSlotSafe, descSlotActive, descSlotStatus,
		descReaderState, descSinceAck, descDeliveries, descBytes, descSockets, descSlowCuts, descQueueDrops,
		descConnRefusals, descRooms, descStreamLen, descRedisUp, descReady, descLocksHeld} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if s.Slot != nil {
		if h, ok := s.Slot(); ok && h.Exists {
			gauge(descSlotLag, float64(h.LagBytes), h.Slot)
			gauge(descSlotRetained, float64(h.RetainedBytes), h.Slot)
			if h.SafeWALSize != nil {
				gauge(descSlotSafe, float64(*h.SafeWALSize), h.Slot)
			}
			gauge(descSlotActive, b2f(h.Active), h.Slot)
			for _, st := range walStatuses {
				gauge(descSlotStatus, b2f(h.WALStatus == st), h.Slot, st)
			}
		}
	}
	if s.Reader != nil {
		st := s.Reader()
		cur := readerState(st.State, c.m.publishPaused())
		for _, name := range readerStates {
			gauge(descReaderState, b2f(name == cur), name)
		}
		if !st.LastStatusSent.IsZero() {
			gauge(descSinceAck, time.Since(st.LastStatusSent).Seconds())
		}
	}
	if s.Delivery != nil {
		if d, ok := s.Delivery(); ok {
			counter(descDeliveries, d.Deliveries)
			counter(descBytes, d.BytesWritten)
			counter(descSlowCuts, d.SlowConsumerCuts)
			counter(descQueueDrops, d.SendQueueDrops)
			for _, tr := range []string{"polling", "websocket"} {
				gauge(descSockets, float64(d.Sockets[tr]), tr)
			}
			if d.Refusals != nil {
				for _, kind := range refusalKinds {
					ch <- prometheus.MustNewConstMetric(descConnRefusals, prometheus.CounterValue, float64(d.Refusals[kind]), kind)
				}
			}
		}
	}
	if s.Rooms != nil {
		for nsp, n := range s.Rooms() {
			gauge(descRooms, float64(n), nsp)
		}
	}
	p, ok := c.m.poller.fresh()
	if !ok {
		return
	}
	if s.Redis != nil {
		gauge(descRedisUp, b2f(p.redis.Up))
		if p.redis.StreamLength >= 0 {
			gauge(descStreamLen, float64(p.redis.StreamLength))
		}
	}
	if s.Ready != nil {
		gauge(descReady, b2f(p.ready))
	}
	if s.LocksHeld != nil && p.locksHeldOK {
		gauge(descLocksHeld, float64(p.locksHeld))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
