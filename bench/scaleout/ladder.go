package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/bench/internal/authclient"
	"github.com/walcast/walcast/bench/internal/procstat"
	"github.com/walcast/walcast/bench/internal/redisstats"
	"github.com/walcast/walcast/bench/internal/walcastproc"
)

// The ladder: one slot, one or two instances, a few clients (so the
// fan-out is not what limits), and a rising offered rate per rung. Each
// rung says what was offered, committed and delivered, how late, and how
// busy each process was, so the first part to run out of CPU shows.

// parseRates reads "100,500,1000": positive offered transactions/s.
func parseRates(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		if r <= 0 {
			return nil, fmt.Errorf("%v: want a positive rate", r)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no rate")
	}
	return out, nil
}

// ladderEnv is what run set up for the ladder.
type ladderEnv struct {
	bin      string
	env      []string
	dsn, tok string
	rdb      *redis.Client
	redisPID int
	a        *instance
	w        *writer
}

// rung is one offered rate's measurement.
type rung struct {
	target    float64 // offered transactions/s
	batch     int     // rows per transaction
	duration  time.Duration
	txs, rows int64
	wall      time.Duration // first transaction due to last delivery (or the drain deadline)
	drain     time.Duration // last COMMIT to last delivery
	// The reader's side alone: events appended to the Redis stream when
	// the last COMMIT returned, and how long after it the last one was.
	// A backlog that is already in the stream is the fan-out's; one that
	// is not yet there is the reader's (walsender, decoding, publishing).
	pubAtEnd int64
	pubDrain time.Duration
	// WAL bytes at the last COMMIT that the walsender had not sent yet,
	// and that it had sent but walcast had not confirmed: a backlog in
	// the second and not the first is walcast's, not PostgreSQL's.
	walUnsent, walUnconfirmed int64
	delivered                 int64 // counting clients, all instances
	want                      int64
	broken                    int64
	lags                      []time.Duration // sorted; commit returned -> probe received, one per event
	probeWant                 int64
	walcastCPU                []time.Duration // A (reader) first
	redisCPU                  time.Duration
	walsenderCPU              time.Duration
	walsenderPID              int
	pgCPU                     time.Duration // every child of the postmaster
	selfCPU                   time.Duration
	machineBusy               float64 // share of all CPUs busy, any process
	redisCmds                 map[string]redisstats.Stat
	loadBefore                string
	loadAfter                 string
	uneven                    []string
	clients, insts            int
}

func (r rung) offeredEvents() float64   { return r.target * float64(r.batch) }
func (r rung) committedEvents() float64 { return float64(r.rows) / r.duration.Seconds() }

// deliveredEvents is events per second reaching every client, over the
// whole span from the first transaction to the last delivery.
func (r rung) deliveredEvents() float64 {
	if r.wall <= 0 || r.clients == 0 {
		return 0
	}
	return float64(r.delivered) / float64(r.clients) / r.wall.Seconds()
}

func (r rung) lag(q float64) time.Duration {
	if len(r.lags) == 0 {
		return -1
	}
	// Nearest rank: the smallest lag at least q of the events did not exceed.
	i := int(math.Ceil(q*float64(len(r.lags)))) - 1
	return r.lags[max(i, 0)]
}

func (r rung) core(d time.Duration) float64 {
	if r.wall <= 0 {
		return 0
	}
	return 100 * d.Seconds() / r.wall.Seconds()
}

// keptUp: the writer committed what was offered (within 5%), every client
// got every event, the backlog cleared within a second of the last commit
// and 99% of events arrived within a second of their commit.
func (r rung) keptUp() bool {
	return r.committedEvents() >= 0.95*r.offeredEvents() && r.delivered == r.want && r.broken == 0 &&
		int64(len(r.lags)) == r.probeWant && r.drain <= time.Second && r.lag(0.99) <= time.Second
}

