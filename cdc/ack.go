package cdc

import (
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
)

// ackTracker decides which LSN may be reported to PostgreSQL as flushed.
//
// The receiving goroutine records what it hands to the consumer (Begin,
// dispatched Commits) and keepalives; the delivering goroutine records what
// the consumer accepted. The confirmed LSN only moves forward and only to
//   - the END LSN of a transaction the consumer accepted whole, or
//   - a keepalive's server WAL end, while no transaction is open on the
//     receiving side and every dispatched transaction has been accepted:
//     everything before that point was either delivered or not published,
//     so confirming it lets PostgreSQL recycle WAL of unpublished tables.
//
// It never reports 0: it starts at the position streaming started from.
type ackTracker struct {
	mu         sync.Mutex
	confirmed  pglogrepl.LSN
	pending    int  // transactions dispatched but not accepted
	inTx       bool // a Begin was received without its Commit
	lastAccept time.Time
}

func newAckTracker(start pglogrepl.LSN) *ackTracker {
	return &ackTracker{confirmed: start}
}

// resetSession forgets the half-received transaction and any dispatched
// but unaccepted ones when a replication session ends: the next session
// starts at the confirmed position and PostgreSQL re-sends them.
func (a *ackTracker) resetSession() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inTx = false
	a.pending = 0
}

func (a *ackTracker) begin() {
	a.mu.Lock()
	a.inTx = true
	a.mu.Unlock()
}

// dispatchCommit records that a whole transaction was handed to the
// consumer (before the consumer can accept it).
func (a *ackTracker) dispatchCommit() {
	a.mu.Lock()
	a.inTx = false
	a.pending++
	a.mu.Unlock()
}

// accept records that the consumer accepted the transaction ending at end.
func (a *ackTracker) accept(end pglogrepl.LSN, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending > 0 {
		a.pending--
	}
	if end > a.confirmed {
		a.confirmed = end
	}
	a.lastAccept = now
}

// keepalive offers a keepalive's server WAL end; it is confirmed only when
// nothing received is still unaccepted. Reports whether confirmed moved.
func (a *ackTracker) keepalive(walEnd pglogrepl.LSN) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inTx || a.pending > 0 || walEnd <= a.confirmed {
		return false
	}
	a.confirmed = walEnd
	return true
}

// position is the LSN to report as written, flushed and applied.
func (a *ackTracker) position() pglogrepl.LSN {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.confirmed
}

func (a *ackTracker) lastAccepted() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastAccept
}

// raise moves confirmed up to lsn (the start of a new session: the slot's
// confirmed position or a caller-supplied later one).
func (a *ackTracker) raise(lsn pglogrepl.LSN) {
	a.mu.Lock()
	if lsn > a.confirmed {
		a.confirmed = lsn
	}
	a.mu.Unlock()
}
