// Command scaleout measures what scaling walcast out costs: server CPU per
// delivered message with one walcast instance and with two, both on the
// Redis Streams adapter, the same clients and the same offered rate, plus
// redis-server's CPU per event.
//
//	go run ./bench/scaleout [-clients 500,1000] [-rate 50] [-duration 15s]
//	go run ./bench/scaleout -rates 100,500,1000,2000,4000 -clients 100 -writers 8 [-instances 2] [-batch 1]
//
// It starts a throwaway PostgreSQL (internal/pgtest) with the example
// schema and a redis-server (internal/redistest), builds `walcast` from this
// tree and runs it with REDIS_URL. Instance A is started once and reads the
// replication slot for the whole run. For every client count C, two phases
// run back to back with the same writer:
//
//   - 1 instance: A alone, C clients on A;
//   - 2 instances: instance B is started on the same slot (it stands by:
//     the slot refuses a second reader) and the clients are split C/2 on A,
//     C/2 on B; B is stopped after the phase.
//
// Every client holds an admin token, so every donation reaches every
// client: one INSERT is C delivered messages. Each phase commits single-row
// INSERT transactions at -rate for -duration, then waits until every client
// has every event (or -drain passes). CPU is utime+stime from /proc of each
// process over that span: walcast CPU per delivered message sums the
// instances; Redis CPU per event divides redis-server's CPU by the
// transactions committed. All processes share the machine, so the figures
// to compare are CPU per message, not throughput.
//
// With -rates it runs a rate ladder instead (ladder.go): the first client
// count only, one or two instances for the whole ladder, each rung offering
// a higher transaction rate, to find the rate one slot carries through
// Redis and which process saturates first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/bench/internal/authclient"
	"github.com/walcast/walcast/bench/internal/procstat"
	"github.com/walcast/walcast/bench/internal/redisstats"
	"github.com/walcast/walcast/bench/internal/walcastproc"
	"github.com/walcast/walcast/internal/redistest"
)

type options struct {
	clients  []int
	rate     float64
	duration time.Duration
	drain    time.Duration
	idle     time.Duration
	// The writer, both modes: connections, rows per transaction.
	writers, batch int
	// The ladder (-rates): offered transactions/s per rung, instances.
	rates     []float64
	instances int
	// aof runs Redis with appendfsync always, as docker-compose.yml does.
	aof bool
	// noRedis runs the ladder's one instance without REDIS_URL: the
	// reader's ceiling without the per-transaction append to Redis.
	noRedis bool
}

func main() {
	var o options
	counts := flag.String("clients", "500,1000", "comma-separated total client counts C; each is run with 1 and with 2 instances")
	flag.Float64Var(&o.rate, "rate", 50, "offered single-row INSERT transactions per second")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "how long each phase writes")
	flag.DurationVar(&o.idle, "idle", 3*time.Second, "idle reference before each phase: same connections, nothing written")
	flag.DurationVar(&o.drain, "drain", 15*time.Second, "how long a phase waits for the last deliveries")
	flag.IntVar(&o.writers, "writers", 1, "writer connections committing concurrently (one connection offers at most 1/commit round trip transactions/s)")
	flag.IntVar(&o.batch, "batch", 1, "rows (events) per transaction; 1 is the common case of single-row transactions")
	rates := flag.String("rates", "", "rate ladder: comma-separated offered transactions/s, one rung each, with the first -clients count (e.g. 100,500,1000,2000,4000)")
	flag.IntVar(&o.instances, "instances", 1, "ladder only: 1 (A reads the slot) or 2 (B stands by; clients split between them)")
	flag.BoolVar(&o.noRedis, "no-redis", false, "ladder only, 1 instance: run walcast without REDIS_URL (in-process fan-out), for the reader's ceiling without Redis")
	flag.BoolVar(&o.aof, "aof", false, "run redis-server with appendonly yes, appendfsync always (as docker-compose.yml) instead of in memory")
	flag.Parse()
	var err error
	if o.clients, err = parseCounts(*counts); err != nil {
		fmt.Fprintln(os.Stderr, "scaleout: -clients:", err)
		os.Exit(2)
	}
	if o.rate <= 0 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "scaleout: -rate and -duration must be positive")
		os.Exit(2)
	}
	if o.writers < 1 || o.batch < 1 {
		fmt.Fprintln(os.Stderr, "scaleout: -writers and -batch must be at least 1")
		os.Exit(2)
	}
	if *rates != "" {
		if o.rates, err = parseRates(*rates); err != nil {
			fmt.Fprintln(os.Stderr, "scaleout: -rates:", err)
			os.Exit(2)
		}
		if o.instances != 1 && o.instances != 2 {
			fmt.Fprintln(os.Stderr, "scaleout: -instances must be 1 or 2")
			os.Exit(2)
		}
		if o.noRedis && o.instances != 1 {
			fmt.Fprintln(os.Stderr, "scaleout: -no-redis runs one instance: instances share events only through Redis")
			os.Exit(2)
		}
	} else if o.noRedis {
		fmt.Fprintln(os.Stderr, "scaleout: -no-redis is for the ladder (-rates)")
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		os.Exit(1)
	}
}

