package cdc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/pgtest"
)

// TestSlotSamplerLagGrows: a slot nobody reads falls behind as WAL is
// written; the sampler reports it inactive, its lag and retained WAL growing
// by at least what was written, and (with max_slot_wal_keep_size set) the
// safe WAL size shrinking by as much.
func TestSlotSamplerLagGrows(t *testing.T) {
	pg, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "'1GB'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	dsn, conn := newDB(t, pg, `CREATE TABLE junk (id int PRIMARY KEY, pad text)`)
	const slot = "sampled_slot"
	mustExec(t, conn, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)

	s := NewSlotSampler(SlotSamplerConfig{ConnString: dsn, Slot: slot, Interval: 100 * time.Millisecond, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	var before SlotHealth
	eventually(t, 10*time.Second, "a first sample", func() bool {
		var ok bool
		before, ok = s.Last()
		return ok
	})
	if !before.Exists || before.Active || before.WALStatus != "reserved" || before.SafeWALSize == nil {
		t.Fatalf("fresh unread slot: %+v, want existing, inactive, reserved, with a safe WAL size", before)
	}
	if before.RetainedBytes < before.LagBytes {
		t.Errorf("retained %d < lag %d: restart_lsn is never past confirmed_flush_lsn", before.RetainedBytes, before.LagBytes)
	}

	start := currentLSN(t, conn)
	mustExec(t, conn, "INSERT INTO junk SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g")
	written := int64(currentLSN(t, conn) - start)
	if written < 16<<20 {
		t.Fatalf("wrote only %d bytes of WAL", written)
	}
	var after SlotHealth
	eventually(t, 10*time.Second, "the lag to grow by what was written", func() bool {
		var ok bool
		after, ok = s.Last()
		return ok && after.LagBytes-before.LagBytes >= written
	})
	if after.Active || after.RetainedBytes-before.RetainedBytes < written {
		t.Errorf("after %d bytes of WAL: %+v (before %+v): want inactive, retained grown by as much", written, after, before)
	}
	if after.SafeWALSize == nil || *before.SafeWALSize-*after.SafeWALSize < written {
		t.Errorf("safe WAL size %v -> %v after %d bytes: want it shrunk by as much", *before.SafeWALSize, after.SafeWALSize, written)
	}
	t.Logf("wrote %d MB of WAL: lag %d -> %d, retained %d -> %d, safe %d -> %d", written>>20, before.LagBytes, after.LagBytes, before.RetainedBytes, after.RetainedBytes, *before.SafeWALSize, *after.SafeWALSize)

	// A missing slot is a sample too (Exists false), and stopping PostgreSQL
	// makes the samples stale rather than frozen at their last numbers.
	mustExec(t, conn, "SELECT pg_drop_replication_slot($1)", slot)
	eventually(t, 10*time.Second, "the dropped slot to be sampled", func() bool {
		h, ok := s.Last()
		return ok && !h.Exists
	})
	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "samples to stop counting as fresh", func() bool {
		_, ok := s.Last()
		return !ok
	})
}

// TestSlotSamplerWhen: a sampler told not to sample (a standby) reports
// nothing.
func TestSlotSamplerWhen(t *testing.T) {
	dsn, conn := newDB(t, srv, ``)
	mustExec(t, conn, "SELECT pg_create_logical_replication_slot('standby_slot', 'pgoutput')")
	t.Cleanup(func() { mustExec(t, conn, "SELECT pg_drop_replication_slot('standby_slot')") })
	var leading atomic.Bool
	s := NewSlotSampler(SlotSamplerConfig{ConnString: dsn, Slot: "standby_slot", Interval: 50 * time.Millisecond, When: leading.Load, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	if h, ok := s.Last(); ok {
		t.Fatalf("a standby sampled %+v", h)
	}
	leading.Store(true)
	eventually(t, 10*time.Second, "a sample once leading", func() bool { _, ok := s.Last(); return ok })
	leading.Store(false)
	eventually(t, 10*time.Second, "no sample once standing by again", func() bool { _, ok := s.Last(); return !ok })
}
