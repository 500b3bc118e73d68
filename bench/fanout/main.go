// Command fanout is walcast's fan-out load program: it measures what a
// Socket.IO server spends to broadcast ~300-byte events to C websocket
// clients, for walcast's hub and, in the same invocation and on the same
// load, for two references: the Node socket.io@4 server, and Centrifuge
// (the Go library under Centrifugo) publishing the same bytes to one channel
// every client subscribes to.
//
//	go run ./bench/fanout [-clients 1000,5000] [-rates 10000,20000,...] [-window 10s] [-servers walcast,node,centrifuge]
//
// Each server runs as its own process, so /proc's utime+stime and VmRSS are
// the server's alone. The C clients are the cheap Go client (loadclient:
// epoll, many connections per goroutine); a few official client probes
// (node/probes.js: socket.io-client, or centrifuge-js for Centrifuge)
// measure send-to-receive latency. Rates are offered
// deliveries per second (events/s x receivers), so one ladder means the same
// work at every C. A server falls behind at a rung when under 99% of the
// offered messages arrive or the probes' p99 is over 1 s; the highest rung
// that does not fall behind is its sustained rate. By default the servers run
// side by side and take turns rung by rung (-interleave), so background load
// on a shared machine hits both sides of each ratio alike.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walcast/walcast/bench/fanout/benchserver"
	"github.com/walcast/walcast/bench/fanout/serverproc"
)

type options struct {
	clients    []int
	rates      []float64 // offered deliveries per second
	window     time.Duration
	servers    []string
	probes     int
	slow       int
	slowRate   int
	size       int
	workers    int
	settle     time.Duration
	drain      time.Duration
	past       int
	interleave bool
	cpuProfile string
	writeDelay time.Duration // of the walcast-delay server
	baseline   string        // checkout whose bench server is "baseline"
	dir        string
	logger     *slog.Logger
}

func main() {
	var o options
	clients := flag.String("clients", "1000,5000", "comma-separated client counts")
	rates := flag.String("rates", "10000,20000,40000,80000,100000,160000,320000,400000,640000,1280000,2560000",
		"ladder of offered deliveries per second (events/s x receivers); the default has 20 and 80 events/s per socket for 1,000 and 5,000 clients")
	servers := flag.String("servers", "walcast,node,centrifuge", "servers to measure, in order: walcast, node, centrifuge, floor (one write(2) per delivery and nothing else), walcast-delay (walcast's hub with -write-delay), walcast-metrics (walcast's hub with walcast serve's metrics, gathered every second), baseline (walcast's bench server from the -baseline checkout)")
	flag.StringVar(&o.baseline, "baseline", "", "another checkout of walcast (e.g. git worktree add /tmp/main main) whose bench server runs as server \"baseline\": a change measured against it in the same run")
	flag.DurationVar(&o.writeDelay, "write-delay", 20*time.Millisecond, "engine.io write delay of the walcast-delay server (walcast serve --write-delay)")
	flag.DurationVar(&o.window, "window", 10*time.Second, "broadcast window per rung")
	flag.IntVar(&o.probes, "probes", 5, "official socket.io-client latency probes")
	flag.IntVar(&o.slow, "slow", 10, "slow readers: clients reading at most -slow-rate; a bounded server cuts them when they fall behind")
	flag.IntVar(&o.slowRate, "slow-rate", 4<<10, "bytes per second a slow reader reads")
	flag.IntVar(&o.size, "size", 300, "bytes of JSON per event")
	flag.IntVar(&o.workers, "workers", 2, "load client epoll goroutines")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting before sampling idle RSS")
	flag.DurationVar(&o.drain, "drain", 3*time.Second, "longest wait for stragglers after a window")
	flag.IntVar(&o.past, "past", 1, "rungs behind in a row a server may have before its ladder stops")
	flag.BoolVar(&o.interleave, "interleave", true, "run all servers at once, taking turns rung by rung")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "prefix for CPU profiles of the walcast server (one per client count)")
	flag.StringVar(&o.dir, "dir", defaultDir(), "the bench/fanout directory")
	verbose := flag.Bool("v", false, "log connection closes and progress details")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	if o.clients, err = parseInts(*clients); err != nil {
		fail(fmt.Errorf("-clients: %w", err))
	}
	if o.rates, err = parseFloats(*rates); err != nil {
		fail(fmt.Errorf("-rates: %w", err))
	}
	for _, s := range strings.Split(*servers, ",") {
		if !slices.Contains([]string{"walcast", "node", "centrifuge", "floor", "walcast-delay", "walcast-metrics", "baseline"}, s) {
			fail(fmt.Errorf("-servers: unknown server %q (walcast, node, centrifuge, floor, walcast-delay, walcast-metrics, baseline)", s))
		}
		o.servers = append(o.servers, s)
	}
	if slices.Contains(o.servers, "baseline") && o.baseline == "" {
		fail(fmt.Errorf("-servers baseline needs -baseline DIR, a checkout of walcast"))
	}
	if o.window <= 0 || o.probes < 1 || o.slow < 0 || o.slowRate < 1 || o.size < 60 || o.workers < 1 {
		fail(fmt.Errorf("-window must be > 0, -probes >= 1, -slow >= 0, -slow-rate >= 1, -size >= 60, -workers >= 1"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fanout:", err)
	os.Exit(1)
}

// defaultDir finds bench/fanout from this source file, so `go run` works
// from any directory of the repository.
func defaultDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "bench/fanout"
	}
	return filepath.Dir(file)
}