// parseCounts reads "500,1000". Odd counts are refused: C is split evenly
// between two instances, and an uneven split would blur the comparison.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		if n < 2 || n%2 != 0 {
			return nil, fmt.Errorf("%d: want an even count >= 2", n)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no client count")
	}
	return out, nil
}

const secret = "bench-scaleout-secret"

func run(ctx context.Context, o options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	fmt.Fprintln(os.Stderr, "building walcast, starting PostgreSQL and redis-server...")
	wb, err := walcastproc.StartBench(ctx)
	if err != nil {
		return err
	}
	defer wb.Close()
	bin, dsn := wb.Bin, wb.DSN
	rs, err := redistest.Start(redistest.Options{AppendOnly: o.aof})
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer rs.Close()
	// One connection of the driver's own for INFO: its few commands per
	// phase are the only Redis load that is not walcast's.
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	redisPID, err := redisPid(ctx, rdb)
	if err != nil {
		return err
	}

	env := []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + secret, "REDIS_URL=" + rs.URL(), "PATH=" + os.Getenv("PATH")}
	envA := env
	if o.noRedis {
		// redis-server still runs (its CPU stays in the table, idle) so
		// both ladders print the same columns.
		envA = []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + secret, "PATH=" + os.Getenv("PATH")}
	}
	a, err := startInstance(ctx, bin, envA, "A")
	if err != nil {
		return err
	}
	defer a.stop()
	if st, err := a.readerState(); err != nil || st != "leader" {
		return fmt.Errorf("instance A should read the slot: reader %q, %v", st, err)
	}

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": 1, "username": "bench", "role": "admin", "memberId": nil,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return fmt.Errorf("sign token: %w", err)
	}
	w, err := dialWriter(ctx, dsn, o.writers, o.batch)
	if err != nil {
		return err
	}
	defer w.close()
	if len(o.rates) > 0 {
		return runLadder(ctx, o, ladderEnv{bin: bin, env: env, dsn: dsn, tok: tok, rdb: rdb, redisPID: redisPID, a: a, w: w})
	}

	loadBefore := walcastproc.LoadAvg()
	var results []phase
	for _, c := range o.clients {
		ph, err := runPhase(ctx, o, w, tok, rdb, redisPID, c, []*instance{a})
		if err != nil {
			return err
		}
		results = append(results, ph)

		b, err := startInstance(ctx, bin, env, "B")
		if err != nil {
			return err
		}
		if st, err := b.readerState(); err != nil || st != "standby" {
			b.stop()
			return fmt.Errorf("instance B should stand by: reader %q, %v", st, err)
		}
		ph, err = runPhase(ctx, o, w, tok, rdb, redisPID, c, []*instance{a, b})
		b.stop()
		if err != nil {
			return err
		}
		results = append(results, ph)
	}
	report(os.Stdout, o, results, loadBefore, walcastproc.LoadAvg())
	printCommandStats(os.Stdout, results)
	return nil
}

// phase is one measured stretch of writing with one set of instances.
type phase struct {
	clients, instances int
	events             int64 // transactions committed
	delivered, want    int64
	broken             int64
	wall               time.Duration
	walcastCPU         []time.Duration // per instance, reader first
	redisCPU           time.Duration
	selfCPU            time.Duration // this process: clients and writer
	// The idle reference just before writing: same connections, no events.
	idleWall, idleWalcast, idleRedis time.Duration
	redisCmds                        map[string]redisstats.Stat // while writing and draining
	uneven                           []string                   // instances whose clients did not get exactly every event
}

