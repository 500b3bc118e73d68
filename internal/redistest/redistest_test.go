package redistest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("parse URL %q: %v", s.URL(), err)
	}
	opt.MaxRetries = -1 // see failures as they are
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestKillRestart(t *testing.T) {
	cases := []struct {
		name        string
		opts        Options
		stop        func(*Server) error
		wantSurvive bool
	}{
		{"kill without persistence loses data", Options{}, (*Server).Kill, false},
		{"stop without persistence loses data", Options{}, (*Server).Stop, false},
		{"kill with appendfsync always keeps data", Options{AppendOnly: true}, (*Server).Kill, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := Run(t, tc.opts)
			addr := s.Addr()
			c := client(t, s)
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if err := tc.stop(s); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if err := ping(addr); err == nil {
				t.Fatal("server still answers PING after it was stopped")
			}
			if err := c.Get(ctx, "k").Err(); err == nil {
				t.Fatal("GET succeeded while server is down")
			}
			if err := s.Restart(); err != nil {
				t.Fatalf("restart: %v", err)
			}
			if s.Addr() != addr {
				t.Fatalf("restart moved the server: %s -> %s", addr, s.Addr())
			}
			// The same client must reconnect by itself.
			got, err := c.Get(ctx, "k").Result()
			switch {
			case tc.wantSurvive && (err != nil || got != "v"):
				t.Fatalf("GET after restart = %q, %v; want \"v\"", got, err)
			case !tc.wantSurvive && !errors.Is(err, redis.Nil):
				t.Fatalf("GET after restart = %q, %v; want redis.Nil", got, err)
			}
		})
	}
}

func TestCloseRemovesDirAndIsIdempotent(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s still there after Close: %v", dir, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.Restart(); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestRestartWhileRunningRefused(t *testing.T) {
	s := Run(t, Options{})
	if err := s.Restart(); err == nil {
		t.Fatal("Restart of a running server succeeded")
	}
}

func TestMissingBinary(t *testing.T) {
	if _, err := Start(Options{Binary: "/nonexistent/redis-server"}); err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

func TestTwoServersDistinctPorts(t *testing.T) {
	a, b := Run(t, Options{}), Run(t, Options{StartTimeout: 5 * time.Second})
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on one address %s", a.Addr())
	}
}

// TestPauseResume: a paused server keeps its clients' connections but
// answers nothing until resumed.
func TestPauseResume(t *testing.T) {
	s := Run(t, Options{})
	c := client(t, s)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.Get(short, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("a paused server answered")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after resume: %q, %v", got, err)
	}
}
