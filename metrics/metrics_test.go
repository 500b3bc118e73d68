package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/walcast/walcast/cdc"
)

// allSources reports fixed values from every source.
func allSources() Sources {
	safe := int64(1 << 30)
	return Sources{
		Reader: func() cdc.ReaderStatus {
			return cdc.ReaderStatus{State: cdc.StateLeader, LastStatusSent: time.Now().Add(-3 * time.Second)}
		},
		Slot: func() (cdc.SlotHealth, bool) {
			return cdc.SlotHealth{Slot: "walcast", Exists: true, Active: true, LagBytes: 1234, RetainedBytes: 5678, WALStatus: "reserved", SafeWALSize: &safe}, true
		},
		Delivery: func() (DeliveryStats, bool) {
			return DeliveryStats{Sockets: map[string]int{"websocket": 7, "polling": 1}, Deliveries: 10, BytesWritten: 3000, SlowConsumerCuts: 1, SendQueueDrops: 2, Refusals: map[string]uint64{"pending": 4}}, true
		},
		Rooms:     func() map[string]int { return map[string]int{"/": 4} },
		Redis:     func(context.Context) RedisStatus { return RedisStatus{Up: true, StreamLength: 99} },
		Ready:     func(context.Context) bool { return true },
		LocksHeld: func(context.Context) (int, error) { return 3, nil },
	}
}

// newPolled is New with the polled sources asked once, as Run does.
func newPolled(opts Options) *Metrics {
	m := New(opts)
	m.poller.poll(context.Background())
	return m
}

// exercise calls every hook once, so every labelled series exists.
func exercise(m *Metrics) {
	m.TransactionDecoded()
	m.RowsDecoded("members", "insert", 2)
	m.ResyncSent("members", "truncate")
	m.ReaderTookOver()
	m.ReplicationError("decode")
	m.EventEmitted("member:update", 1)
	m.AuthFailed("invalid token")
	m.Refused("rooms")
	m.RedisPublished(3 * time.Millisecond)
	m.RedisError("publish")
	m.connects.with("/").Inc()
	m.disconnects.with("/", "transport close").Inc()
	m.lockObs.LockOperation("acquire", "taken", time.Millisecond)
	m.lockObs.LocksExpired(1)
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func kindOf(f *dto.MetricFamily) Kind {
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return Counter
	case dto.MetricType_GAUGE:
		return Gauge
	case dto.MetricType_HISTOGRAM:
		return Histogram
	case dto.MetricType_SUMMARY:
		return "summary"
	}
	return Kind(f.GetType().String())
}

