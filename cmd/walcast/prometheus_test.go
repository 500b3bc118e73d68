package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/promtest"
	"github.com/walcast/walcast/internal/redistest"
)

// TestPrometheusScrapesWalcast: Debian's prometheus scrapes a real walcast
// (Redis streams, 30 official-client sockets) while rows are written and
// locks taken; its HTTP API then shows the counters moved by exactly what
// the test did, and the slot's lag rising while Redis stalls (so the
// reader cannot publish, and acknowledges nothing) and falling after.
func TestPrometheusScrapesWalcast(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	// 20 staff sockets and 10 viewers, whose users rows exist before
	// walcast starts: none of the counters below sees them.
	var tokens []string
	for i := 1; i <= 30; i++ {
		role := "admin"
		if i > 20 {
			role = "viewer"
		}
		tokens = append(tokens, mint(t, i, fmt.Sprint("u", i), role, nil, time.Hour))
	}
	addUsers(t, dsn, tokens...)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	prom := promtest.Start(t, promtest.Options{Targets: []promtest.Target{{Job: "walcast", Addr: strings.TrimPrefix(in.AdminURL, "http://")}}})
	slot := fmt.Sprintf(`slot=%q`, in.Slot)

	// value is the single series expr selects now; ok false when none.
	value := func(ctx context.Context, expr string) (float64, bool, error) {
		s, err := prom.Query(ctx, expr)
		if err != nil || len(s) == 0 {
			return 0, false, err
		}
		if len(s) > 1 {
			return 0, false, fmt.Errorf("%s selects %d series", expr, len(s))
		}
		return s[0].Value, true, nil
	}
	waitFor := func(what, expr string, ok func(float64) bool) {
		t.Helper()
		var last float64
		prom.Eventually(t, 60*time.Second, what+" ("+expr+")", func(ctx context.Context) (bool, error) {
			v, present, err := value(ctx, expr)
			last = v
			if err != nil || !present {
				return false, err
			}
			if !ok(v) {
				return false, fmt.Errorf("%s = %v", expr, v)
			}
			return true, nil
		})
		t.Logf("%s: %s = %v", what, expr, last)
	}
	equals := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	above := func(min float64) func(float64) bool { return func(v float64) bool { return v > min } }

	waitFor("the target is up", `up{job="walcast"}`, equals(1))
	waitFor("the reader reads", `walcast_replication_reader_state{state="reading"}`, equals(1))

	// The 30 sockets; three handshakes refused: no token, an expired one,
	// one of a user the users table does not have.
	c := connect(t, in, tokens...)
	refused := sioclient.Start(t, in.URL, sioclient.ClientConfig{Count: 3, Auths: []any{map[string]any{},
		authOf(mint(t, 99, "late", "admin", nil, -time.Hour)), authOf(mint(t, 98, "ghost", "admin", nil, time.Hour))}})
	for i := range 3 {
		refused.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Client == i && l.Kind == "connect_error" })
	}

	// Locks: taken, refused to another user, checked, released.
	lock := map[string]any{"resourceType": "member", "resourceId": "m-lock"}
	wantAck(t, "acquire", ack(t, c, 0, "lock:acquire", lock), `{"success":true,"lockedBy":"u1"}`)
	waitFor("one lock held", `walcast_locks_held`, equals(1))
	wantAck(t, "acquire held", ack(t, c, 1, "lock:acquire", lock), `{"success":false,"lockedBy":"u1"}`)
	ack(t, c, 1, "lock:check", lock)
	wantAck(t, "release", ack(t, c, 0, "lock:release", lock), `{"success":true}`)
	lockUpdates := len(waitEvents(t, c, 29, "lock:update:member:m-lock", 2, 10*time.Second))

	// Rows under load: 200 members and 50 guest donations, one
	// transaction each, from four writers at once; then a TRUNCATE.
	const members, donations, writers = 200, 50, 4
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var stmts []string
			for i := w; i < members; i += writers {
				stmts = append(stmts, fmt.Sprintf(`INSERT INTO members (id, first_name, last_name) VALUES ('m-%d', 'F', 'L')`, i))
			}
			for i := w; i < donations; i += writers {
				stmts = append(stmts, `INSERT INTO donations (member_id, amount, fund, entered_by) VALUES (NULL, 10.00, 'General', 'test')`)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			errs <- execSQL(ctx, dsn, stmts...)
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Exec(t, dsn, `TRUNCATE donations`)
	barrier(t, dsn, c, 0, 29)
	if n := len(events(c, 0, "member:update")); n != members {
		t.Fatalf("an admin socket got %d member:update events, want %d", n, members)
	}

	for _, tc := range []struct {
		what, expr string
		want       float64
	}{
		{"member inserts read", `walcast_replication_rows_total{table="public.members",op="insert"}`, members},
		{"donation inserts read", `walcast_replication_rows_total{table="public.donations",op="insert"}`, donations},
		{"the truncate read", `walcast_replication_rows_total{table="public.donations",op="truncate"}`, 1},
		{"the truncate's RESYNC", `walcast_replication_resyncs_total{table="public.donations",reason="truncate"}`, 1},
		{"member events", `walcast_events_emitted_total{event="member:update"}`, members},
		{"donation events and the RESYNC", `walcast_events_emitted_total{event="donation:update"}`, donations + 1},
		{"settings events (the barrier)", `walcast_events_emitted_total{event="settings:update"}`, 1},
		{"lock announcements", `walcast_events_emitted_total{event="lock:update"}`, float64(lockUpdates)},
		{"connects", `walcast_socket_connects_total{namespace="/"}`, 30},
		{"no token", `walcast_auth_failures_total{reason="no_token"}`, 1},
		{"expired token", `walcast_auth_failures_total{reason="expired"}`, 1},
		{"unknown user", `walcast_auth_failures_total{reason="unknown_user"}`, 1},
		{"lock taken", `walcast_lock_operations_total{op="acquire",result="taken"}`, 1},
		{"lock held by another", `walcast_lock_operations_total{op="acquire",result="held_by_other"}`, 1},
		{"lock checked", `walcast_lock_operations_total{op="check",result="locked"}`, 1},
		{"lock released", `walcast_lock_operations_total{op="release",result="released"}`, 1},
		{"lock ack latencies", `walcast_lock_ack_duration_seconds_count{op="acquire"}`, 2},
		{"no lock held", `walcast_locks_held`, 0},
		{"sockets on websocket", `walcast_sockets{transport="websocket"}`, 30},
		{"Redis up", `walcast_redis_up`, 1},
		{"ready", `walcast_ready`, 1},
	} {
		waitFor(tc.what, tc.expr, equals(tc.want))
	}
	waitFor("transactions read", `walcast_replication_transactions_total`, func(v float64) bool { return v >= members+donations+2 })
	// Each of the 20 staff sockets got every member event (and more
	// packets besides: connects, offsets, pings), each over 100 bytes.
	waitFor("deliveries", `walcast_deliveries_total`, func(v float64) bool { return v >= 20*members })
	waitFor("bytes delivered", `walcast_delivered_bytes_total`, func(v float64) bool { return v >= 20*members*100 })
	waitFor("no slow consumer", `walcast_slow_consumer_cuts_total`, equals(0))
	waitFor("publishes timed", `walcast_redis_publish_duration_seconds_count`, above(0))
	waitFor("stream entries", `walcast_redis_stream_length`, above(members))
	waitFor("rooms", `walcast_rooms{namespace="/"}`, above(0))
	waitFor("the slot sampled", `walcast_replication_slot_lag_bytes{`+slot+`}`, func(float64) bool { return true })

	if testing.Verbose() {
		// For README's example scrape.
		_, body := (&instance{URL: in.AdminURL}).get("/metrics")
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "walcast_") && !strings.Contains(l, "_bucket{") {
				lines = append(lines, l)
			}
		}
		t.Logf("scrape under load:\n%s", strings.Join(lines, "\n"))
	}

	// Redis stalls: the reader cannot publish, so it acknowledges nothing
	// and the slot's lag grows by the WAL written meanwhile.
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			_ = rs.Resume()
		}
	}()
	const stalled = 300
	before := queryInt(t, dsn, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`)
	var stmts []string
	for i := range stalled {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO members (id, first_name, last_name) VALUES ('s-%d', 'F', 'L')`, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := execSQL(ctx, dsn, stmts...); err != nil {
		t.Fatal(err)
	}
	written := float64(queryInt(t, dsn, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`) - before)
	t.Logf("%d transactions wrote %.0f bytes of WAL while Redis was stalled", stalled, written)
	// A reader that works confirms what it read at least every 10 s (its
	// status interval), so a sample taken later than that after the writes
	// (the sampler's are at most 5 s old) shows them unconfirmed only if
	// the reader is held up.
	time.Sleep(16 * time.Second)
	waitFor("the lag rose by what was written", `walcast_replication_slot_lag_bytes{`+slot+`}`, func(v float64) bool { return v >= written })
	waitFor("Redis down", `walcast_redis_up`, equals(0))
	waitFor("not ready", `walcast_ready`, equals(0))
	waitFor("the reader paused", `walcast_replication_reader_state{state="paused"}`, equals(1))
	waitFor("the reader not reading", `walcast_replication_reader_state{state="reading"}`, equals(0))
	peak, _, err := value(context.Background(), `max_over_time(walcast_replication_slot_lag_bytes{`+slot+`}[5m])`)
	if err != nil {
		t.Fatal(err)
	}

	if err := rs.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	waitFor("the lag fell", `walcast_replication_slot_lag_bytes{`+slot+`}`, func(v float64) bool { return v < written/4 })
	waitFor("reading again", `walcast_replication_reader_state{state="reading"}`, equals(1))
	waitFor("Redis up again", `walcast_redis_up`, equals(1))
	waitFor("ready again", `walcast_ready`, equals(1))
	waitEvents(t, c, 0, "member:update", members+stalled, 60*time.Second)
	barrier(t, dsn, c, 0)
	if n := len(events(c, 0, "member:update")); n != members+stalled {
		t.Errorf("an admin socket got %d member:update events, want %d: each once", n, members+stalled)
	}
	waitFor("every member event counted once", `walcast_events_emitted_total{event="member:update"}`, equals(members+stalled))
	waitFor("every member row counted once", `walcast_replication_rows_total{table="public.members",op="insert"}`, equals(members+stalled))
	waitFor("the refused publishes counted", `walcast_redis_errors_total{op="publish"}`, above(0))
	waitFor("the refused sessions counted", `walcast_replication_errors_total{kind="delivery"}`, above(0))
	t.Logf("slot lag peaked at %.0f bytes (%.0f written while stalled)", peak, written)
}
