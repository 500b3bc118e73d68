package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/cdc"
)

// Sources are read when Prometheus scrapes. Each may be nil: its metrics
// are then left out rather than reported as zero.
type Sources struct {
	// Reader is this instance's replication reader (cdc.Reader.Status).
	Reader func() cdc.ReaderStatus
	// ReaderPaused reports that the reader holds the slot but stopped
	// reading because Redis refused what it read; its state is then
	// "paused".
	ReaderPaused func() bool
	// Slot is the latest fresh sample of the slot (cdc.SlotSampler.Last).
	Slot func() (cdc.SlotHealth, bool)
	// Delivery are the socket layer's counters.
	Delivery func() DeliveryStats
	// Rooms counts rooms by namespace (RoomsOf).
	Rooms func() map[string]int
	// Redis is nil when walcast runs without Redis.
	Redis func() RedisStatus
	// Ready reports what /readyz reports.
	Ready func() bool
	// LocksHeld counts the locks held (locks.Service.Held); it may call
	// the lock store, within the scrape's timeout.
	LocksHeld func(ctx context.Context) (int, error)
}

// DeliveryStats are cumulative counters of the socket layer (Engine.IO and
// Socket.IO Stats), plus the connections open now.
type DeliveryStats struct {
	Deliveries         uint64
	BytesWritten       uint64
	SlowConsumerCuts   uint64
	SendQueueDrops     uint64
	SocketsByTransport map[string]int
}

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

// readerStates are the values of walcast_replication_reader_state's label,
// all reported (the current one 1) so a query never misses a series.
var readerStates = []string{"reading", "standby", "paused", "reconnecting", "starting", "stopped"}

func readerState(st cdc.State, paused bool) string {
	switch st {
	case cdc.StateLeader:
		if paused {
			return "paused"
		}
		return "reading"
	case cdc.StateStandby:
		return "standby"
	case cdc.StateReconnecting:
		return "reconnecting"
	case cdc.StateStarting:
		return "starting"
	default:
		return "stopped"
	}
}

// walStatuses are pg_replication_slots.wal_status's values.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

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
	descRooms        = desc("walcast_rooms")
	descStreamLen    = desc("walcast_redis_stream_length")
	descRedisUp      = desc("walcast_redis_up")
	descReady        = desc("walcast_ready")
	descLocksHeld    = desc("walcast_locks_held")
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSlotLag, descSlotRetained, descSlotSafe, descSlotActive, descSlotStatus,
		descReaderState, descSinceAck, descDeliveries, descBytes, descSockets, descSlowCuts, descQueueDrops,
		descRooms, descStreamLen, descRedisUp, descReady, descLocksHeld} {
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
		cur := readerState(st.State, s.ReaderPaused != nil && s.ReaderPaused())
		for _, name := range readerStates {
			gauge(descReaderState, b2f(name == cur), name)
		}
		if !st.LastStatusSent.IsZero() {
			gauge(descSinceAck, time.Since(st.LastStatusSent).Seconds())
		}
	}
	if s.Delivery != nil {
		d := s.Delivery()
		counter(descDeliveries, d.Deliveries)
		counter(descBytes, d.BytesWritten)
		counter(descSlowCuts, d.SlowConsumerCuts)
		counter(descQueueDrops, d.SendQueueDrops)
		for _, tr := range []string{"polling", "websocket"} {
			gauge(descSockets, float64(d.SocketsByTransport[tr]), tr)
		}
	}
	if s.Rooms != nil {
		for nsp, n := range s.Rooms() {
			gauge(descRooms, float64(n), nsp)
		}
	}
	if s.Redis != nil {
		r := s.Redis()
		gauge(descRedisUp, b2f(r.Up))
		if r.StreamLength >= 0 {
			gauge(descStreamLen, float64(r.StreamLength))
		}
	}
	if s.Ready != nil {
		gauge(descReady, b2f(s.Ready()))
	}
	if s.LocksHeld != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.m.scrapeTimeout)
		n, err := s.LocksHeld(ctx)
		cancel()
		if err == nil {
			gauge(descLocksHeld, float64(n))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
