package gateway

import "context"

// Observer hears what the gateway refuses and announces, for metrics.
// Calls are made on the sockets' goroutines and must be quick.
type Observer interface {
	// AuthFailed: a handshake was refused for reason (auth.FailureReason).
	AuthFailed(reason string)
	// Refused: a client's request was refused, of kind (the Refused*
	// constants).
	Refused(kind string)
	// EventEmitted: n events named event went to the hub (lock
	// announcements, as "lock:update").
	EventEmitted(event string, n int)
}

// Kinds of refusal reported to Observer.Refused.
const (
	RefusedStandby      = "standby"       // a socket refused by a standby instance without Redis
	RefusedInvalidRoom  = "invalid_room"  // join_room/leave_room without a valid room name
	RefusedReservedRoom = "reserved_room" // join_room/leave_room of a reserved room or another socket's id
)

// EventLockUpdate is how lock announcements (lock:update:{type}:{id}) are
// counted: the resource is not a label.
const EventLockUpdate = "lock:update"

type noObserver struct{}

func (noObserver) AuthFailed(string)        {}
func (noObserver) Refused(string)           {}
func (noObserver) EventEmitted(string, int) {}

// LocksHeld counts the record locks held now, on every instance sharing
// the lock store.
func (g *Gateway) LocksHeld(ctx context.Context) (int, error) { return g.locks.Held(ctx) }
