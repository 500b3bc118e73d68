package locks

import (
	"context"
	"time"
)

// DefaultTTL is the contract's lock lifetime.
const DefaultTTL = 15 * time.Minute

// Owner is who asks for a lock.
type Owner struct {
	UserID   UserID
	Username string
	// Session, when set, is the lock session (a socket) asking: the store
	// counts it among the lock's holders for ReleaseSession.
	Session string
}

// AcquireOutcome says what an Acquire or Extend did.
type AcquireOutcome int

const (
	// Taken: the lock was free (or expired) and is now the caller's. Announce it.
	Taken AcquireOutcome = iota + 1
	// Refreshed: the caller already held it; the TTL restarted, acquiredAt kept.
	Refreshed
	// HeldByOther: someone else holds it; nothing changed.
	HeldByOther
	// LimitReached: free, but the caller already holds the maximum number of locks.
	LimitReached
	// NotHeld: Extend found the lock free; Extend never takes a free lock.
	NotHeld
)

func (o AcquireOutcome) String() string {
	switch o {
	case Taken:
		return "taken"
	case Refreshed:
		return "refreshed"
	case HeldByOther:
		return "held by other"
	case LimitReached:
		return "limit reached"
	case NotHeld:
		return "not held"
	}
	return "unknown"
}

// AcquireResult is the outcome and the holder after the call (the caller for
// Taken/Refreshed, the other user for HeldByOther, zero otherwise).
type AcquireResult struct {
	Outcome AcquireOutcome
	Holder  Holder
}

// ReleaseOutcome says what a Release did.
type ReleaseOutcome int

const (
	// Released: the caller held the lock and it is now free. Announce it.
	Released ReleaseOutcome = iota + 1
	// WasFree: nobody held it; nothing changed.
	WasFree
	// NotOwner: someone else holds it; nothing changed.
	NotOwner
)

func (o ReleaseOutcome) String() string {
	switch o {
	case Released:
		return "released"
	case WasFree:
		return "was free"
	case NotOwner:
		return "not owner"
	}
	return "unknown"
}

// ReleaseResult is the outcome and, for NotOwner, who holds the lock.
type ReleaseResult struct {
	Outcome ReleaseOutcome
	Holder  Holder
}

// Store keeps locks. Every method is one atomic step against the shared
// state, so two callers can never both be told they took the same lock and a
// release can never delete a lock someone else just took.
type Store interface {
	// Acquire takes a free lock or refreshes the caller's own one. limit caps
	// how many locks the user may hold at once when taking a new one (0: no cap).
	Acquire(ctx context.Context, r Resource, o Owner, limit int) (AcquireResult, error)
	// Extend refreshes the TTL of a lock the caller holds; it never takes a
	// free lock (Outcome NotHeld), so renewal cannot resurrect a lock that was
	// released or expired meanwhile.
	Extend(ctx context.Context, r Resource, o Owner) (AcquireResult, error)
	// Release frees the lock if, and only if, the caller holds it.
	Release(ctx context.Context, r Resource, u UserID) (ReleaseResult, error)
	// ReleaseSession forgets session among the lock's holders and then
	// releases it as Release does, unless another session (another tab of
	// the user, on any instance sharing the store) still holds it: kept is
	// then true and nothing else changed.
	ReleaseSession(ctx context.Context, r Resource, u UserID, session string) (res ReleaseResult, kept bool, err error)
	// Check reports the holder, or ok=false when the lock is free.
	Check(ctx context.Context, r Resource) (h Holder, ok bool, err error)
	// SweepExpired claims up to limit locks whose TTL ran out and returns them.
	// Each expired grant is returned by exactly one call, across every process
	// sharing the store, so its release is announced exactly once.
	SweepExpired(ctx context.Context, limit int) ([]Resource, error)
	// Held counts the locks granted and not yet expired.
	Held(ctx context.Context) (int, error)
	// TTL is the lifetime given to a lock on acquire and on each refresh.
	TTL() time.Duration
}
