// Command locks measures the ack round trip of the contract's lock events
// through the official socket.io-client: lock:acquire of a free lock, of a
// held lock, lock:check and lock:release, N of each, sequential. It runs
// walcast with Redis and, as a second row, with the in-memory store, and
// prints beside them two references from the same run: a plain go-redis
// SET NX PX round trip to the same redis-server (the Redis floor), and Node
// socket.io 4.8 answering the same events from a Map (nodeserver.cjs: the
// Socket.IO ack floor of this machine and client).
//
//	go run ./bench/locks [-n 10000]
//
// It starts its own redis-server (internal/redistest) and PostgreSQL
// (internal/pgtest; walcast needs one to serve), builds walcast from this
// tree, and needs Node with e2e/node_modules (npm ci --prefix e2e).
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/bench/fanout/serverproc"
	"github.com/walcast/walcast/bench/internal/redisstats"
	"github.com/walcast/walcast/bench/internal/walcastproc"
	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/redistest"
	"github.com/walcast/walcast/sql"
)

const secret = "bench-locks-secret"

func main() {
	n := flag.Int("n", 10000, "operations of each kind")
	flag.Parse()
	if err := run(context.Background(), *n); err != nil {
		fmt.Fprintln(os.Stderr, "locks:", err)
		os.Exit(1)
	}
}

type row struct {
	name  string
	times map[string][]float64 // µs
}

func run(ctx context.Context, n int) error {
	e2eDir, err := sioclient.Setup()
	if err != nil {
		return err
	}
	bin, removeBin, err := walcastproc.Build()
	if err != nil {
		return err
	}
	defer removeBin()
	rs, err := redistest.Start(redistest.Options{})
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer rs.Close()
	pg, err := walcastproc.Postgres(ctx, sql.GraceGiverSchema+
		// the users of the tokens below: walcast refuses tokens of users it does not know
		`; INSERT INTO users (id, username, password_hash, role) VALUES (1, 'holder', 'x', 'manager'), (2, 'other', 'x', 'manager')`,
		"redis_run", "memory_run")
	if err != nil {
		return err
	}
	defer pg.Close()
	script := filepath.Join(filepath.Dir(e2eDir), "bench", "locks", "ops.mjs")

	ropt, err := redis.ParseURL(rs.URL())
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	var redisCmds map[string]redisstats.Stat

	var rows []row
	for _, mode := range []struct {
		name, db string
		env      []string
	}{
		{"walcast, Redis store", "redis_run", []string{"REDIS_URL=" + rs.URL()}},
		{"walcast, memory store", "memory_run", nil},
	} {
		fmt.Fprintf(os.Stderr, "measuring %s (%d of each operation)...\n", mode.name, n)
		before, err := redisstats.Read(ctx, rdb)
		if err != nil {
			return err
		}
		// Slots are cluster-wide: one per database.
		times, err := measureWalcast(ctx, bin, script, pg.ConnString(mode.db), mode.db, mode.env, n)
		if err != nil {
			return fmt.Errorf("%s: %w", mode.name, err)
		}
		if mode.env != nil {
			after, err := redisstats.Read(ctx, rdb)
			if err != nil {
				return err
			}
			redisCmds = redisstats.Diff(before, after)
		}
		rows = append(rows, row{mode.name, times})
	}
	fmt.Fprintf(os.Stderr, "measuring the Node reference (%d of each operation)...\n", n)
	nodeTimes, err := measureNode(ctx, script, n)
	if err != nil {
		return fmt.Errorf("node reference: %w", err)
	}
	rows = append(rows, row{"reference: Node socket.io, locks in a Map", nodeTimes})
	setnx, err := measureSetNX(ctx, rs.URL(), n)
	if err != nil {
		return err
	}
	rows = append(rows, row{"reference: go-redis SET NX PX", map[string][]float64{"acquire_free": setnx}})

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "run\top\tn\tmedian ms\tp99 ms\t\n")
	for _, r := range rows {
		for _, op := range []string{"acquire_free", "acquire_held", "release", "check"} {
			d := r.times[op]
			if len(d) == 0 {
				continue
			}
			slices.Sort(d)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t\n", r.name, op, len(d), quantile(d, 0.5)/1000, quantile(d, 0.99)/1000)
		}
	}
	tw.Flush()
	fmt.Printf("targets (Redis, acquire_free): median <= 0.5 ms, p99 <= 3 ms; load average %s\n", walcastproc.LoadAvg())
	printRedisCmds(os.Stdout, redisCmds, 4*n)
	return nil
}

