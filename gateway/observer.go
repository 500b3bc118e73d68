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
	// or why the users table refused the token (unknown_user,
	// role_differs, member_id_differs, locked_out, users_not_loaded).
	AuthFailed(reason string)
	// EventEmitted: n events named event went to the hub (lock
	// announcements, as "lock:update").
	EventEmitted(event string, n int)
}

// EventLockUpdate is how lock announcements (lock:update:{type}:{id}) are
// counted: the resource is not a label.
const EventLockUpdate = "lock:update"

// usersTableReason names a users-table refusal (accounts'
// Directory.Refusal) as a label value.
func usersTableReason(why string) string {
	switch why {
	case "no such user":
		return "unknown_user"
	case "users not loaded yet":
		return "users_not_loaded"
	}
	return strings.ReplaceAll(why, " ", "_")
}

type noObserver struct{}

func (noObserver) AuthFailed(string)        {}
func (noObserver) EventEmitted(string, int) {}

// LocksHeld counts the record locks held now, on every instance sharing
// the lock store.
func (g *Gateway) LocksHeld(ctx context.Context) (int, error) { return g.locks.Held(ctx) }
