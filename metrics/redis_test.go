package metrics

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/internal/redistest"
)

// TestRedisHook: a real Redis's failed commands are counted by operation;
// a missing key, an uncached script and PING are not.
func TestRedisHook(t *testing.T) {
	srv := redistest.Run(t, redistest.Options{})
	ctx := context.Background()
	m := New(Options{})
	hub := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer hub.Close()
	hub.AddHook(m.RedisHook(RedisHub))
	lockc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer lockc.Close()
	lockc.AddHook(m.RedisHook(RedisLocks))

	if err := hub.Set(ctx, "socket.io", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Wrong type: every command on the key fails.
	_ = hub.XAdd(ctx, &redis.XAddArgs{Stream: "socket.io", Values: []string{"a", "b"}}).Err()
	_ = hub.XRead(ctx, &redis.XReadArgs{Streams: []string{"socket.io", "0"}, Count: 1, Block: -1}).Err()
	_ = hub.XRange(ctx, "socket.io", "-", "+").Err()
	// Not failures.
	_ = hub.Get(ctx, "no such key").Err()
	_ = redis.NewScript("return 1").Run(ctx, hub, nil).Err() // NOSCRIPT, then EVAL
	_ = hub.Ping(ctx).Err()
	// A pipeline failing.
	pipe := hub.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: "socket.io", Values: []string{"a", "b"}})
	_, _ = pipe.Exec(ctx)
	_ = lockc.ZAdd(ctx, "socket.io", redis.Z{Score: 1, Member: "x"}).Err()

	fams := gather(t, m)
	for op, want := range map[string]float64{"publish": 2, "read": 1, "session": 1, "lock": 1} {
		if v, _ := value(t, fams, "walcast_redis_errors_total", map[string]string{"op": op}); v != want {
			t.Errorf("%s errors %v, want %v", op, v, want)
		}
	}
	if n := len(fams["walcast_redis_errors_total"].GetMetric()); n != 4 {
		for _, m := range fams["walcast_redis_errors_total"].GetMetric() {
			t.Logf("%v %v", labelMap(m), m.GetCounter().GetValue())
		}
		t.Errorf("%d error series, want 4 (nothing for the missing key, the script or PING)", n)
	}
}
