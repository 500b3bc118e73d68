// Command walcast turns committed PostgreSQL row changes into Socket.IO
// events for browsers and serves record locks over the same sockets.
//
//	walcast serve      run the service (DATABASE_URL, JWT_SECRET, ...)
//	walcast check      check the database and Redis as serve would, changing nothing
//	walcast demo       run it against a throwaway PostgreSQL with sample data
//	walcast teardown   drop the replication slot and publication walcast made
//	walcast token      mint an HS256 token for development
//	walcast healthcheck  probe /readyz from inside a container without curl
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/redisadapter"
)

const usage = `walcast: PostgreSQL row changes as Socket.IO events.

usage:
  walcast serve [flags]      run the service (see 'walcast serve -h')
  walcast check [flags]      check the database and Redis as serve would, without
                             starting (exit 0: nothing stops a start; --json)
  walcast demo [flags]       run against a throwaway PostgreSQL with sample changes
  walcast teardown [flags]   drop walcast's replication slot and publication
  walcast token [flags]      print an HS256 token for development
  walcast healthcheck URL    exit 0 when URL (e.g. http://127.0.0.1:8080/readyz) answers 200
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errProblemsFound):
		os.Exit(1) // walcast check printed them
	default:
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "walcast:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServe(args[1:], env, stderr)
		if err != nil {
			return err
		}
		return withAdvice(serve(ctx, cfg, stderr), cfg.Slot)
	case "check":
		return check(ctx, args[1:], env, stdout, stderr)
	case "demo":
		return demo(ctx, args[1:], stdout, stderr)
	case "teardown":
		return teardown(ctx, args[1:], env, stdout, stderr)
	case "token":
		return token(args[1:], env, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, cfg *settings, logOut io.Writer) error {
	log := newLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	// The Redis client logs through a logger of its own: route it
	// through walcast's, so every line has walcast's format.
	redis.SetLogger(redisadapter.NewClientLogger(log, 0))
	srv, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return srv.run(ctx, ln)
}

// healthcheck probes a URL for container health checks (distroless images
// have no curl).
func healthcheck(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: walcast healthcheck URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", args[0], resp.Status)
	}
	return nil
}
