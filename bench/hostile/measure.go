package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/walcast/walcast/bench/fanout/loadclient"
	"github.com/walcast/walcast/bench/internal/procstat"
	"github.com/walcast/walcast/bench/internal/walcastproc"
)

// server is how to start the server under test.
type server struct {
	bin   string
	args  []string
	dsn   string
	floor bool // bench/hostile/nethttp, which has its own flags
	pprof bool // serves the profiler on its admin listener
}

func (w server) command(ctx context.Context, addr, admin string) *exec.Cmd {
	args := []string{"-listen", addr, "-admin-listen", admin}
	if !w.floor {
		args = append([]string{"serve", "--listen", addr, "--admin-listen", admin, "--log-level", "error"}, w.args...)
		if w.pprof {
			args = append(args, "--admin-pprof")
		}
	}
	srv := exec.CommandContext(ctx, w.bin, args...)
	srv.Env = []string{"DATABASE_URL=" + w.dsn, "JWT_SECRET=" + secret, "PATH=" + os.Getenv("PATH")}
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	return srv
}

// report is one configuration's figures.
type report struct {
	cfg        config
	emptyRSS   int64     // of the first start
	authedRSS  int64     // of the first start
	authedKB   []float64 // per authenticated socket, at each start
	kinds      []kindResult
	together   kindResult
	legitOK    int
	legitWhy   map[string]int
	authedCut  int64 // authenticated sockets the server closed during the run
	loadBefore string
	loadAfter  string
}

// kindResult is what one kind's connections did to the server, or, for
// all kinds at once, all of theirs.
type kindResult struct {
	name      string
	tried     int
	accepted  int            // the server took the connection on (see hostileConn.accepted)
	answers   map[string]int // the server's answers to the handshake
	base      int64          // RSS with the authenticated sockets, before the attack
	peak      int64          // highest RSS sampled from the attack's start until its connections were gone
	held      int64          // RSS once the connections were open and the server had settled
	lifetimes []time.Duration
	open      int // still open -wait after their start: closed by the client
	profile   *profile
}

// measure runs each kind, and then all kinds at once, against a fresh
// walcast process each.
func measure(ctx context.Context, o options, c config, w server, tok string) (report, error) {
	r := report{cfg: c, loadBefore: walcastproc.LoadAvg(), legitWhy: map[string]int{}}
	fmt.Fprintf(os.Stderr, "== %s (%s)\n", c.name, c.about)
	for _, k := range o.kinds {
		fmt.Fprintf(os.Stderr, "%d x %s...\n", o.conns, k.name)
		res, err := scenario(ctx, o, w, tok, []*kind{k}, &r, nil)
		if err != nil {
			return r, fmt.Errorf("%s: %w", k.name, err)
		}
		r.kinds = append(r.kinds, res[0])
	}
	if len(o.kinds) > 1 {
		fmt.Fprintf(os.Stderr, "all kinds at once, %d each...\n", o.conns)
		res, err := scenario(ctx, o, w, tok, o.kinds, &r, func(addr string) {
			for range o.legit {
				if err := authenticate(addr, legitAddr, tok); err != nil {
					r.legitWhy[err.Error()]++
				} else {
					r.legitOK++
				}
			}
		})
		if err != nil {
			return r, fmt.Errorf("all kinds at once: %w", err)
		}
		r.together = kindResult{name: "all kinds at once", answers: map[string]int{}}
		for _, k := range res {
			r.together.tried += k.tried
			r.together.accepted += k.accepted
			r.together.base, r.together.peak, r.together.held = k.base, k.peak, k.held
			r.together.lifetimes = append(r.together.lifetimes, k.lifetimes...)
			r.together.open += k.open
		}
	}
	r.loadAfter = walcastproc.LoadAvg()
	return r, nil
}

