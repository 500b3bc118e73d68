package locks

import (
	"context"
	"fmt"
	"time"
)

// Observer is told how every lock operation ended and how long it took,
// and how many expiries were announced, for metrics. Calls are made on the
// requesting goroutine after the answer is known; they must be quick.
type Observer interface {
	LockOperation(op, result string, took time.Duration)
	LocksExpired(n int)
}

// Operations reported to an Observer.
const (
	OpAcquire             = "acquire"
	OpRelease             = "release"
	OpCheck               = "check"
	OpRenew               = "renew"
	OpReleaseOnDisconnect = "release_on_disconnect"
)

// Results reported to an Observer.
const (
	ResultTaken        = "taken"         // acquire: the lock is now the caller's
	ResultRefreshed    = "refreshed"     // acquire, renew: the caller's lock got a new TTL
	ResultHeldByOther  = "held_by_other" // acquire: someone else holds it
	ResultLimitReached = "limit_reached" // acquire: the caller holds the maximum
	ResultReleased     = "released"      // release, release_on_disconnect: freed
	ResultWasFree      = "was_free"      // release: nobody held it
	ResultNotOwner     = "not_owner"     // release: someone else holds it
	ResultKept         = "kept"          // release_on_disconnect: another tab still holds it
	ResultLocked       = "locked"        // check: held
	ResultFree         = "free"          // check: not held
	ResultLost         = "lost"          // renew: no longer the caller's (released or expired)
	ResultInvalid      = "invalid"       // the request named no valid resource
	ResultForbidden    = "forbidden"     // the caller may not lock it
	ResultUnavailable  = "unavailable"   // the store failed
)

type noObserver struct{}

func (noObserver) LockOperation(string, string, time.Duration) {}
func (noObserver) LocksExpired(int)                            {}

// observe reports op's result, timed from start.
func (s *Service) observe(op string, result *string, start time.Time) {
	s.obs.LockOperation(op, *result, time.Since(start))
}

// Held counts the locks held now, on every instance sharing the store.
func (s *Service) Held(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	n, err := s.store.Held(ctx)
	if err != nil {
		return 0, fmt.Errorf("count held locks: %w", err)
	}
	return n, nil
}
