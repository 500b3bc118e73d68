package redisadapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/internal/redistest"
)

// lockedBuffer is a log destination written by the logger's goroutines
// (the flush timers) while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records parses every line as JSON, failing the test on a line that is not.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON (%v): %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func jsonLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestClientLoggerBurst: a burst of one message is one line at once and one
// line with the repeat count when the window ends, each valid JSON at the
// message's level; other messages are not held back by it.
func TestClientLoggerBurst(t *testing.T) {
	var buf lockedBuffer
	l := NewClientLogger(jsonLogger(&buf), 300*time.Millisecond)
	ctx := context.Background()
	for range 100 {
		l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 5, `dial tcp 127.0.0.1:1: connect: "refused"`)
	}
	l.Printf(ctx, "redis: discarding bad PubSub connection: %v", "EOF")
	if got := len(buf.records(t)); got != 2 {
		t.Fatalf("%d lines during the burst, want 2 (the first of each message)", got)
	}
	time.Sleep(600 * time.Millisecond)
	recs := buf.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d lines after the window, want 3: %v", len(recs), recs)
	}
	first, summary := recs[0], recs[2]
	if first["level"] != "WARN" || first["component"] != "redis-client" || !strings.HasPrefix(first["msg"].(string), "connection pool: failed to dial after 5 attempts") {
		t.Errorf("first line %v", first)
	}
	if summary["msg"] != first["msg"] || summary["repeated"] != float64(99) || summary["within"] != "300ms" {
		t.Errorf("summary line %v, want the message with repeated=99 within=300ms", summary)
	}
	// After a quiet window the message logs at once again.
	time.Sleep(400 * time.Millisecond)
	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 5, "again")
	if got := len(buf.records(t)); got != 4 {
		t.Errorf("%d lines, want the message logged at once after a quiet window", got)
	}
}

func TestClientLogLevel(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want slog.Level
	}{
		{"connection pool: failed to dial after 5 attempts: dial tcp: connection refused", slog.LevelWarn},
		{"autopipeline: recovered dispatch panic: boom", slog.LevelError},
		{"discarding bad PubSub connection: EOF", slog.LevelWarn},
		{"sentinel: new master=\"mymaster\" addr=\"10.0.0.1:6379\"", slog.LevelInfo},
	} {
		if got := clientLogLevel(tc.msg); got != tc.want {
			t.Errorf("%q: level %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// stderrRedisLogger is what the client logs through by default.
type stderrRedisLogger struct{ l *log.Logger }

func (s stderrRedisLogger) Printf(_ context.Context, format string, v ...any) {
	s.l.Printf(format, v...)
}

// TestClientLoggerRedisRestart: the real client, with the logger
// installed, talking to a Redis that is killed and restarted: its dial
// failures arrive as JSON lines through slog, collapsed, and the client
// works again after the restart.
func TestClientLoggerRedisRestart(t *testing.T) {
	srv := redistest.Run(t, redistest.Options{})
	var buf lockedBuffer
	redis.SetLogger(NewClientLogger(jsonLogger(&buf), time.Second))
	t.Cleanup(func() {
		redis.SetLogger(stderrRedisLogger{log.New(os.Stderr, "redis: ", log.LstdFlags)})
	})

	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DialerRetries, opt.MaxRetries, opt.DialTimeout = 1, -1, 200*time.Millisecond
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 30 {
		if rdb.Ping(ctx).Err() != nil {
			failed++
		}
	}
	if failed < 20 {
		t.Fatalf("only %d of 30 pings failed with Redis killed", failed)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the client did not reconnect after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the window ends, the summary is written

	var dialLines, repeated int
	for _, r := range buf.records(t) {
		msg, _ := r["msg"].(string)
		if !strings.Contains(msg, "failed to dial") || !strings.Contains(msg, srv.Addr()) {
			continue
		}
		dialLines++
		if n, ok := r["repeated"].(float64); ok {
			repeated += int(n)
		}
		if r["level"] != "WARN" || r["component"] != "redis-client" {
			t.Errorf("dial failure logged as %v", r)
		}
	}
	// The pool stops dialing for each command once PoolSize dials failed
	// in a row, so not every failed ping is a dial failure.
	if dialLines == 0 || dialLines > 4 || repeated < 5 {
		t.Errorf("%d dial-failure lines carrying %d repeats for %d failed pings: want a few lines with the repeats collapsed into them", dialLines, repeated, failed)
	}
	t.Logf("%d failed pings: %d log lines (%d repeats collapsed)", failed, dialLines, repeated)
}