func run(ctx context.Context, o options) error {
	if err := benchserver.RaiseFileLimit(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "walcast-fanout-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	bins, err := prepare(ctx, o, tmp)
	if err != nil {
		return err
	}

	fmt.Printf("fan-out benchmark: %d-byte events, window %v, %d probes, %d load-client workers, GOMAXPROCS %d, %d CPUs\n",
		o.size, o.window, o.probes, o.workers, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var all []serverRun
	for _, c := range o.clients {
		fmt.Printf("\n-- %d clients; load average before: %s\n", c, loadAverage())
		runs, err := measureAll(ctx, o, c, bins)
		if err != nil {
			return err
		}
		for _, r := range runs {
			printRun(os.Stdout, r)
		}
		fmt.Printf("   load average after: %s\n", loadAverage())
		printComparison(os.Stdout, runs)
		all = append(all, runs...)
	}
	printSummary(os.Stdout, all)
	return nil
}

// loadAverage is /proc/loadavg's first three fields: on a shared machine the
// reader needs to know how busy it was while the figures were taken.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// servers says where each benchmark server comes from.
type servers struct {
	nodeDir    string // node/: the Node server and every probe
	walcast    string // binary of ./server
	centrifuge string // binary of ./centrifuge, a module of its own
	floor      string // binary of ./floor
	baseline   string // binary of bench/fanout/server in the -baseline checkout
}

// prepare installs the Node packages and builds the Go servers o needs
// into dir.
func prepare(ctx context.Context, o options, dir string) (servers, error) {
	b := servers{nodeDir: filepath.Join(o.dir, "node")}
	if err := serverproc.EnsureNodeModules(ctx, b.nodeDir); err != nil {
		return b, err
	}
	if slices.Contains(o.servers, "walcast") || slices.Contains(o.servers, "walcast-delay") || slices.Contains(o.servers, "walcast-metrics") {
		b.walcast = filepath.Join(dir, "walcast-bench-server")
		if err := serverproc.BuildGo(ctx, o.dir, "./server", b.walcast); err != nil {
			return b, fmt.Errorf("build the walcast bench server: %w", err)
		}
	}
	if slices.Contains(o.servers, "baseline") {
		b.baseline = filepath.Join(dir, "baseline-bench-server")
		if err := serverproc.BuildGo(ctx, o.baseline, "./bench/fanout/server", b.baseline); err != nil {
			return b, fmt.Errorf("build the baseline bench server: %w", err)
		}
	}
	if slices.Contains(o.servers, "floor") {
		b.floor = filepath.Join(dir, "floor-bench-server")
		if err := serverproc.BuildGo(ctx, o.dir, "./floor", b.floor); err != nil {
			return b, fmt.Errorf("build the floor bench server: %w", err)
		}
	}
	if slices.Contains(o.servers, "centrifuge") {
		b.centrifuge = filepath.Join(dir, "centrifuge-bench-server")
		if err := serverproc.BuildGo(ctx, filepath.Join(o.dir, "centrifuge"), ".", b.centrifuge); err != nil {
			return b, fmt.Errorf("build the centrifuge bench server: %w", err)
		}
	}
	return b, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
