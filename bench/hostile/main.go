// Command hostile measures what clients that never authenticate cost
// walcast: the resident memory 1,000 connections of each hostile kind pin,
// and how long until walcast has closed them, beside what 1,000
// authenticated idle sockets cost, and beside a walcast built from before
// the limits, all in the same run.
//
//	go run ./bench/hostile [-configs default,uncapped,before,nethttp] [-before 5f0e213] [-conns 1000] [-attackers 1] [-profile DIR]
//
// It builds walcast from this tree (and, for the "before" configuration,
// from the revision -before names, unpacked with git archive), starts a
// throwaway PostgreSQL with the example schema, and for each configuration
// and each hostile kind in turn starts a fresh walcast (the Go heap keeps
// what one kind freed, which would be charged to the next): RSS empty;
// with 1,000 authenticated idle sockets (bench/fanout's epoll load client,
// which answers pings); then, those staying connected, 1,000 connections
// of the kind; finally all kinds at once, while 20 legitimate clients from
// another address authenticate. The kinds:
//
//	huge frame header   WebSocket session, then a frame header announcing
//	                    999,999 bytes (just under --max-payload) and nothing more
//	huge headers        polling handshake with 1,000,000 bytes of headers
//	idle keep-alive     polling handshake, then the connection kept open
//	trickling POST      polling session, then a POST announcing 100,000
//	                    bytes of body sent one byte a second
//	no CONNECT          WebSocket session that never sends a Socket.IO CONNECT
//	silent TCP          a connection that sends nothing at all
//
// Configurations:
//
//	default    walcast serve with its defaults
//	uncapped   --max-pending 0 --max-pending-per-address 0: no connection is
//	           refused, so the figures are what each one costs and how long
//	           it lives, not how fast the caps turn it away
//	loose      every limit as loose as the settings allow (timeouts 24h,
//	           headers up to net/http's 1 MiB, no caps): the memory bounds
//	           that have no setting
//	before     the -before revision's walcast with its defaults
//	nethttp    the floor: bench/hostile/nethttp, Go's net/http and gobwas/ws
//	           with walcast's HTTP limits doing the least each kind needs
//	           (no sessions, no caps, a goroutine per WebSocket), so each
//	           kind's figure can be set beside what Go's server alone costs
//
// With -profile DIR, each configuration but "before" runs with its
// profiler, and for each kind alone the bench takes a heap and a goroutine
// profile, with the runtime's memory statistics, before the attack and
// once its connections are held: it saves them in DIR, prints where the
// held RSS per connection went (Go heap in use, goroutine stacks, freed
// heap not yet returned, the kernel's TCP buffers) and the heap profile's
// top entries for the trickling POST, against the profile before.
//
// All hostile connections come from one loopback address (127.1.0.1), or
// from -attackers addresses 127.1.x.y: one address is one attacker, many
// are a botnet, against which only the overall cap binds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/walcast/walcast/bench/internal/walcastproc"
)

const secret = "bench-hostile-secret"

// Targets of issue 12.
const (
	targetHostileMB = 20.0 // 1,000 of each kind together
	targetAuthedKB  = 12.0 // per authenticated idle socket
)

type options struct {
	conns, attackers, authed, legit int
	before, profile                 string
	configs                         []string
	wait, settle                    time.Duration
	kinds                           []*kind
}

// config is one way of running a walcast binary.
type config struct {
	name  string
	about string
	args  []string
	// limits says whether the binary has this tree's limits, so each
	// kind's deadline applies.
	limits bool
	before bool // the -before revision's binary
	floor  bool // bench/hostile/nethttp
}

var configs = []config{
	{name: "default", about: "walcast serve, defaults", limits: true},
	{name: "uncapped", about: "--max-pending 0 --max-pending-per-address 0", limits: true,
		args: []string{"--max-pending", "0", "--max-pending-per-address", "0"}},
	{name: "loose", about: "every limit as loose as the settings allow",
		args: []string{"--max-pending", "0", "--max-pending-per-address", "0", "--max-header-bytes", "1048576",
			"--frame-timeout", "24h", "--header-timeout", "24h", "--body-timeout", "24h", "--idle-timeout", "24h", "--connect-timeout", "24h"}},
	{name: "before", before: true},
	{name: "nethttp", about: "the floor: Go's net/http and gobwas/ws with walcast's HTTP limits, no sessions, no caps", limits: true, floor: true},
}

