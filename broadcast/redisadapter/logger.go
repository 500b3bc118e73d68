package redisadapter

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ClientLogger receives the Redis client's own messages (install it with
// redis.SetLogger) and writes them through walcast's logger, so JSON logs
// stay JSON. A message repeated within Window is logged once when it first
// appears and then once more at the end of the window with how often it
// recurred: a Redis restart makes the client's pool report every failed
// dial, dozens of identical lines a second.
type ClientLogger struct {
	log    *slog.Logger
	window time.Duration

	mu     sync.Mutex
	recent map[string]*repeats // by format: one per call site in the client
}

type repeats struct {
	until      time.Time
	suppressed int
	last       string
	level      slog.Level
	flushing   bool
}

// maxRepeatKeys bounds the formats tracked; the client has a few dozen
// call sites.
const maxRepeatKeys = 256

// NewClientLogger logs through log, collapsing repeats within window
// (default 10s).
func NewClientLogger(log *slog.Logger, window time.Duration) *ClientLogger {
	if window <= 0 {
		window = 10 * time.Second
	}
	return &ClientLogger{log: log.With("component", "redis-client"), window: window, recent: make(map[string]*repeats)}
}

// Printf implements the client's logging interface.
func (l *ClientLogger) Printf(ctx context.Context, format string, args ...any) {
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, args...), "redis: "))
	level := clientLogLevel(msg)
	now := time.Now()
	l.mu.Lock()
	r := l.recent[format]
	if r != nil && now.Before(r.until) {
		r.suppressed++
		r.last, r.level = msg, max(r.level, level)
		if !r.flushing {
			r.flushing = true
			time.AfterFunc(r.until.Sub(now), func() { l.flush(format) })
		}
		l.mu.Unlock()
		return
	}
	if r == nil && len(l.recent) >= maxRepeatKeys {
		for k, old := range l.recent {
			if !old.flushing && now.After(old.until) {
				delete(l.recent, k)
			}
		}
	}
	if r != nil || len(l.recent) < maxRepeatKeys {
		l.recent[format] = &repeats{until: now.Add(l.window), level: level}
	}
	l.mu.Unlock()
	l.log.Log(ctx, level, msg)
}

// flush logs what a window suppressed and starts a new window, so a steady
// stream of one message is one line per window.
func (l *ClientLogger) flush(format string) {
	l.mu.Lock()
	r := l.recent[format]
	if r == nil {
		l.mu.Unlock()
		return
	}
	n, msg, level := r.suppressed, r.last, r.level
	r.suppressed, r.flushing = 0, false
	r.until = time.Now().Add(l.window)
	l.mu.Unlock()
	if n > 0 {
		l.log.Log(context.Background(), level, msg, "repeated", n, "within", l.window.String())
	}
}

// clientLogLevel grades a client message: panics it recovered from are
// errors, failures (dials, connections, hooks) warnings, the rest (pool
// and maintenance notices) information.
func clientLogLevel(msg string) slog.Level {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "panic"):
		return slog.LevelError
	case strings.Contains(m, "fail"), strings.Contains(m, "error"), strings.Contains(m, "err="),
		strings.Contains(m, "refused"), strings.Contains(m, "timeout"), strings.Contains(m, "discard"),
		strings.Contains(m, "reject"), strings.Contains(m, "broken"), strings.Contains(m, "closed"):
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}
