package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/walcast/walcast/bench/fanout/loadclient"
	"github.com/walcast/walcast/bench/fanout/serverproc"
	"github.com/walcast/walcast/bench/internal/procstat"
)

// serverRun is one server measured at one client count.
type serverRun struct {
	server        string
	clients       int
	probes        int
	slow          int
	emptyRSS      int64
	idleRSS       int64
	emptyStats    map[string]float64 // the server's own memory figures
	idleStats     map[string]float64
	rungs         []rung
	sustained     float64 // deliveries/s of the highest rung not behind; 0 if none
	aborted       string  // why the ladder ended early, if it did
	profileFile   string
	connectTaking time.Duration
}

// idlePerConn is the RSS an idle connection costs the server.
func (r serverRun) idlePerConn() float64 {
	return float64(r.idleRSS-r.emptyRSS) / float64(r.clients+r.probes+r.slow)
}

type rung struct {
	rate       float64 // offered deliveries/s
	eventsPerS float64
	events     int           // events the window should carry
	sent       int           // events the server says it emitted
	offered    int64         // events x receivers
	delivered  int64         // cheap clients + probes
	cpu        time.Duration // server utime+stime over the rung
	sys        time.Duration // of which stime
	clientCPU  time.Duration // this process (load client) over the rung
	elapsed    time.Duration // window + drain as it really went
	tcpMem     int64         // kernel TCP buffers, machine-wide, peak over the rung
	rss        int64         // at the end of the rung
	peakRSS    int64
	cut        int64 // connections the server closed during the rung
	slowHeld   int   // slow readers the server still held after the rung
	slowGot    int64 // tick events the slow readers read during the rung
	probe      probeReport
	clientP50  time.Duration // load-client sample, -1 without samples
	clientP99  time.Duration
}

func (g rung) ratio() float64 { return float64(g.delivered) / float64(g.offered) }

func (g rung) cpuPerMsg() time.Duration {
	if g.delivered == 0 {
		return 0
	}
	return g.cpu / time.Duration(g.delivered)
}

func (g rung) sysPerMsg() time.Duration {
	if g.delivered == 0 {
		return 0
	}
	return g.sys / time.Duration(g.delivered)
}

func (g rung) behind() bool {
	return g.ratio() < 0.99 || g.probe.P99ms == nil || *g.probe.P99ms > 1000
}

func startServer(ctx context.Context, o options, name string, clients int, bins servers) (*serverproc.Proc, string, error) {
	var args []string
	switch name {
	case "walcast", "walcast-delay", "walcast-metrics":
		args = []string{bins.walcast, "-addr", "127.0.0.1:0"}
		switch name {
		case "walcast-delay":
			args = append(args, "-write-delay", o.writeDelay.String())
		case "walcast-metrics":
			args = append(args, "-metrics")
		}
	case "centrifuge":
		args = []string{bins.centrifuge, "-addr", "127.0.0.1:0"}
	case "floor":
		args = []string{bins.floor, "-addr", "127.0.0.1:0"}
	case "baseline":
		args = []string{bins.baseline, "-addr", "127.0.0.1:0"}
	default:
		// exec keeps the pid node's own, so /proc measures node, not bash.
		p, err := serverproc.Start(ctx, name, bins.nodeDir, []string{"PORT=0"},
			"bash", "-c", `ulimit -n "$(ulimit -Hn)" && exec node server.js`)
		return p, "", err
	}
	profile := ""
	if o.cpuProfile != "" {
		profile = fmt.Sprintf("%s-%s-c%d.pprof", o.cpuProfile, name, clients)
		args = append(args, "-cpuprofile", profile)
	}
	p, err := serverproc.Start(ctx, name, o.dir, nil, args...)
	return p, profile, err
}

// protocol is what the clients of server name speak.
func protocol(name string) loadclient.Protocol {
	if name == "centrifuge" {
		return loadclient.Centrifuge
	}
	return loadclient.SocketIO
}

// target is one server with its clients connected, between rungs.
type target struct {
	run    serverRun
	srv    *serverproc.Proc
	pool   *loadclient.Pool
	slow   *loadclient.Pool
	probes *probes
	streak int  // consecutive rungs behind
	done   bool // ladder over for this server
}

func (t *target) close() {
	if t.probes != nil {
		t.probes.stop()
	}
	if t.pool != nil {
		t.pool.Close()
	}
	if t.slow != nil {
		t.slow.Close()
	}
	t.srv.Stop()
}