// limits names what fell short and what ran closest to its ceiling: Redis
// and the walsender are single-threaded (one core each), the machine has
// runtime.NumCPU() cores shared by everything.
func (r rung) limits() string {
	var out []string
	if r.committedEvents() < 0.95*r.offeredEvents() {
		out = append(out, "writer short of offer")
	}
	if r.delivered < r.want || int64(len(r.lags)) < r.probeWant {
		out = append(out, "NOT DRAINED")
	} else if r.drain > time.Second || r.lag(0.99) > time.Second {
		out = append(out, "backlog")
	}
	if r.drain > time.Second && r.pubDrain >= 0 {
		if r.pubDrain > r.drain/2 {
			out = append(out, "backlog before Redis: the reader publishes behind the commits")
		} else {
			out = append(out, "backlog after Redis: the fan-out reads the stream behind")
		}
	}
	type ceil struct {
		name string
		frac float64
	}
	cs := []ceil{
		{"redis", r.core(r.redisCPU) / 100},
		{"walsender", r.core(r.walsenderCPU) / 100},
		{"machine", r.machineBusy},
	}
	slices.SortStableFunc(cs, func(a, b ceil) int {
		switch {
		case a.frac > b.frac:
			return -1
		case a.frac < b.frac:
			return 1
		}
		return 0
	})
	out = append(out, fmt.Sprintf("nearest ceiling: %s %.0f%%", cs[0].name, 100*cs[0].frac))
	return strings.Join(out, "; ")
}

func runLadder(ctx context.Context, o options, le ladderEnv) error {
	c := o.clients[0]
	insts := []*instance{le.a}
	if o.instances == 2 {
		b, err := startInstance(ctx, le.bin, le.env, "B")
		if err != nil {
			return err
		}
		defer b.stop()
		if st, err := b.readerState(); err != nil || st != "standby" {
			return fmt.Errorf("instance B should stand by: reader %q, %v", st, err)
		}
		insts = append(insts, b)
	}
	per := c / len(insts)
	var pools []*authclient.Clients
	var probes []*probe
	defer func() {
		for _, p := range pools {
			p.Close()
		}
		for _, p := range probes {
			p.close()
		}
	}()
	for _, in := range insts {
		url := "ws://" + in.addr + "/socket.io/?EIO=4&transport=websocket"
		fmt.Fprintf(os.Stderr, "connecting %d clients and a lag probe to instance %s...\n", per, in.name)
		p, err := authclient.Dial(ctx, url, le.tok, "donation:update", per, 50)
		if err != nil {
			return fmt.Errorf("clients on instance %s: %w", in.name, err)
		}
		pools = append(pools, p)
		pr, err := dialProbe(ctx, url, le.tok)
		if err != nil {
			return fmt.Errorf("probe on instance %s: %w", in.name, err)
		}
		probes = append(probes, pr)
	}
	ctl, err := pgx.Connect(ctx, le.dsn)
	if err != nil {
		return fmt.Errorf("control connection: %w", err)
	}
	defer ctl.Close(context.Background())
	pg, err := findPostmaster(ctx, ctl)
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // let the connection ramp's work settle before counting CPU

	var results []rung
	for i, rate := range o.rates {
		fmt.Fprintf(os.Stderr, "rung %d: %.0f transactions/s x %d row(s) for %s, C=%d on %d instance(s), %d writer connection(s)...\n",
			i, rate, o.batch, o.duration, c, len(insts), o.writers)
		r, err := runRung(ctx, o, le, ctl, pg, insts, pools, probes, fmt.Sprintf("r%d", i), rate)
		if err != nil {
			return err
		}
		r.clients, r.insts = c, len(insts)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "  committed %.0f ev/s, delivered %.0f ev/s, drain %s, p99 lag %s: %s\n",
			r.committedEvents(), r.deliveredEvents(), r.drain.Round(time.Millisecond), r.lag(0.99).Round(time.Millisecond), r.limits())
		if r.delivered < r.want {
			fmt.Fprintln(os.Stderr, "  the backlog did not clear within -drain: later rungs would measure it, stopping the ladder")
			break
		}
	}
	reportLadder(os.Stdout, o, results)
	return nil
}