// scenario starts walcast, reads its RSS empty and with the authenticated
// sockets, runs the kinds at once (during, if any, once they are held) and
// stops walcast.
func scenario(ctx context.Context, o options, w server, tok string, ks []*kind, r *report, during func(addr string)) ([]kindResult, error) {
	addr, err := walcastproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := walcastproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	srv := w.command(ctx, addr, admin)
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start walcast: %w", err)
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := walcastproc.WaitReady("http://"+addr+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	pid := srv.Process.Pid
	settled := func() (int64, error) {
		time.Sleep(o.settle)
		return procstat.RSS(pid)
	}
	empty, err := settled()
	if err != nil {
		return nil, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	pool, err := loadclient.Dial(dialCtx, loadclient.Config{Addr: addr, Auth: []byte(`{"token":"` + tok + `"}`), Event: "none"}, o.authed)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("authenticated sockets: %w", err)
	}
	defer pool.Close()
	authed, err := settled()
	if err != nil {
		return nil, err
	}
	if r.emptyRSS == 0 {
		r.emptyRSS, r.authedRSS = empty, authed
	}
	r.authedKB = append(r.authedKB, float64(authed-empty)/1024/float64(o.authed))

	var prof *profile
	if w.pprof && o.profile != "" && len(ks) == 1 {
		if prof, err = startProfile(o.profile, r.cfg.name, ks[0].name, admin, pid); err != nil {
			return nil, err
		}
		during = prof.held
	}
	peak := sampleRSS(pid)
	res := attack(o, addr, ks, settled, during)
	top := peak()
	for i := range res {
		res[i].base, res[i].peak = authed, top
	}
	if prof != nil {
		res[0].profile = prof
	}
	r.authedCut += pool.Closed()
	return res, nil
}

// sampleRSS samples pid's RSS every 20 ms until the returned function is
// called, which answers the highest.
func sampleRSS(pid int) (stop func() int64) {
	done := make(chan struct{})
	var top int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := procstat.RSS(pid); err == nil {
				top = max(top, n)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return top
	}
}

// attack opens o.conns connections of each kind at once (at most 100 at a
// time per kind), reads the settled RSS once they are open (then runs
// during), and waits until the server has closed each of them or o.wait
// has passed since its start; it closes what is left.
func attack(o options, addr string, ks []*kind, settled func() (int64, error), during func(addr string)) []kindResult {
	conns := make([][]*hostileConn, len(ks))
	var wg sync.WaitGroup
	for i, k := range ks {
		conns[i] = make([]*hostileConn, o.conns)
		sem := make(chan struct{}, 100)
		for j := range o.conns {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				conns[i][j] = k.open(addr, sourceAddr(j, o.attackers))
			})
		}
	}
	wg.Wait()
	stopTrickle := trickle(conns)
	defer stopTrickle()

	held, _ := settled()
	if during != nil {
		during(addr)
	}
	out := make([]kindResult, len(ks))
	for i, k := range ks {
		res := kindResult{name: k.name, tried: o.conns, answers: map[string]int{}, held: held}
		for _, c := range conns[i] {
			res.answers[c.answer]++
			if c.accepted {
				res.accepted++
			}
			if c.conn == nil {
				continue
			}
			select {
			case <-c.done:
			case <-time.After(time.Until(c.start.Add(o.wait))):
			}
			if life, ok := c.lifetime(); ok && life <= o.wait {
				res.lifetimes = append(res.lifetimes, life)
			} else {
				res.open++
			}
			c.conn.Close()
		}
		out[i] = res
	}
	return out
}

// trickle sends one byte a second on each trickling connection still open,
// until the returned function is called.
func trickle(conns [][]*hostileConn) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for _, cs := range conns {
				for _, c := range cs {
					if c.trickle && !c.isClosed() {
						_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
						_, _ = c.conn.Write([]byte("x"))
					}
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// sourceAddr is the loopback address connection i comes from: one of
// attackers addresses 127.1.x.y.
func sourceAddr(i, attackers int) net.IP {
	a := i % attackers
	return net.IPv4(127, 1, byte(a/250), byte(a%250+1))
}

// legitAddr is where the legitimate clients come from: no attacker's.
var legitAddr = net.IPv4(127, 2, 0, 1)