// setup starts a server, takes its empty RSS, connects the load clients and
// the probes, and takes its idle RSS once they have settled.
func setup(ctx context.Context, o options, name string, clients int, bins servers) (*target, error) {
	t := &target{run: serverRun{server: name, clients: clients, probes: o.probes, slow: o.slow}}
	srv, profile, err := startServer(ctx, o, name, clients, bins)
	if err != nil {
		return nil, err
	}
	t.srv = srv
	t.run.profileFile = profile
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	pid := srv.PID()

	// Let the runtime finish starting up before taking the empty baseline.
	time.Sleep(time.Second)
	if t.run.emptyRSS, err = procstat.RSS(pid); err != nil {
		return nil, err
	}
	if t.run.emptyStats, err = srv.Stats(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	dialCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.pool, err = loadclient.Dial(dialCtx, loadclient.Config{
		Addr:     srv.Addr,
		Protocol: protocol(name),
		Workers:  o.workers,
		// About 50 connections spread over the population also time their
		// ticks, a cross-check of the probes that sees every position in
		// the server's fan-out order, not just the last-connected ones.
		LatencyEvery: max(1, clients/50),
		Logger:       o.logger,
	}, clients)
	cancel()
	if err != nil {
		return nil, err
	}
	if t.probes, err = startProbes(ctx, bins.nodeDir, srv.Addr, o.probes, protocol(name)); err != nil {
		return nil, err
	}
	if o.slow > 0 {
		dialCtx, cancel := context.WithTimeout(ctx, time.Minute)
		t.slow, err = loadclient.Dial(dialCtx, loadclient.Config{
			Addr: srv.Addr, Protocol: protocol(name), Workers: 1, ReadRate: o.slowRate, Logger: o.logger,
		}, o.slow)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("slow readers: %w", err)
		}
	}
	t.run.connectTaking = time.Since(start)
	if n, err := srv.Sockets(ctx); err != nil {
		return nil, err
	} else if n != clients+o.probes+o.slow {
		return nil, fmt.Errorf("server reports %d sockets, want %d", n, clients+o.probes+o.slow)
	}
	time.Sleep(o.settle)
	if t.run.idleRSS, err = procstat.RSS(pid); err != nil {
		return nil, err
	}
	if t.run.idleStats, err = srv.Stats(ctx); err != nil {
		return nil, err
	}
	o.logger.Info("connected", "server", name, "clients", clients, "took", t.run.connectTaking.Round(time.Millisecond),
		"idle_rss_per_conn_kb", fmt.Sprintf("%.1f", t.run.idlePerConn()/1024))
	ok = true
	return t, nil
}

// measureAll runs the ladder for every server at one client count. With
// interleave, all servers are up at once and take turns rung by rung, so a
// change in the machine's background load hits both sides of a ratio alike;
// otherwise each server runs its whole ladder alone.
func measureAll(ctx context.Context, o options, clients int, bins servers) ([]serverRun, error) {
	var groups [][]string
	if o.interleave {
		groups = [][]string{o.servers}
	} else {
		for _, s := range o.servers {
			groups = append(groups, []string{s})
		}
	}
	var runs []serverRun
	for _, names := range groups {
		var targets []*target
		closeAll := func() {
			for _, t := range targets {
				if !t.done {
					t.close()
				}
			}
		}
		for _, name := range names {
			t, err := setup(ctx, o, name, clients, bins)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("%s with %d clients: %w", name, clients, err)
			}
			targets = append(targets, t)
		}
		for i, rate := range o.rates {
			for _, t := range targets {
				if t.done {
					continue
				}
				if err := ladderStep(ctx, o, t, i, rate); err != nil {
					closeAll()
					return nil, fmt.Errorf("%s with %d clients: %w", t.run.server, clients, err)
				}
				if t.done {
					t.close() // its CPU and memory are no longer the other's noise
				}
			}
		}
		closeAll()
		for _, t := range targets {
			runs = append(runs, t.run)
		}
	}
	return runs, nil
}