func runRung(ctx context.Context, o options, le ladderEnv, ctl *pgx.Conn, pg pgProcs, insts []*instance,
	pools []*authclient.Clients, probes []*probe, tag string, rate float64) (rung, error) {
	r := rung{target: rate, batch: o.batch, duration: o.duration, loadBefore: walcastproc.LoadAvg()}
	for _, p := range probes {
		p.expect(tag)
	}
	wsPID, err := walsender(ctx, ctl)
	if err != nil {
		return r, err
	}
	r.walsenderPID = wsPID
	cpu0 := make([]time.Duration, len(insts))
	for i, in := range insts {
		if cpu0[i], err = procstat.CPU(in.pid()); err != nil {
			return r, err
		}
	}
	del0 := make([]int64, len(pools))
	for i, p := range pools {
		del0[i] = p.Delivered()
	}
	broken0 := int64(0)
	for _, p := range pools {
		broken0 += p.Broken()
	}
	redis0, err := taskCPU(le.redisPID)
	if err != nil {
		return r, err
	}
	var ws0 time.Duration
	if wsPID > 0 {
		if ws0, err = taskCPU(wsPID); err != nil {
			return r, err
		}
	}
	pg0, err := pg.snapshot()
	if err != nil {
		return r, err
	}
	self0, _ := procstat.CPU(os.Getpid())
	busy0, total0, err := machineCPU()
	if err != nil {
		return r, err
	}
	cmds0, err := redisstats.Read(ctx, le.rdb)
	if err != nil {
		return r, err
	}

	// Without Redis there is no stream to watch: the reader's and the
	// fan-out's backlogs cannot be told apart (pubDrain -1).
	streamAdded := streamAdded
	if o.noRedis {
		streamAdded = func(context.Context, *redis.Client) (int64, error) { return 0, nil }
	}
	added0, err := streamAdded(ctx, le.rdb)
	if err != nil {
		return r, err
	}

	wr, err := le.w.write(ctx, tag, rate, o.duration)
	if err != nil {
		return r, err
	}
	r.txs, r.rows = wr.txs, wr.rows(o.batch)
	added, err := streamAdded(ctx, le.rdb)
	if err != nil {
		return r, err
	}
	r.pubAtEnd = added - added0
	if wsPID > 0 {
		if r.walUnsent, r.walUnconfirmed, err = walBacklog(ctx, ctl, wsPID); err != nil {
			return r, err
		}
	}
	pubDone := r.pubAtEnd >= r.rows
	if pubDone {
		r.pubDrain = time.Since(wr.last)
	}
	per := int64(o.clients[0] / len(insts))
	r.want = r.rows * per * int64(len(pools))
	r.probeWant = r.rows * int64(len(probes))
	got := func() (int64, bool) {
		var sum int64
		all := true
		for i, p := range pools {
			d := p.Delivered() - del0[i]
			sum += d
			all = all && d >= r.rows*per
		}
		for _, p := range probes {
			all = all && int64(p.count()) >= r.rows
		}
		return sum, all
	}
	lastPoll := time.Now()
	for deadline := time.Now().Add(o.drain); time.Now().Before(deadline); {
		if !pubDone && time.Since(lastPoll) >= 50*time.Millisecond {
			// Polled, not per loop: XINFO is a command of Redis's too.
			lastPoll = time.Now()
			if added, err := streamAdded(ctx, le.rdb); err == nil && added-added0 >= r.rows {
				pubDone, r.pubDrain = true, time.Since(wr.last)
			}
		}
		if _, all := got(); all {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	if !pubDone {
		if added, err := streamAdded(ctx, le.rdb); err == nil && added-added0 >= r.rows {
			pubDone = true
		}
		r.pubDrain = end.Sub(wr.last) // an upper bound
	}
	if o.noRedis {
		r.pubAtEnd, r.pubDrain = -1, -1
	}
	r.wall, r.drain = end.Sub(wr.start), end.Sub(wr.last)
	r.delivered, _ = got()

	for i, in := range insts {
		cpu, err := procstat.CPU(in.pid())
		if err != nil {
			return r, err
		}
		r.walcastCPU = append(r.walcastCPU, cpu-cpu0[i])
	}
	redis1, err := taskCPU(le.redisPID)
	if err != nil {
		return r, err
	}
	r.redisCPU = redis1 - redis0
	if wsPID > 0 {
		ws1, err := taskCPU(wsPID)
		if err != nil {
			return r, fmt.Errorf("walsender %d ended during the rung: %w", wsPID, err)
		}
		r.walsenderCPU = ws1 - ws0
	}
	pg1, err := pg.snapshot()
	if err != nil {
		return r, err
	}
	r.pgCPU = pgCPUDelta(pg0, pg1)
	self1, _ := procstat.CPU(os.Getpid())
	r.selfCPU = self1 - self0
	busy1, total1, err := machineCPU()
	if err != nil {
		return r, err
	}
	if total1 > total0 {
		r.machineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	cmds1, err := redisstats.Read(ctx, le.rdb)
	if err != nil {
		return r, err
	}
	r.redisCmds = redisstats.Diff(cmds0, cmds1)
	r.loadAfter = walcastproc.LoadAvg()

	for i, p := range pools {
		r.broken += p.Broken()
		if d := p.Delivered() - del0[i]; d != r.rows*per {
			r.uneven = append(r.uneven, fmt.Sprintf("instance %s's clients got %d of %d", insts[i].name, d, r.rows*per))
		}
	}
	r.broken -= broken0
	for _, p := range probes {
		for _, a := range p.arrivals() {
			if a.seq < 0 || a.seq >= wr.txs {
				continue
			}
			r.lags = append(r.lags, a.at.Sub(wr.commits[a.seq]))
		}
	}
	slices.Sort(r.lags)
	return r, nil
}

// walBacklog reads pg_stat_replication for the walsender: WAL written but
// not yet sent, and sent but not yet confirmed flushed by walcast.
func walBacklog(ctx context.Context, c *pgx.Conn, pid int) (unsent, unconfirmed int64, err error) {
	err = c.QueryRow(ctx, `SELECT coalesce(pg_current_wal_lsn() - sent_lsn, 0)::bigint,
		coalesce(sent_lsn - flush_lsn, 0)::bigint FROM pg_stat_replication WHERE pid = $1`, pid).Scan(&unsent, &unconfirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("pg_stat_replication of walsender %d: %w", pid, err)
	}
	return unsent, unconfirmed, nil
}

// streamName is walcast serve's stream (the adapter's default name).
const streamName = "socket.io"

// streamAdded is how many entries were ever appended to the stream (XINFO
// STREAM entries-added, Redis 7): unlike XLEN it does not fall as the
// stream is trimmed. A stream not created yet has had none.
func streamAdded(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.XInfoStream(ctx, streamName).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("XINFO STREAM %s: %w", streamName, err)
	}
	return info.EntriesAdded, nil
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// reportLadder prints one line per rung, then Redis's cost per event and
// the rate at which its single thread would be fully busy.
func reportLadder(out io.Writer, o options, results []rung) {
	if len(results) == 0 {
		return
	}
	r0 := results[0]
	persistence := "walcast on the Redis Streams adapter, Redis in memory"
	switch {
	case o.noRedis:
		persistence = "NO REDIS: walcast without REDIS_URL, in-process fan-out (redis-server runs idle)"
	case o.aof:
		persistence = "walcast on the Redis Streams adapter, Redis appendfsync always"
	}
	fmt.Fprintf(out, "\nrate ladder: one slot, %s, C=%d clients on %d instance(s) (every event to every client), %d row(s) per transaction, %d writer connection(s), %s per rung, %d CPUs\n\n",
		persistence, r0.clients, r0.insts, o.batch, o.writers, o.duration, runtime.NumCPU())
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered ev/s\tcommitted ev/s\tdelivered ev/s\tdeliveries/s\tWAL unsent kB\tsent, unconfirmed kB\tin Redis at last commit\tdrain to Redis ms\tdrain to clients ms\tlag p50 ms\tp99 ms\tmax ms\tRedis CPU\twalcast CPU (A reader + B)\twalsender CPU\tPostgreSQL CPU (all)\tdriver CPU\tmachine busy\tload avg\t")
	for _, r := range results {
		var per []string
		for _, c := range r.walcastCPU {
			per = append(per, fmt.Sprintf("%.0f%%", r.core(c)))
		}
		ws := "-"
		if r.walsenderPID > 0 {
			ws = fmt.Sprintf("%.0f%%", r.core(r.walsenderCPU))
		}
		inRedis := "-"
		if r.rows > 0 && r.pubAtEnd >= 0 {
			inRedis = fmt.Sprintf("%.0f%%", 100*float64(r.pubAtEnd)/float64(r.rows))
		}
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\t%.0f%%\t%.0f%%\t%.0f%% of %d\t%s -> %s\t\n",
			r.offeredEvents(), r.committedEvents(), r.deliveredEvents(), r.deliveredEvents()*float64(r.clients),
			float64(r.walUnsent)/1024, float64(r.walUnconfirmed)/1024, inRedis, ms(r.pubDrain), ms(r.drain), ms(r.lag(0.5)), ms(r.lag(0.99)), ms(r.lag(1)),
			r.core(r.redisCPU), strings.Join(per, " + "), ws, r.core(r.pgCPU), r.core(r.selfCPU),
			100*r.machineBusy, runtime.NumCPU(), r.loadBefore, r.loadAfter)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nCPU columns: % of one core over the rung (first transaction due to last delivery); delivered ev/s = events each client received / that span; deliveries/s = all clients together; WAL unsent / sent, unconfirmed = pg_stat_replication of the walsender when the last COMMIT returned; in Redis at last commit = share of the events already appended to the stream when the writer's last COMMIT returned, drain to Redis = last COMMIT to last append (the reader's backlog), drain to clients = last COMMIT to last delivery; lag = COMMIT returned in the writer -> event read by a probe socket (one per instance)")
	for _, r := range results {
		verdict := "kept up"
		if !r.keptUp() {
			verdict = "FELL BEHIND"
		}
		fmt.Fprintf(out, "offered %.0f ev/s: %s (%s)\n", r.offeredEvents(), verdict, r.limits())
		for _, u := range r.uneven {
			fmt.Fprintf(out, "  WARNING: %s\n", u)
		}
		if r.broken > 0 {
			fmt.Fprintf(out, "  WARNING: %d connections broken\n", r.broken)
		}
	}

	if o.noRedis {
		return
	}
	fmt.Fprintln(out, "\nRedis per event (CPU of redis-server, all threads / events committed; evalsha from INFO commandstats, Redis's own timing):")
	tw = tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered ev/s\tRedis µs CPU/event\tevalsha calls/event\tevalsha µs/call\txread calls/event\tone Redis core full at (derived) ev/s\t")
	for _, r := range results {
		if r.rows == 0 {
			continue
		}
		perEv := us(r.redisCPU) / float64(r.rows)
		ev, xr := r.redisCmds["evalsha"], r.redisCmds["xread"]
		perCall := 0.0
		if ev.Calls > 0 {
			perCall = float64(ev.Usec) / float64(ev.Calls)
		}
		fmt.Fprintf(tw, "%.0f\t%.1f\t%.2f\t%.1f\t%.2f\t%.0f\t\n", r.offeredEvents(), perEv,
			float64(ev.Calls)/float64(r.rows), perCall, float64(xr.Calls)/float64(r.rows), 1e6/perEv)
	}
	tw.Flush()
}
