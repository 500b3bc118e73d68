package redisadapter

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
)

// processCPU is this process's user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the server's used_cpu_sys + used_cpu_user from INFO CPU.
func redisCPU(b *testing.B, rc *redis.Client) time.Duration {
	info, err := rc.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkPublishReadBack measures one broadcast on one instance: encode,
// append/publish to Redis, read back, deliver to the local sockets (drained
// WebSocket clients). "memory" is the reference run without Redis, so the
// difference is what crossing Redis costs per event. Reported per event:
// walcast-cpu-µs (this process: server, adapter and the drained clients),
// redis-cpu-µs (redis-server, from INFO CPU; coarse, 10 ms ticks).
// "lockstep" waits for each event's read-back before the next (latency bound);
// "pipelined" publishes all, then waits for the read-backs (CPU bound).
//
// The memory reference runs only without sockets: with sockets its tight loop
// outpaces the in-process drained clients, whose sessions the server then
// closes as slow consumers. With sockets=0 the figures are the adapter's own
// cost per event; with sockets=10 they include ten WebSocket writes per event
// and the ten clients' reads, all in this process.
func BenchmarkPublishReadBack(b *testing.B) {
	kinds := []struct {
		name  string
		redis bool
		make  func(b *testing.B, rc *redis.Client, delivered chan struct{}) func(*socketio.Namespace) socketio.Adapter
	}{
		{"memory", false, func(*testing.B, *redis.Client, chan struct{}) func(*socketio.Namespace) socketio.Adapter {
			return func(*socketio.Namespace) socketio.Adapter { return socketio.NewMemoryAdapter() }
		}},
		{"streams", true, func(b *testing.B, rc *redis.Client, delivered chan struct{}) func(*socketio.Namespace) socketio.Adapter {
			return newStreams(b, rc, StreamsOptions{
				Window:    10 * time.Second, // trimming is part of the cost
				delivered: func(string) { delivered <- struct{}{} },
			}).NewAdapter
		}},
		{"pubsub", true, func(_ *testing.B, rc *redis.Client, delivered chan struct{}) func(*socketio.Namespace) socketio.Adapter {
			return NewPubSub(rc, PubSubOptions{delivered: func() { delivered <- struct{}{} }}).NewAdapter
		}},
	}
	for _, sockets := range []int{0, 10} {
		for _, k := range kinds {
			for _, mode := range []string{"lockstep", "pipelined"} {
				if !k.redis && (mode == "pipelined" || sockets > 0) {
					continue
				}
				b.Run(fmt.Sprintf("%s/%s/sockets=%d", k.name, mode, sockets), func(b *testing.B) {
					var rc *redis.Client
					if k.redis {
						_, rc = startRedis(b)
					}
					delivered := make(chan struct{}, 1024)
					srv, addr := startServer(b, k.make(b, rc, delivered))
					for i := 0; i < sockets; i++ {
						c := connectGo(b, fmt.Sprint(i), addr)
						go func() { _, _ = io.Copy(io.Discard, c.conn.Reader()) }()
					}
					if sockets > 0 {
						waitRoom(b, srv, "", sockets)
					}
					ns := srv.Sockets()
					payload := map[string]any{"id": 42, "name": "Ada Lovelace", "amount": "100.00"}
					var redis0 time.Duration
					if k.redis {
						redis0 = redisCPU(b, rc)
					}
					cpu0 := processCPU(b)
					b.ReportAllocs()
					b.ResetTimer()
					pending := 0
					for i := 0; i < b.N; i++ {
						if err := ns.Emit("member:updated", payload); err != nil {
							b.Fatal(err)
						}
						if !k.redis {
							continue
						}
						pending++
						if mode == "lockstep" {
							<-delivered
							pending--
						} else {
							// Drain what arrived so the reader never waits on us.
							for drained := false; !drained; {
								select {
								case <-delivered:
									pending--
								default:
									drained = true
								}
							}
						}
					}
					for ; pending > 0; pending-- {
						<-delivered
					}
					b.StopTimer()
					b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "walcast-cpu-µs/op")
					if k.redis {
						b.ReportMetric(float64(redisCPU(b, rc)-redis0)/float64(time.Microsecond)/float64(b.N), "redis-cpu-µs/op")
					}
				})
			}
		}
	}
}
