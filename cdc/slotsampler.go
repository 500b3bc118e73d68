package cdc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// SlotSampler reads a slot's health every Interval over one ordinary
// connection, kept open between samples, for metrics: Last is a memory read,
// so a scrape never waits on PostgreSQL.
type SlotSampler struct {
	connString string
	slot       string
	every      time.Duration
	when       func() bool
	log        *slog.Logger

	mu      sync.Mutex
	last    SlotHealth
	at      time.Time
	lastErr error
}

// SlotSamplerConfig configures NewSlotSampler.
type SlotSamplerConfig struct {
	ConnString string
	Slot       string
	// Interval between samples; default 5s.
	Interval time.Duration
	// When, if set, is asked before each sample; false skips it and drops
	// the last one (an instance that stands by leaves the slot's numbers to
	// the instance reading it).
	When   func() bool
	Logger *slog.Logger
}

// NewSlotSampler returns a sampler; Run starts it.
func NewSlotSampler(cfg SlotSamplerConfig) *SlotSampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &SlotSampler{connString: cfg.ConnString, slot: cfg.Slot, every: cfg.Interval, when: cfg.When, log: cfg.Logger}
}

// Run samples until ctx ends. A failed sample is logged when failures
// start and when they end, and the connection is opened afresh for the
// next one.
func (s *SlotSampler) Run(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	t := time.NewTicker(s.every)
	defer t.Stop()
	failing := false
	for {
		if s.when == nil || s.when() {
			var err error
			conn, err = s.sample(ctx, conn)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil && !failing:
				s.log.Warn("replication slot sampling failing", "slot", s.slot, "err", err)
			case err == nil && failing:
				s.log.Info("replication slot sampling recovered", "slot", s.slot)
			}
			failing = err != nil
		} else {
			s.mu.Lock()
			s.at, s.lastErr = time.Time{}, nil
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample takes one sample on conn (connecting when nil) and returns the
// connection to use next time, nil after a failure.
func (s *SlotSampler) sample(ctx context.Context, conn *pgx.Conn) (*pgx.Conn, error) {
	qctx, cancel := context.WithTimeout(ctx, s.every)
	defer cancel()
	var err error
	if conn == nil {
		if conn, err = pgx.Connect(qctx, s.connString); err != nil {
			s.record(SlotHealth{Slot: s.slot}, fmt.Errorf("slot sample: connect: %w", err))
			return nil, err
		}
	}
	h, err := QuerySlotHealth(qctx, conn, s.slot)
	s.record(h, err)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

func (s *SlotSampler) record(h SlotHealth, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err == nil {
		s.last, s.at = h, time.Now()
	}
}

// Last returns the latest sample; ok is false when there is none younger
// than three intervals or the latest attempt failed, so stale numbers are
// never reported as current.
func (s *SlotSampler) Last() (h SlotHealth, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil || s.at.IsZero() || time.Since(s.at) > 3*s.every {
		return SlotHealth{Slot: s.slot}, false
	}
	return s.last, true
}