// TestCatalogueIsWhatIsExported: with every source and hook fed, the
// registry exports exactly the catalogue's walcast_ metrics, with its types
// and label names, and the runtime metrics it names.
func TestCatalogueIsWhatIsExported(t *testing.T) {
	m := newPolled(Options{Version: "v1.2.3", Sources: allSources()})
	exercise(m)
	fams := gather(t, m)
	for _, c := range Catalogue() {
		f, ok := fams[c.Name]
		if !ok {
			t.Errorf("%s is in the catalogue but not exported", c.Name)
			continue
		}
		if kindOf(f) != c.Kind {
			t.Errorf("%s: exported as %s, catalogue says %s", c.Name, kindOf(f), c.Kind)
		}
		if !strings.HasPrefix(c.Name, "walcast_") {
			continue
		}
		if f.GetHelp() != c.Help {
			t.Errorf("%s: help %q, catalogue %q", c.Name, f.GetHelp(), c.Help)
		}
		for _, s := range f.GetMetric() {
			var names []string
			for _, l := range s.GetLabel() {
				names = append(names, l.GetName())
			}
			want := slices.Clone(c.Labels)
			slices.Sort(want)
			slices.Sort(names)
			if !slices.Equal(names, want) {
				t.Errorf("%s: series with labels %v, catalogue says %v", c.Name, names, want)
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "walcast_") && !slices.ContainsFunc(Catalogue(), func(c Metric) bool { return c.Name == name }) {
			t.Errorf("%s is exported but not in the catalogue", name)
		}
	}
	bi := fams["walcast_build_info"].GetMetric()[0]
	if labels := labelMap(bi); labels["version"] != "v1.2.3" || !strings.HasPrefix(labels["go_version"], "go") {
		t.Errorf("build info labels %v", labels)
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value finds the series of name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		l := labelMap(s)
		match := true
		for k, v := range want {
			if l[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.GetCounter().GetValue(), true
		case s.Gauge != nil:
			return s.GetGauge().GetValue(), true
		case s.Histogram != nil:
			return float64(s.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestSourceValues: what the sources report is what is exported.
func TestSourceValues(t *testing.T) {
	m := newPolled(Options{Sources: allSources()})
	exercise(m)
	fams := gather(t, m)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"walcast_replication_slot_lag_bytes", map[string]string{"slot": "walcast"}, 1234},
		{"walcast_replication_slot_retained_wal_bytes", map[string]string{"slot": "walcast"}, 5678},
		{"walcast_replication_slot_safe_wal_size_bytes", map[string]string{"slot": "walcast"}, 1 << 30},
		{"walcast_replication_slot_active", map[string]string{"slot": "walcast"}, 1},
		{"walcast_replication_slot_wal_status", map[string]string{"status": "reserved"}, 1},
		{"walcast_replication_slot_wal_status", map[string]string{"status": "lost"}, 0},
		{"walcast_replication_reader_state", map[string]string{"state": "reading"}, 1},
		{"walcast_replication_reader_state", map[string]string{"state": "standby"}, 0},
		{"walcast_deliveries_total", nil, 10},
		{"walcast_delivered_bytes_total", nil, 3000},
		{"walcast_sockets", map[string]string{"transport": "websocket"}, 7},
		{"walcast_sockets", map[string]string{"transport": "polling"}, 1},
		{"walcast_slow_consumer_cuts_total", nil, 1},
		{"walcast_send_queue_drops_total", nil, 2},
		{"walcast_rooms", map[string]string{"namespace": "/"}, 4},
		{"walcast_redis_up", nil, 1},
		{"walcast_redis_stream_length", nil, 99},
		{"walcast_ready", nil, 1},
		{"walcast_locks_held", nil, 3},
		{"walcast_replication_rows_total", map[string]string{"table": "members", "op": "insert"}, 2},
		{"walcast_redis_publish_duration_seconds", nil, 1},
		{"walcast_lock_ack_duration_seconds", map[string]string{"op": "acquire"}, 1},
		{"walcast_recoveries_total", map[string]string{"result": "failed"}, 0},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if v, ok := value(t, fams, "walcast_replication_seconds_since_ack", nil); !ok || v < 3 || v > 60 {
		t.Errorf("seconds since ack %v (present %v), want about 3", v, ok)
	}
}

// TestMissingSources: a source that is not set, a stale slot sample, a
// standby without slot numbers and a lock store that fails leave their
// metrics out instead of reporting zeros.
func TestMissingSources(t *testing.T) {
	src := allSources()
	src.Slot = func() (cdc.SlotHealth, bool) { return cdc.SlotHealth{Slot: "walcast"}, false }
	src.LocksHeld = func(context.Context) (int, error) { return 0, errors.New("redis down") }
	src.Delivery = func() (DeliveryStats, bool) { return DeliveryStats{}, false }
	src.Redis = nil
	src.Reader = func() cdc.ReaderStatus { return cdc.ReaderStatus{State: cdc.StateStandby} }
	fams := gather(t, newPolled(Options{Sources: src}))
	for _, name := range []string{"walcast_replication_slot_lag_bytes", "walcast_locks_held", "walcast_deliveries_total", "walcast_sockets",
		"walcast_redis_up", "walcast_replication_seconds_since_ack"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s exported without a source to report it", name)
		}
	}
	if v, ok := value(t, fams, "walcast_replication_reader_state", map[string]string{"state": "standby"}); !ok || v != 1 {
		t.Errorf("standby reader state %v %v", v, ok)
	}
	// Before Run polls, and when it stopped polling, the polled sources'
	// metrics are left out.
	fams = gather(t, New(Options{Sources: allSources()}))
	for _, name := range []string{"walcast_redis_up", "walcast_ready", "walcast_locks_held"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s exported before any poll", name)
		}
	}
	stale := newPolled(Options{Sources: allSources(), PollInterval: time.Millisecond})
	time.Sleep(10 * time.Millisecond)
	if _, ok := gather(t, stale)["walcast_redis_up"]; ok {
		t.Error("walcast_redis_up exported from a poll ten intervals old")
	}
}

// TestReaderPausedByRelay: a reader whose relay's last publish Redis
// refused is paused, while it leads or reconnects, until a publish
// succeeds.
func TestReaderPausedByRelay(t *testing.T) {
	state := cdc.StateLeader
	m := New(Options{Sources: Sources{Reader: func() cdc.ReaderStatus { return cdc.ReaderStatus{State: state} }}})
	relay := m.RelayObserver(true)
	current := func() string {
		t.Helper()
		fams := gather(t, m)
		for _, st := range readerStates {
			if v, _ := value(t, fams, "walcast_replication_reader_state", map[string]string{"state": st}); v == 1 {
				return st
			}
		}
		return ""
	}
	steps := []struct {
		state   cdc.State
		publish error // nil: none this step
		ok      bool  // a successful publish this step
		want    string
	}{
		{cdc.StateLeader, nil, false, "reading"},
		{cdc.StateLeader, errors.New("redis down"), false, "paused"},
		{cdc.StateReconnecting, nil, false, "paused"},
		{cdc.StateLeader, nil, false, "paused"},
		{cdc.StateLeader, nil, true, "reading"},
		{cdc.StateReconnecting, nil, false, "reconnecting"},
		{cdc.StateStandby, errors.New("redis down"), false, "standby"},
	}
	for i, st := range steps {
		state = st.state
		if st.publish != nil {
			relay.Published(time.Millisecond, st.publish)
		}
		if st.ok {
			relay.Published(time.Millisecond, nil)
		}
		if got := current(); got != st.want {
			t.Errorf("step %d (%s): state %q, want %q", i, st.state, got, st.want)
		}
	}
	if v, _ := value(t, gather(t, m), "walcast_redis_publish_duration_seconds", nil); v != 1 {
		t.Errorf("%v publish latencies observed, want the one accepted publish", v)
	}
}

// TestReaderObserver: leading after standing by is a takeover, leading
// again after a reconnect is not; failed sessions count by kind.
func TestReaderObserver(t *testing.T) {
	m := New(Options{})
	o := m.ReaderObserver()
	for _, to := range []cdc.State{cdc.StateLeader, cdc.StateReconnecting, cdc.StateLeader, cdc.StateStandby, cdc.StateReconnecting, cdc.StateLeader, cdc.StateStandby} {
		o.StateChanged(cdc.StateStarting, to)
	}
	o.SessionFailed(errors.New("connection reset"))
	o.SessionFailed(fmt.Errorf("replication: %w", cdc.ErrMalformed))
	fams := gather(t, m)
	if v, _ := value(t, fams, "walcast_replication_takeovers_total", nil); v != 1 {
		t.Errorf("%v takeovers, want 1 (standby, reconnecting, leader)", v)
	}
	for kind, want := range map[string]float64{cdc.ErrorConnection: 1, cdc.ErrorDecode: 1} {
		if v, _ := value(t, fams, "walcast_replication_errors_total", map[string]string{"kind": kind}); v != want {
			t.Errorf("%s errors %v, want %v", kind, v, want)
		}
	}
}

// TestLabelsBounded: a label that sees more values than the bound reports
// the excess as "other", so a bug upstream cannot grow the series forever.
func TestLabelsBounded(t *testing.T) {
	m := New(Options{})
	for i := range maxLabelValues + 100 {
		m.RowsDecoded(fmt.Sprintf("table%d", i), "insert", 1)
	}
	fams := gather(t, m)
	series := fams["walcast_replication_rows_total"].GetMetric()
	if len(series) != maxLabelValues+1 {
		t.Errorf("%d series, want %d and one \"other\"", len(series), maxLabelValues)
	}
	if v, ok := value(t, fams, "walcast_replication_rows_total", map[string]string{"table": overflowValue}); !ok || v != 100 {
		t.Errorf("other = %v (present %v), want the 100 rows past the bound", v, ok)
	}
	// A value seen before the bound keeps its own series.
	m.RowsDecoded("table0", "insert", 1)
	if v, _ := value(t, gather(t, m), "walcast_replication_rows_total", map[string]string{"table": "table0"}); v != 2 {
		t.Errorf("table0 = %v, want 2", v)
	}
}