// ladderStep runs one rung on t and decides whether its ladder goes on.
func ladderStep(ctx context.Context, o options, t *target, idx int, rate float64) error {
	g, err := runRung(ctx, o, t, idx, rate)
	if errors.Is(err, errStalled) {
		// Far past saturation: the server is still emitting, and what it
		// spends now would be the next server's noise.
		t.run.aborted = fmt.Sprintf("stopped: the server could not emit the %g msg/s rung's events within the window plus a minute", rate)
		t.done = true
		o.logger.Info("rung", "server", t.run.server, "clients", t.run.clients, "rate", rate, "stalled", true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("rung %d (%g msg/s): %w", idx, rate, err)
	}
	t.run.rungs = append(t.run.rungs, g)
	o.logger.Info("rung", "server", t.run.server, "clients", t.run.clients, "rate", rate,
		"delivered", fmt.Sprintf("%.4f", g.ratio()), "cpu_us_per_msg", fmt.Sprintf("%.2f", usPerMsg(g.cpuPerMsg())),
		"p99_ms", fmtMs(g.probe.P99ms), "cut", g.cut)
	if g.behind() {
		t.streak++
		if t.streak > o.past {
			t.run.aborted = fmt.Sprintf("stopped after %d rungs in a row behind", t.streak)
			t.done = true
		}
	} else {
		t.streak = 0
		t.run.sustained = rate
	}
	if t.pool.Connected()-t.pool.Closed() == 0 {
		t.run.aborted = "every load-client connection was cut"
		t.done = true
	}
	if idx == len(o.rates)-1 {
		t.done = true
	}
	if !t.done {
		quiesce(t.srv.PID(), 20*time.Second)
	}
	return nil
}

// errStalled: the server did not finish emitting a rung's events long after
// its window; it is far past saturation.
var errStalled = errors.New("broadcast stalled")

// quiesce waits until pid uses under a tenth of a core (a server still
// flushing a backlog would bill its CPU to whatever runs next), at most max.
func quiesce(pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	prev, err := procstat.CPU(pid)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		var cur time.Duration
		if cur, err = procstat.CPU(pid); err == nil && cur-prev < 50*time.Millisecond {
			return
		}
		prev = cur
	}
}

func runRung(ctx context.Context, o options, t *target, idx int, rate float64) (rung, error) {
	srv, pool, pr, clients := t.srv, t.pool, t.probes, t.run.clients
	g := rung{rate: rate, eventsPerS: rate / float64(clients+o.probes)}
	g.events = int(g.eventsPerS * o.window.Seconds())
	if g.events == 0 {
		return g, fmt.Errorf("rate %g over %d receivers and %v is under one event", rate, clients+o.probes, o.window)
	}
	g.offered = int64(g.events) * int64(clients+o.probes)
	pid := srv.PID()
	closedBefore := pool.Closed()
	user0, sys0, err := procstat.Times(pid)
	if err != nil {
		return g, err
	}
	self := os.Getpid()
	selfCPU0, err := procstat.CPU(self)
	if err != nil {
		return g, err
	}
	t0 := time.Now()

	// Peak RSS over the rung, sampled 4 times a second.
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := procstat.RSS(pid); err == nil && rss > g.peakRSS {
				g.peakRSS = rss
			}
			if m, err := procstat.TCPMemory(); err == nil && m > g.tcpMem {
				g.tcpMem = m
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
			wg.Wait()
		}
	}()

	bctx, cancel := context.WithTimeout(ctx, o.window+time.Minute)
	g.sent, err = srv.Broadcast(bctx, g.eventsPerS, o.window, idx, o.size)
	cancel()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return g, errStalled
	}
	if err != nil {
		return g, err
	}
	// Stragglers: wait until every client has the whole window, or the
	// drain limit (all of it when connections were cut).
	want := int64(g.sent) * int64(clients)
	for deadline := time.Now().Add(o.drain); pool.Delivered(idx) < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	user1, sys1, err := procstat.Times(pid)
	if err != nil {
		return g, err
	}
	selfCPU1, err := procstat.CPU(self)
	if err != nil {
		return g, err
	}
	g.elapsed = time.Since(t0)
	g.clientCPU = selfCPU1 - selfCPU0
	close(stopSampling)
	wg.Wait()
	g.cpu = user1 + sys1 - user0 - sys0
	g.sys = sys1 - sys0
	if g.rss, err = procstat.RSS(pid); err != nil {
		return g, err
	}
	g.peakRSS = max(g.peakRSS, g.rss)
	if g.probe, err = pr.report(ctx, idx, g.sent); err != nil {
		return g, err
	}
	g.delivered = pool.Delivered(idx) + g.probe.Received
	g.cut = pool.Closed() - closedBefore
	held, err := srv.Sockets(ctx)
	if err != nil {
		return g, err
	}
	live := int(pool.Connected()-pool.Closed()) + o.probes - g.probe.Disconnects
	g.slowHeld = held - live
	if t.slow != nil {
		g.slowGot = t.slow.Delivered(idx)
	}
	g.clientP50, g.clientP99 = quantile(pool.Latencies(idx), 0.5), quantile(pool.Latencies(idx), 0.99)
	return g, nil
}

// quantile of ascending samples (nearest rank); -1 when there are none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
