package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// ReaderStatus is the reader's own view, cheap to read (no query).
type ReaderStatus struct {
	State      State
	StateSince time.Time
	// Confirmed is the LSN the reader reports (or will report at its next
	// status update) as flushed.
	Confirmed pglogrepl.LSN
	// LastAccepted is when the consumer last accepted a transaction (zero
	// if never); SinceLastAccepted the time since then (0 if never).
	LastAccepted      time.Time
	SinceLastAccepted time.Duration
	// LastStatusSent is when a standby status update last went out.
	LastStatusSent time.Time
	// LastError is the error that ended the last replication session.
	LastError error
}

// Status returns the reader's current status.
func (r *Reader) Status() ReaderStatus {
	s := ReaderStatus{
		State:        r.State(),
		StateSince:   time.Unix(0, r.stateSince.Load()),
		Confirmed:    r.acks.position(),
		LastAccepted: r.acks.lastAccepted(),
	}
	if ns := r.lastStatusNs.Load(); ns != 0 {
		s.LastStatusSent = time.Unix(0, ns)
	}
	if !s.LastAccepted.IsZero() {
		s.SinceLastAccepted = time.Since(s.LastAccepted)
	}
	r.mu.Lock()
	s.LastError = r.lastErr
	r.mu.Unlock()
	return s
}

// SlotHealth is the slot as PostgreSQL sees it, for metrics and alerts.
type SlotHealth struct {
	Slot   string
	Exists bool
	Active bool
	// RetainedBytes is the WAL the slot keeps from being recycled
	// (current WAL position minus restart_lsn).
	RetainedBytes int64
	// LagBytes is the WAL not yet confirmed (current position minus
	// confirmed_flush_lsn).
	LagBytes  int64
	Confirmed pglogrepl.LSN
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved (about to be invalidated) or lost.
	WALStatus string
	// SafeWALSize is how many more bytes can be written before the slot is
	// in danger of invalidation; nil when max_slot_wal_keep_size is
	// unlimited.
	SafeWALSize *int64
}

// QuerySlotHealth reads the slot's health over an ordinary connection.
// A missing slot is reported with Exists false, not as an error.
func QuerySlotHealth(ctx context.Context, conn *pgx.Conn, slot string) (SlotHealth, error) {
	h := SlotHealth{Slot: slot}
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT active,
		coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8,
		coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8,
		confirmed_flush_lsn::text, coalesce(wal_status, ''), safe_wal_size
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&h.Active, &h.RetainedBytes, &h.LagBytes, &confirmed, &h.WALStatus, &h.SafeWALSize)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("slot health %q: %w", slot, err)
	}
	h.Exists = true
	if confirmed != nil {
		if h.Confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return h, fmt.Errorf("slot health %q: %w", slot, err)
		}
	}
	return h, nil
}

// SlotHealth connects with the reader's connection string and reads its
// slot's health.
func (r *Reader) SlotHealth(ctx context.Context) (SlotHealth, error) {
	conn, err := pgx.Connect(ctx, r.cfg.ConnString)
	if err != nil {
		return SlotHealth{Slot: r.cfg.Slot}, fmt.Errorf("slot health: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return QuerySlotHealth(ctx, conn, r.cfg.Slot)
}
