package locks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/walcast/walcast/locks"
)

// Example shows the wiring package gateway does: one Service per process, one
// Session per socket, the three events routed to it, Run for expiry.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// With REDIS_URL: rdb, _ := locks.NewRedisClient(url); store := locks.NewRedisStore(rdb, ttl)
	store := locks.NewMemoryStore(15 * time.Minute)
	hub := locks.NotifierFunc(func(u locks.Update) {
		// gateway: hub.Emit of u.Event() with u.Payload, to every socket
		b, _ := json.Marshal(u.Payload)
		fmt.Println("emit", u.Event(), string(b))
	})
	svc, err := locks.NewService(store, hub, locks.Config{})
	if err != nil {
		panic(err)
	}
	go func() { _ = svc.Run(ctx) }()

	// On connect, from the verified token's claims.
	caller, err := locks.CallerFromClaims(map[string]any{"id": float64(1), "username": "admin", "role": "admin"})
	if err != nil {
		panic(err)
	}
	sess := svc.Connect("socket-id", caller)
	defer sess.Disconnect()

	// On "lock:acquire" with args[0] as raw JSON; send the ack if asked for.
	ack := sess.Acquire(ctx, json.RawMessage(`{"resourceType":"member","resourceId":"m-1"}`))
	b, _ := json.Marshal(ack)
	fmt.Println("ack", string(b))
	// Output:
	// emit lock:update:member:m-1 {"isLocked":true,"lockedBy":"admin"}
	// ack {"success":true,"lockedBy":"admin"}
}
