package locks

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/redistest"
)

// BenchmarkLocks measures one lock operation at a time through the Service
// (payload parsing, policy, store round trip), on Redis beside a plain
// go-redis SET NX PX round trip on the same server and client settings,
// and on the memory store. Each sub-benchmark reports its median and p99
// per operation (p50-µs, p99-µs) besides ns/op.
//
//	go test -run '^$' -bench BenchmarkLocks -benchtime 10000x ./locks/
func BenchmarkLocks(b *testing.B) {
	srv := redistest.Run(b, redistest.Options{})
	rdb := redisClient(b, srv)
	stores := []struct {
		name  string
		store Store
	}{
		{"redis", NewRedisStore(rdb, time.Minute)},
		{"memory", NewMemoryStore(time.Minute)},
	}
	alice := Caller{UserID: NumericUserID(1), Username: "alice", Role: "admin"}
	bob := Caller{UserID: NumericUserID(2), Username: "bob", Role: "admin"}

	b.Run("redis/set-nx-reference", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			if err := rdb.SetNX(bg, fmt.Sprint("ref:", i), `{"userId":1}`, time.Minute).Err(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
	for _, st := range stores {
		svc, err := NewService(st.store, nil, Config{MaxLocksPerUser: -1})
		if err != nil {
			b.Fatal(err)
		}
		run := func(name string, setup func(n int), op func(i int) bool) {
			b.Run(st.name+"/"+name, func(b *testing.B) {
				if setup != nil {
					setup(b.N)
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					ok := op(i)
					lat = append(lat, time.Since(t0))
					if !ok {
						b.Fatalf("op %d failed", i)
					}
				}
				b.StopTimer()
				reportLatency(b, lat)
			})
		}
		// Payloads are built before the clock starts: the figures are the
		// Service's work, as if the bytes had just come off a socket.
		var ps []json.RawMessage
		prepare := func(typ, prefix string) func(n int) {
			return func(n int) {
				ps = make([]json.RawMessage, n)
				for i := range ps {
					ps[i] = payload(typ, fmt.Sprint(prefix, i))
				}
			}
		}
		run("acquire-free", prepare("member", "free-"), func(i int) bool {
			return svc.Acquire(bg, alice, ps[i]).Success
		})
		held := payload("member", "held")
		svc.Acquire(bg, alice, held)
		run("acquire-held", nil, func(int) bool {
			a := svc.Acquire(bg, bob, held)
			return !a.Success && a.Error == ""
		})
		run("release", func(n int) {
			prepare("user", "rel-")(n)
			for _, p := range ps {
				if !svc.Acquire(bg, alice, p).Success {
					b.Fatal("setup acquire failed")
				}
			}
		}, func(i int) bool {
			return svc.Release(bg, alice, ps[i]).Success
		})
		run("check", nil, func(int) bool {
			return svc.Check(bg, bob, held).IsLocked
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