func main() {
	var o options
	flag.IntVar(&o.conns, "conns", 1000, "hostile connections of each kind")
	flag.IntVar(&o.attackers, "attackers", 1, "loopback source addresses the hostile connections come from (127.1.x.y)")
	flag.IntVar(&o.authed, "authed", 1000, "authenticated idle sockets held throughout")
	flag.IntVar(&o.legit, "legit", 20, "legitimate clients that authenticate while all kinds are held")
	flag.StringVar(&o.before, "before", "5f0e213", "git revision of the walcast before the limits, for the \"before\" configuration")
	cfgs := flag.String("configs", "default,uncapped,before", "configurations to run, in order: "+strings.Join(configNames(), ", "))
	flag.StringVar(&o.profile, "profile", "", "directory to save heap and goroutine profiles of each kind in, and print where its memory went (none when empty)")
	flag.DurationVar(&o.wait, "wait", 60*time.Second, "how long after a connection's start to wait for walcast to close it (the before revision's connect timeout is 45s)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause before each settled RSS reading")
	kindList := flag.String("kinds", strings.Join(kindNames(), ","), "hostile kinds to run")
	flag.Parse()
	if err := o.parse(*cfgs, *kindList); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func (o *options) parse(cfgs, kindList string) error {
	for _, name := range strings.Split(kindList, ",") {
		k := kindByName(strings.TrimSpace(name))
		if k == nil {
			return fmt.Errorf("-kinds: unknown kind %q (%s)", name, strings.Join(kindNames(), ", "))
		}
		o.kinds = append(o.kinds, k)
	}
	for _, name := range strings.Split(cfgs, ",") {
		name = strings.TrimSpace(name)
		if configByName(name) == nil {
			return fmt.Errorf("-configs: unknown configuration %q (%s)", name, strings.Join(configNames(), ", "))
		}
		o.configs = append(o.configs, name)
	}
	switch {
	case o.attackers < 1 || o.attackers > 60000:
		return errors.New("-attackers must be 1 to 60000")
	case o.conns < 1 || o.authed < 1:
		return errors.New("-conns and -authed must be at least 1")
	case o.legit < 0:
		return errors.New("-legit must not be negative")
	case o.wait <= 0 || o.settle < 0:
		return errors.New("-wait must be positive and -settle not negative")
	}
	return nil
}

func configNames() []string {
	names := make([]string, len(configs))
	for i, c := range configs {
		names[i] = c.name
	}
	return names
}

func configByName(name string) *config {
	for i := range configs {
		if configs[i].name == name {
			return &configs[i]
		}
	}
	return nil
}

func run(ctx context.Context, o options) error {
	fmt.Fprintln(os.Stderr, "building walcast, starting PostgreSQL...")
	env, err := walcastproc.StartBench(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
	}
	var beforeBin, floorBin string
	for _, name := range o.configs {
		if configByName(name).before && beforeBin == "" {
			bin, remove, err := buildRevision(ctx, o.before)
			if err != nil {
				return err
			}
			defer remove()
			beforeBin = bin
		}
		if configByName(name).floor && floorBin == "" {
			bin, remove, err := buildFloor(ctx)
			if err != nil {
				return err
			}
			defer remove()
			floorBin = bin
		}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": 1, "username": "bench", "role": "admin", "memberId": nil,
		"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return fmt.Errorf("sign the token: %w", err)
	}
	var reports []report
	for _, name := range o.configs {
		c := *configByName(name)
		w := server{bin: env.Bin, args: c.args, dsn: env.DSN, pprof: o.profile != ""}
		switch {
		case c.before:
			w.bin, w.pprof = beforeBin, false
			c.about = "walcast at " + o.before + " (before the limits), defaults"
		case c.floor:
			w.bin, w.floor = floorBin, true
		}
		r, err := measure(ctx, o, c, w, tok)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r.print(o)
		reports = append(reports, r)
	}
	printSummary(o, reports)
	return nil
}

// buildRevision builds cmd/walcast as of the git revision rev of the
// repository around the working directory, from a copy unpacked with git
// archive (the repository and its worktrees are left alone).
func buildRevision(ctx context.Context, rev string) (bin string, remove func(), err error) {
	fmt.Fprintf(os.Stderr, "building walcast at %s...\n", rev)
	tmp, err := os.MkdirTemp("", "walcast-before-")
	if err != nil {
		return "", nil, fmt.Errorf("build %s: %w", rev, err)
	}
	remove = func() { _ = os.RemoveAll(tmp) }
	src := filepath.Join(tmp, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		remove()
		return "", nil, fmt.Errorf("build %s: %w", rev, err)
	}
	tarball := filepath.Join(tmp, "src.tar")
	for _, args := range [][]string{{"git", "archive", "--format=tar", "-o", tarball, rev}, {"tar", "-xf", tarball, "-C", src}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			remove()
			return "", nil, fmt.Errorf("unpack revision %s: %s: %w", rev, args[0], err)
		}
	}
	bin = filepath.Join(tmp, "walcast")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/walcast")
	build.Dir = src
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build walcast at %s: %w", rev, err)
	}
	return bin, remove, nil
}

// buildFloor builds bench/hostile/nethttp into a temporary directory.
func buildFloor(ctx context.Context) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "hostile-nethttp-")
	if err != nil {
		return "", nil, fmt.Errorf("build the nethttp floor: %w", err)
	}
	remove = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, "nethttp")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/walcast/walcast/bench/hostile/nethttp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build the nethttp floor: %w", err)
	}
	return bin, remove, nil
}