func runPhase(ctx context.Context, o options, w *writer, tok string, rdb *redis.Client, redisPID, c int, insts []*instance) (phase, error) {
	ph := phase{clients: c, instances: len(insts)}
	per := c / len(insts)
	var pools []*authclient.Clients
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, in := range insts {
		fmt.Fprintf(os.Stderr, "connecting %d clients to instance %s...\n", per, in.name)
		p, err := authclient.Dial(ctx, "ws://"+in.addr+"/socket.io/?EIO=4&transport=websocket", tok, "donation:update", per, 50)
		if err != nil {
			return ph, fmt.Errorf("clients on instance %s: %w", in.name, err)
		}
		pools = append(pools, p)
	}
	time.Sleep(time.Second) // let the connection ramp's work settle before counting CPU

	// Reference: the same processes and connections with nothing written.
	// Redis spends CPU on its own timers and on the instances' blocking
	// reads and heartbeats whether or not events flow; at tens of
	// events per second that is a large share of its CPU per event.
	fmt.Fprintf(os.Stderr, "C=%d, %d instance(s): idle for %s...\n", c, len(insts), o.idle)
	idleWalcast0, err := sumCPU(insts)
	if err != nil {
		return ph, err
	}
	idleRedis0, err := taskCPU(redisPID)
	if err != nil {
		return ph, err
	}
	idleStart := time.Now()
	time.Sleep(o.idle)
	idleWalcast1, err := sumCPU(insts)
	if err != nil {
		return ph, err
	}
	idleRedis1, err := taskCPU(redisPID)
	if err != nil {
		return ph, err
	}
	ph.idleWall, ph.idleWalcast, ph.idleRedis = time.Since(idleStart), idleWalcast1-idleWalcast0, idleRedis1-idleRedis0

	fmt.Fprintf(os.Stderr, "C=%d, %d instance(s): writing %.0f transactions/s for %s...\n", c, len(insts), o.rate, o.duration)
	cpu0 := make([]time.Duration, len(insts))
	for i, in := range insts {
		var err error
		if cpu0[i], err = procstat.CPU(in.pid()); err != nil {
			return ph, err
		}
	}
	redis0, err := taskCPU(redisPID)
	if err != nil {
		return ph, err
	}
	self0, _ := procstat.CPU(os.Getpid())
	cmds0, err := redisstats.Read(ctx, rdb)
	if err != nil {
		return ph, err
	}
	start := time.Now()

	wr, err := w.write(ctx, "sc", o.rate, o.duration)
	if err != nil {
		return ph, err
	}
	n := wr.rows(w.batch)
	ph.events, ph.want = n, n*int64(c)
	delivered := func() int64 {
		var sum int64
		for _, p := range pools {
			sum += p.Delivered()
		}
		return sum
	}
	for deadline := time.Now().Add(o.drain); delivered() < ph.want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	ph.wall = time.Since(start)
	for i, in := range insts {
		cpu, err := procstat.CPU(in.pid())
		if err != nil {
			return ph, err
		}
		ph.walcastCPU = append(ph.walcastCPU, cpu-cpu0[i])
	}
	redis1, err := taskCPU(redisPID)
	if err != nil {
		return ph, err
	}
	self1, _ := procstat.CPU(os.Getpid())
	cmds1, err := redisstats.Read(ctx, rdb)
	if err != nil {
		return ph, err
	}
	ph.redisCmds = redisstats.Diff(cmds0, cmds1)
	ph.redisCPU, ph.selfCPU = redis1-redis0, self1-self0
	ph.delivered = delivered()
	for i, p := range pools {
		ph.broken += p.Broken()
		// Totals could hide one instance's clients missing events while
		// another's got extras; each instance's share must be exact.
		if got, want := p.Delivered(), n*int64(per); got != want {
			ph.uneven = append(ph.uneven, fmt.Sprintf("instance %s's clients got %d of %d", insts[i].name, got, want))
		}
	}
	return ph, nil
}

// instance is one `walcast serve` process.
type instance struct {
	name, addr string
	cmd        *exec.Cmd
}

func startInstance(ctx context.Context, bin string, env []string, name string) (*instance, error) {
	addr, err := walcastproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--admin-listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start walcast %s: %w", name, err)
	}
	in := &instance{name: name, addr: addr, cmd: cmd}
	if err := walcastproc.WaitReady("http://"+addr+"/readyz", 60*time.Second); err != nil {
		in.stop()
		return nil, fmt.Errorf("walcast %s: %w", name, err)
	}
	return in, nil
}

// sumCPU is the CPU the instances have used so far, together.
func sumCPU(insts []*instance) (time.Duration, error) {
	var sum time.Duration
	for _, in := range insts {
		c, err := procstat.CPU(in.pid())
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

// readerState tells from /readyz's reason whether the instance reads the
// slot: leader or standby (or the reason itself, when neither).
func (in *instance) readerState() (string, error) {
	resp, err := http.Get("http://" + in.addr + "/readyz")
	if err != nil {
		return "", fmt.Errorf("readyz of %s: %w", in.name, err)
	}
	defer resp.Body.Close()
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(resp.Body, &body); err != nil {
		return "", fmt.Errorf("readyz of %s: %w", in.name, err)
	}
	switch {
	case strings.HasPrefix(body.Reason, "reading the replication slot"):
		return "leader", nil
	case strings.HasPrefix(body.Reason, "standby"):
		return "standby", nil
	}
	return body.Reason, nil
}

func (in *instance) stop() {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = in.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = in.cmd.Process.Kill()
		<-done
	}
}

// redisPid asks the server for its own pid (INFO server), so its CPU can be
// read from /proc without depending on how the test helper started it.
func redisPid(ctx context.Context, rdb *redis.Client) (int, error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO server: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("redis INFO server has no process_id")
}
