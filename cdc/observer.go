package cdc

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Observer hears what the reader does, for metrics. Calls are made on the
// reader's goroutines and must be quick.
type Observer interface {
	// StateChanged: the reader went from one state to another.
	StateChanged(from, to State)
	// SessionFailed: a replication session ended with err (see ErrorKind);
	// the reader retries unless err is fatal. Finding the slot held by
	// another reader is not a failure: the state says standby.
	SessionFailed(err error)
}

// Kinds of the errors that end a replication session (ErrorKind).
const (
	ErrorDecode      = "decode"      // a message walcast cannot decode or that breaks the protocol's order
	ErrorDelivery    = "delivery"    // the consumer refused a transaction (its store, such as Redis, failed)
	ErrorSlot        = "slot"        // the slot is missing or was invalidated
	ErrorPublication = "publication" // the publication was dropped
	ErrorPermission  = "permission"  // authentication or privileges
	ErrorConnection  = "connection"  // everything else: the connection or the server went away
)

// ErrorKind classifies an error returned by a replication session into one
// of a few kinds, for counting.
func ErrorKind(err error) string {
	var ce consumerError
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnknownRelation), errors.Is(err, ErrTransactionOrder):
		return ErrorDecode
	case errors.As(err, &ce):
		return ErrorDelivery
	case errors.Is(err, ErrSlotMissing), errors.Is(err, ErrSlotInvalidated), errors.Is(err, ErrSlotLost):
		return ErrorSlot
	case errors.Is(err, ErrPublicationMissing):
		return ErrorPublication
	case errors.Is(err, ErrNotPermitted):
		return ErrorPermission
	}
	return ErrorConnection
}

// consumerError marks an error the consumer returned, so that a refusal
// to accept (Redis down) is told apart from a broken connection.
type consumerError struct{ err error }

func (e consumerError) Error() string { return e.err.Error() }
func (e consumerError) Unwrap() error { return e.err }

// slotHeld reports the error of a slot in use by another reader, which
// makes this one a standby rather than a failed one.
func slotHeld(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}

type noObserver struct{}

func (noObserver) StateChanged(State, State) {}
func (noObserver) SessionFailed(error)       {}
