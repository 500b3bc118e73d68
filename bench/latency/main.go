// Command latency measures walcast's commit-to-client latency: how long
// after COMMIT returns in a writer the row's event reaches official
// socket.io-client sockets, while 1,000 other websocket clients receive
// every event too.
//
//	go run ./bench/latency [-clients 1000] [-probes 4] [-rate 100] [-duration 20s]
//
// It starts a throwaway PostgreSQL (internal/pgtest) with the example
// schema, builds and runs `walcast serve` from this tree, connects the
// cheap clients and the Node probes (all admin tokens: every donation
// reaches every socket), then commits single-row donation INSERTs at the
// given rate. Each row carries its sequence number; the writer records when
// its COMMIT returned and the probes when the event arrived (wall clocks of
// the same machine). As the reference, the same transactions also
// pg_notify, and a Go LISTEN connection timestamps those notifications:
// PostgreSQL's own commit-to-listener path on the same load.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/bench/fanout/loadclient"
	"github.com/walcast/walcast/bench/internal/procstat"
	"github.com/walcast/walcast/bench/internal/walcastproc"
	"github.com/walcast/walcast/e2e/sioclient"
)

type options struct {
	clients, probes int
	rate            float64
	duration        time.Duration
	warmup          time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 1000, "cheap websocket clients receiving every event")
	flag.IntVar(&o.probes, "probes", 4, "official socket.io-client sockets that measure latency")
	flag.Float64Var(&o.rate, "rate", 100, "single-row transactions per second")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long to write")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "first part of the run left out of the figures")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

const secret = "bench-latency-secret"

// The latency targets with the cheap clients connected (issue 13).
const (
	targetP50 = 4 * time.Millisecond
	targetP99 = 12 * time.Millisecond
)

func run(ctx context.Context, o options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	fmt.Fprintln(os.Stderr, "building walcast, starting PostgreSQL...")
	env, err := walcastproc.StartBench(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	bin, dsn := env.Bin, env.DSN

	addr, err := walcastproc.FreeAddr()
	if err != nil {
		return err
	}
	srv := exec.Command(bin, "serve", "--listen", addr, "--admin-listen", "127.0.0.1:0", "--log-level", "warn")
	srv.Env = []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + secret, "PATH=" + os.Getenv("PATH")}
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start walcast: %w", err)
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := walcastproc.WaitReady("http://"+addr+"/readyz", 60*time.Second); err != nil {
		return err
	}

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": 1, "username": "bench", "role": "admin", "memberId": nil,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return err
	}
	probes, err := startProbes(ctx, "http://"+addr, tok, o.probes)
	if err != nil {
		return err
	}
	defer probes.stop()
	listener, err := startListener(ctx, dsn)
	if err != nil {
		return err
	}
	defer listener.stop()
	w, err := newWriter(ctx, dsn)
	if err != nil {
		return err
	}
	defer w.close()

	// The reference phase runs the same writer, probes and walcast without
	// the cheap clients: the difference is what fanning out to them costs.
	var results []phase
	for _, n := range []int{0, o.clients} {
		ph, err := runPhase(ctx, o, n, addr, tok, srv.Process.Pid, w, probes, listener)
		if err != nil {
			return err
		}
		results = append(results, ph)
	}

	fmt.Printf("\ncommit-to-client latency: single-row transactions at %.0f/s for %s per phase (first %s left out), %d official socket.io-client probes, %d CPUs\n\n",
		o.rate, o.duration, o.warmup, o.probes, cpus())
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tcheap clients\tsamples\tp50 ms\tp90 ms\tp99 ms\tmax ms\tmissing\twalcast CPU\tload avg\t")
	for _, ph := range results {
		row := func(name string, d []time.Duration, missing int, cpu string) {
			slices.Sort(d)
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n", name, ph.clients, len(d), ms(q(d, .5)), ms(q(d, .9)), ms(q(d, .99)), ms(q(d, 1)), missing, cpu, ph.load)
		}
		row("COMMIT -> walcast -> socket.io-client probe", ph.walcast, ph.missing, fmt.Sprintf("%.0f%%", ph.walcastCPU))
		row("reference: COMMIT -> NOTIFY -> Go LISTEN", ph.notify, 0, "")
	}
	tw.Flush()
	last := results[len(results)-1]
	p50, p99 := q(last.walcast, .5), q(last.walcast, .99)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("\ntargets with %d cheap clients: p50 <= %v (%s), p99 <= %v (%s)\n", last.clients,
		targetP50, verdict(p50 <= targetP50), targetP99, verdict(p99 <= targetP99))
	fmt.Printf("cheap clients: %d of %d events delivered, %d connections broken; this program's own CPU (cheap clients, writer, listener) %.0f%% of one core\n",
		last.delivered, last.wantDelivered, last.broken, last.selfCPU)
	return nil
}

// phase is one measured stretch of writing.
type phase struct {
	clients                  int
	walcast, notify          []time.Duration
	missing                  int
	walcastCPU, selfCPU      float64 // percent of one core while writing
	load                     string  // 1-minute load average at the end
	delivered, wantDelivered int64
	broken                   int64
}

