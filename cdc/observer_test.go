package cdc

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// observed records what a reader told its Observer.
type observed struct {
	mu     sync.Mutex
	states []State // each state entered, in order
	kinds  []string
}

func (o *observed) StateChanged(_, to State) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states = append(o.states, to)
}

func (o *observed) SessionFailed(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kinds = append(o.kinds, ErrorKind(err))
}

func (o *observed) snapshot() ([]State, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.states), slices.Clone(o.kinds)
}

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("decode: %w", ErrMalformed), ErrorDecode},
		{fmt.Errorf("x: %w", ErrUnknownRelation), ErrorDecode},
		{ErrTransactionOrder, ErrorDecode},
		{consumerError{errors.New("redis is down")}, ErrorDelivery},
		{fmt.Errorf("session: %w", consumerError{errors.New("publish: i/o timeout")}), ErrorDelivery},
		{fmt.Errorf("%w: gone", ErrSlotMissing), ErrorSlot},
		{ErrSlotInvalidated, ErrorSlot},
		{ErrPublicationMissing, ErrorPublication},
		{fmt.Errorf("%w: password authentication failed", ErrNotPermitted), ErrorPermission},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, ErrorConnection},
		{errors.New("unexpected EOF"), ErrorConnection},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
