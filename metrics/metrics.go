// Package metrics exports walcast's Prometheus metrics (see Catalogue) on a
// registry of its own, and serves them with the operator endpoints.
//
// The packages that do the work do not import Prometheus. What they count
// on the delivery path stays in cheap counters of their own, which this
// package reads when Prometheus scrapes (Sources); what happens as events
// (a lock request answered, a socket gone, a transaction published) comes
// in through the small interfaces those packages define (socketio.Observer,
// locks.Observer) or through the methods of Metrics, which the wiring hands
// to them as hooks.
package metrics

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Options configure New.
type Options struct {
	// Version is the walcast version reported by walcast_build_info.
	Version string
	// Sources are read at scrape time, the polled ones by Run; a nil
	// source leaves its metrics out.
	Sources Sources
	// PollInterval is how often Run asks the polled sources; default 5s.
	PollInterval time.Duration
}

// Metrics holds walcast's metrics. Its methods are safe for concurrent use
// and cheap: a counter add or a histogram observation each.
type Metrics struct {
	reg *prometheus.Registry

	transactions prometheus.Counter
	rows         *boundedVec[prometheus.Counter]
	resyncs      *boundedVec[prometheus.Counter]
	takeovers    prometheus.Counter
	replErrors   *boundedVec[prometheus.Counter]
	emitted      *boundedVec[prometheus.Counter]
	connects     *boundedVec[prometheus.Counter]
	disconnects  *boundedVec[prometheus.Counter]
	authFailures *boundedVec[prometheus.Counter]
	recoveries   *prometheus.CounterVec
	refusals     *boundedVec[prometheus.Counter]
	publish      prometheus.Histogram
	redisErrors  *boundedVec[prometheus.Counter]
	lockOps      *boundedVec[prometheus.Counter]
	lockLatency  *boundedVec[prometheus.Observer]
	lockExpiries prometheus.Counter
	socketObs    socketObserver
	lockObs      lockObserver
	poller       *poller
	// Unix nanoseconds of the relay's last refused and last accepted
	// publish: the reader is paused while the refusal is the later one and
	// recent.
	lastRefused, lastPublished atomic.Int64
}

// latencyBuckets span 0.25 ms to about 8 s: a Redis round trip on the same
// host to a stalled one.
var latencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)

// New builds the registry: the catalogue's metrics, the Go runtime and
// process collectors, and a collector reading opts.Sources.
func New(opts Options) *Metrics {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	m := &Metrics{reg: prometheus.NewRegistry(), poller: &poller{src: opts.Sources, every: opts.PollInterval}}
	counter := func(name string) prometheus.Counter {
		d := lookup(name)
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: d.Name, Help: d.Help})
		m.reg.MustRegister(c)
		return c
	}
	counterVec := func(name string) *boundedVec[prometheus.Counter] {
		d := lookup(name)
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.Name, Help: d.Help}, d.Labels)
		m.reg.MustRegister(v)
		return newBoundedVec[prometheus.Counter](v, len(d.Labels))
	}
	m.transactions = counter("walcast_replication_transactions_total")
	m.rows = counterVec("walcast_replication_rows_total")
	m.resyncs = counterVec("walcast_replication_resyncs_total")
	m.takeovers = counter("walcast_replication_takeovers_total")
	m.replErrors = counterVec("walcast_replication_errors_total")
	m.emitted = counterVec("walcast_events_emitted_total")
	m.connects = counterVec("walcast_socket_connects_total")
	m.disconnects = counterVec("walcast_socket_disconnects_total")
	m.authFailures = counterVec("walcast_auth_failures_total")
	m.refusals = counterVec("walcast_refusals_total")
	m.redisErrors = counterVec("walcast_redis_errors_total")
	m.lockOps = counterVec("walcast_lock_operations_total")
	m.lockExpiries = counter("walcast_lock_expiries_announced_total")

	rec := lookup("walcast_recoveries_total")
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: rec.Name, Help: rec.Help}, rec.Labels)
	m.reg.MustRegister(m.recoveries)
	// Both results exist from the start, so a rate over them is never
	// missing a series.
	m.recoveries.WithLabelValues("recovered")
	m.recoveries.WithLabelValues("failed")

	pub := lookup("walcast_redis_publish_duration_seconds")
	m.publish = prometheus.NewHistogram(prometheus.HistogramOpts{Name: pub.Name, Help: pub.Help, Buckets: latencyBuckets})
	m.reg.MustRegister(m.publish)
	lat := lookup("walcast_lock_ack_duration_seconds")
	lv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: lat.Name, Help: lat.Help, Buckets: latencyBuckets}, lat.Labels)
	m.reg.MustRegister(lv)
	m.lockLatency = newBoundedVec[prometheus.Observer](lv, len(lat.Labels))

	bi := lookup("walcast_build_info")
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: bi.Name, Help: bi.Help}, bi.Labels)
	build.WithLabelValues(versionOr(opts.Version), revision(), runtime.Version()).Set(1)
	m.reg.MustRegister(build)

	m.reg.MustRegister(collectors.NewGoCollector())
	m.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(&sourceCollector{m: m, src: opts.Sources})
	m.socketObs = socketObserver{m}
	m.lockObs = lockObserver{m}
	return m
}

// Registry is the registry the handler serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Run asks the polled sources (Redis, readiness, locks held) every
// PollInterval until ctx ends, so that scrapes read their last answers
// and never wait on another server. Their metrics are left out until the
// first poll, and when Run has not polled for three intervals.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(m.poller.every)
	defer t.Stop()
	for {
		m.poller.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func versionOr(v string) string {
	if v != "" {
		return v
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Replication hooks (the reader and relay report through these).

// TransactionDecoded counts one committed transaction read from the slot.
func (m *Metrics) TransactionDecoded() { m.transactions.Inc() }

// RowsDecoded counts n row changes of table by op (insert, update, delete,
// truncate).
func (m *Metrics) RowsDecoded(table, op string, n int) { m.rows.with(table, op).Add(float64(n)) }

// ResyncSent counts a RESYNC notice for table, with why it was sent.
func (m *Metrics) ResyncSent(table, reason string) { m.resyncs.with(table, reason).Inc() }

// ReaderTookOver counts this instance becoming the slot's reader after
// another instance held it.
func (m *Metrics) ReaderTookOver() { m.takeovers.Inc() }

// ReplicationError counts an error of kind (decode, connection).
func (m *Metrics) ReplicationError(kind string) { m.replErrors.with(kind).Inc() }

// Delivery hooks.

// EventEmitted counts n broadcasts of event. Pass a name from the routing
// file; lock updates as "lock:update", without their resource.
func (m *Metrics) EventEmitted(event string, n int) { m.emitted.with(event).Add(float64(n)) }

// AuthFailed counts a handshake refused for reason (a fixed text, not the
// client's input).
func (m *Metrics) AuthFailed(reason string) { m.authFailures.with(reason).Inc() }

// Refused counts a client request refused by a limit of kind.
func (m *Metrics) Refused(kind string) { m.refusals.with(kind).Inc() }

// Redis hooks.

// RedisPublished observes how long one publish to Redis took.
func (m *Metrics) RedisPublished(took time.Duration) { m.publish.Observe(took.Seconds()) }

// RedisError counts a failed Redis call of op (publish, read, lock, session).
func (m *Metrics) RedisError(op string) { m.redisErrors.with(op).Inc() }