func runPhase(ctx context.Context, o options, clients int, addr, tok string, pid int, w *writer, p *probes, l *listener) (phase, error) {
	ph := phase{clients: clients}
	var load *loadclient.Pool
	if clients > 0 {
		fmt.Fprintf(os.Stderr, "connecting %d cheap clients...\n", clients)
		auth, err := json.Marshal(map[string]string{"token": tok})
		if err != nil {
			return ph, err
		}
		dialCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		load, err = loadclient.Dial(dialCtx, loadclient.Config{Addr: addr, Auth: auth, Event: "donation:update"}, clients)
		cancel()
		if err != nil {
			return ph, fmt.Errorf("load clients: %w", err)
		}
		defer load.Close()
	}
	fmt.Fprintf(os.Stderr, "writing %.0f transactions/s for %s with %d cheap clients...\n", o.rate, o.duration, clients)
	cpuBefore, _ := procstat.CPU(pid)
	selfBefore, _ := procstat.CPU(os.Getpid())
	start := time.Now()
	first, last, err := w.run(ctx, o.rate, o.duration)
	if err != nil {
		return ph, err
	}
	wall := time.Since(start)
	cpuAfter, _ := procstat.CPU(pid)
	selfAfter, _ := procstat.CPU(os.Getpid())
	ph.load = walcastproc.LoadAvg()
	ph.walcastCPU = 100 * (cpuAfter - cpuBefore).Seconds() / wall.Seconds()
	ph.selfCPU = 100 * (selfAfter - selfBefore).Seconds() / wall.Seconds()
	time.Sleep(3 * time.Second) // let the last events arrive

	from := first + int(o.rate*o.warmup.Seconds())
	commits := w.commitTimes()
	for _, a := range p.arrivals() {
		if a.seq >= from && a.seq < last {
			ph.walcast = append(ph.walcast, a.at.Sub(commits[a.seq]))
		}
	}
	for seq, at := range l.notified() {
		if seq >= from && seq < last {
			ph.notify = append(ph.notify, at.Sub(commits[seq]))
		}
	}
	ph.missing = max(0, (last-from)*o.probes-len(ph.walcast))
	if load != nil {
		ph.delivered, ph.wantDelivered, ph.broken = load.Events(), int64((last-first)*clients), load.Closed()
	}
	return ph, nil
}

// writer commits single-row transactions and remembers, per sequence
// number, when each COMMIT returned.
type writer struct {
	conn    *pgx.Conn
	mu      sync.Mutex
	commits []time.Time
}

func newWriter(ctx context.Context, dsn string) (*writer, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("writer connect: %w", err)
	}
	return &writer{conn: conn}, nil
}

// run writes at rate for d and returns the sequence numbers it used,
// [first, last).
func (w *writer) run(ctx context.Context, rate float64, d time.Duration) (first, last int, err error) {
	// One statement, one implicit transaction: the row and its NOTIFY
	// commit together.
	const stmt = `WITH ins AS (INSERT INTO donations (member_id, amount, fund, notes) VALUES ('m-1', 10, 'bench', $1) RETURNING id)
		SELECT pg_notify('bench_latency', $1) FROM ins`
	w.mu.Lock()
	first = len(w.commits)
	w.mu.Unlock()
	total := int(rate * d.Seconds())
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for seq := first; seq < first+total; seq++ {
		<-tick.C
		if _, err := w.conn.Exec(ctx, stmt, strconv.Itoa(seq)); err != nil {
			return 0, 0, fmt.Errorf("insert %d: %w", seq, err)
		}
		at := time.Now()
		w.mu.Lock()
		w.commits = append(w.commits, at)
		w.mu.Unlock()
	}
	return first, first + total, nil
}

func (w *writer) commitTimes() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.commits)
}

func (w *writer) close() { _ = w.conn.Close(context.Background()) }

// listener timestamps the NOTIFYs of the writer's transactions.
type listener struct {
	conn   *pgx.Conn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    map[int]time.Time
	once   sync.Once
}

func startListener(ctx context.Context, dsn string) (*listener, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("listener connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN bench_latency"); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &listener{conn: conn, cancel: cancel, done: make(chan struct{}), got: map[int]time.Time{}}
	go func() {
		defer close(l.done)
		for {
			n, err := conn.WaitForNotification(lctx)
			if err != nil {
				return
			}
			at := time.Now()
			if seq, err := strconv.Atoi(n.Payload); err == nil {
				l.mu.Lock()
				l.got[seq] = at
				l.mu.Unlock()
			}
		}
	}()
	return l, nil
}

func (l *listener) notified() map[int]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.got)
}

func (l *listener) stop() {
	l.once.Do(func() {
		l.cancel()
		<-l.done
		_ = l.conn.Close(context.Background())
	})
}

// probes is the Node process running the official clients.
type probes struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	mu       sync.Mutex
	lines    []arrival
	done     chan struct{}
	stopOnce sync.Once
}

type arrival struct {
	seq int
	at  time.Time
}

func startProbes(ctx context.Context, url, tok string, n int) (*probes, error) {
	e2e, err := sioclient.Setup()
	if err != nil {
		return nil, err
	}
	// probe.mjs sits beside this source file; found from it, the program
	// runs from any directory inside the module.
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "probe.mjs")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("probe script: %w", err)
	}
	cmd := exec.CommandContext(ctx, "node", script, url, tok, strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "WALCAST_E2E_DIR="+e2e)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &probes{cmd: cmd, done: make(chan struct{})}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start probes: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				close(ready)
				continue
			}
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			seq, err1 := strconv.Atoi(f[1])
			msf, err2 := strconv.ParseFloat(f[2], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			at := time.UnixMicro(int64(msf * 1000))
			p.mu.Lock()
			p.lines = append(p.lines, arrival{seq, at})
			p.mu.Unlock()
		}
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, errors.New("probes exited before connecting")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("probes not connected after 30s")
	}
}

func (p *probes) stop() {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		_ = p.cmd.Wait()
	})
}

func (p *probes) arrivals() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// q is the q-quantile of sorted d (nearest rank); -1 when empty.
func q(d []time.Duration, quant float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	i := int(quant*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) string {
	if d == -1 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

func cpus() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