// printRedisCmds shows what Redis ran during the Redis-store run (start,
// the 4n operations, their lock:update announcements, idle sweeps), per
// operation: where Redis's own time went. Commands inside Lua scripts are
// also counted under evalsha.
func printRedisCmds(out io.Writer, cmds map[string]redisstats.Stat, ops int) {
	names := slices.SortedFunc(maps.Keys(cmds), func(a, b string) int { return cmp.Compare(cmds[b].Usec, cmds[a].Usec) })
	fmt.Fprintf(out, "\nRedis commands during the Redis-store run, per lock operation (%d operations):\n", ops)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "command\tcalls/op\tµs/op\tµs/call\t\n")
	for _, name := range names[:min(8, len(names))] {
		st := cmds[name]
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.1f\t\n", name, float64(st.Calls)/float64(ops), float64(st.Usec)/float64(ops), float64(st.Usec)/float64(st.Calls))
	}
	tw.Flush()
}

func measureWalcast(ctx context.Context, bin, script, dsn, slot string, env []string, n int) (map[string][]float64, error) {
	addr, err := walcastproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	// The per-socket lock rate limit (--lock-rate) would answer most of
	// these back-to-back calls "rate limited": raised, to time the store.
	srv := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--admin-listen", "127.0.0.1:0", "--log-level", "error", "--slot", slot,
		"--lock-rate", "1000000", "--lock-burst", "1000000")
	srv.Env = append([]string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + secret, "PATH=" + os.Getenv("PATH")}, env...)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start walcast: %w", err)
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := walcastproc.WaitReady("http://"+addr+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	return runOps(ctx, script, "http://"+addr, n)
}

// measureNode runs the same operations against nodeserver.cjs.
func measureNode(ctx context.Context, script string, n int) (map[string][]float64, error) {
	nodeDir := filepath.Join(filepath.Dir(script), "..", "fanout", "node")
	if err := serverproc.EnsureNodeModules(ctx, nodeDir); err != nil {
		return nil, err
	}
	addr, err := walcastproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	srv := exec.CommandContext(ctx, "node", filepath.Join(filepath.Dir(script), "nodeserver.cjs"))
	srv.Env = append(os.Environ(), "PORT="+port)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node reference server not listening after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return runOps(ctx, script, "http://127.0.0.1:"+port, n)
}

// runOps runs ops.mjs against url with a holder's and another user's token.
func runOps(ctx context.Context, script, url string, n int) (map[string][]float64, error) {
	holder, err := token(1, "holder")
	if err != nil {
		return nil, err
	}
	other, err := token(2, "other")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", script, url, holder, other, fmt.Sprint(n))
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("node %s: %w", script, err)
	}
	times := map[string][]float64{}
	if err := json.Unmarshal(out.Bytes(), &times); err != nil {
		return nil, fmt.Errorf("decode probe output %q: %w", out.String(), err)
	}
	return times, nil
}

// measureSetNX is the reference: one SET NX PX round trip per lock, the
// bare Redis cost under every acquire.
func measureSetNX(ctx context.Context, url string, n int) ([]float64, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	out := make([]float64, 0, n)
	for i := range n {
		t0 := time.Now()
		ok, err := rdb.SetNX(ctx, fmt.Sprintf("bench:setnx:%d", i), `{"userId":1}`, 15*time.Minute).Result()
		if err != nil {
			return nil, fmt.Errorf("SET NX: %w", err)
		}
		if !ok {
			return nil, errors.New("SET NX found the key taken")
		}
		out = append(out, float64(time.Since(t0).Nanoseconds())/1000)
	}
	return out, nil
}

func token(id int, username string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": id, "username": username, "role": "manager", "memberId": nil,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
}

// quantile is the nearest-rank q-quantile of sorted d.
func quantile(d []float64, q float64) float64 {
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}
