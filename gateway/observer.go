package gateway

import (
	"context"
	"strings"
)

// Observer hears what the gateway refuses at the handshake and what it
// announces, for metrics (refusals of requests go to Config.OnRefusal).
// Calls are made on the sockets' goroutines and must be quick.
type Observer interface {
	// AuthFailed: a handshake was refused for reason: auth.FailureReason,
	// or why the users table refused the token ("users_" and the
	// accounts directory's reason: users_no_such_user, users_role_differs,
	// ...).
	AuthFailed(reason string)
	// EventEmitted: n events named event went to the hub (lock
	// announcements, as "lock:update").
	EventEmitted(event string, n int)
}

// EventLockUpdate is how lock announcements (lock:update:{type}:{id}) are
// counted: the resource is not a label.
const EventLockUpdate = "lock:update"

// usersTableReason names a users-table refusal as a label value.
func usersTableReason(why string) string {
	return "users_" + strings.ReplaceAll(why, " ", "_")
}

type noObserver struct{}

func (noObserver) AuthFailed(string)        {}
func (noObserver) EventEmitted(string, int) {}

// LocksHeld counts the record locks held now, on every instance sharing
// the lock store.
func (g *Gateway) LocksHeld(ctx context.Context) (int, error) { return g.locks.Held(ctx) }
