package locks

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/internal/redistest"
)

// backend makes stores that share one lock space: for memory, the same
// store; for Redis, independent clients on one server (as separate walcast
// instances would have).
type backend struct {
	name  string
	multi bool // stores from newStore are independent instances
	// newStore returns a store sharing state with every other store from
	// the same backend value.
	newStore func(t *testing.T) Store
	srv      *redistest.Server
}

// backends returns a fresh memory backend and a fresh Redis backend, each
// with the given TTL.
func backends(t *testing.T, ttl time.Duration) []*backend {
	t.Helper()
	mem := NewMemoryStore(ttl)
	srv := redistest.Run(t, redistest.Options{})
	return []*backend{
		{name: "memory", newStore: func(*testing.T) Store { return mem }},
		{name: "redis", multi: true, srv: srv, newStore: func(t *testing.T) Store {
			return NewRedisStore(redisClient(t, srv), ttl)
		}},
	}
}

func redisClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c, err := NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recorder is a Notifier that keeps every update, in order.
type recorder struct {
	mu      sync.Mutex
	updates []Update
}

func (r *recorder) LockUpdate(u Update) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	r.mu.Unlock()
}

func (r *recorder) take() []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.updates
	r.updates = nil
	return out
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

// wire renders what a client would receive, so tests compare the exact JSON.
func wire(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return string(b)
}

func wireUpdate(t *testing.T, u Update) string {
	return u.Event() + " " + wire(t, u.Payload)
}

func payload(typ, id string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"resourceType": typ, "resourceId": id})
	return b
}

func caller(t *testing.T, id int64, name, role, memberID string) Caller {
	t.Helper()
	return Caller{UserID: NumericUserID(id), Username: name, Role: role, MemberID: memberID}
}

func newService(t *testing.T, st Store, n Notifier, cfg Config) *Service {
	t.Helper()
	svc, err := NewService(st, n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// waitFor polls cond until it holds or the (generous) limit passes. It is
// a bound on how long to wait for something asynchronous, not a timing
// assertion.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var bg = context.Background()
