package redisadapter

import (
	"context"
	"fmt"
	"testing"

	"github.com/walcast/walcast/broadcast/socketio"
)

// BenchmarkFencedTransaction: appending one transaction's events with the
// fence, as one PublishBatch script call versus one fenced Publish per
// event (the reference: what per-event fencing would cost). Reported per
// transaction (ns/op) and per event (redis-cpu-µs/event). No sockets: the
// read-back and delivery are the same for both and measured by
// BenchmarkPublishReadBack.
func BenchmarkFencedTransaction(b *testing.B) {
	_, rc := startRedis(b)
	srv, _ := startServer(b, newStreams(b, rc, StreamsOptions{}).NewAdapter)
	a := srv.Sockets().Adapter().(*StreamsAdapter)
	ctx := context.Background()
	var lsn uint64 // one mark for all runs: every transaction above the last
	for _, events := range []int{1, 4, 16} {
		items := make([]BatchItem, events)
		for i := range items {
			items[i] = BatchItem{Packet: event("member:update", `{"type":"UPDATE","data":{"id":"m-1","first_name":"Ann"}}`), Opts: socketio.BroadcastOptions{Rooms: []string{"role:admin"}}}
		}
		b.Run(fmt.Sprintf("events=%d/per-event-Publish-reference", events), func(b *testing.B) {
			r0 := redisCPU(b, rc)
			for b.Loop() {
				lsn++
				for i, it := range items {
					if _, err := a.Publish(ctx, it.Packet, it.Opts, &Fence{MarkKey: "bench-mark", Position: Position{LSN: lsn, Index: uint32(i)}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64((redisCPU(b, rc)-r0).Microseconds())/float64(b.N*events), "redis-cpu-µs/event")
		})
		b.Run(fmt.Sprintf("events=%d/PublishBatch", events), func(b *testing.B) {
			r0 := redisCPU(b, rc)
			for b.Loop() {
				lsn++
				if ok, err := a.PublishBatch(ctx, items, Fence{MarkKey: "bench-mark", Position: Position{LSN: lsn}}); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64((redisCPU(b, rc)-r0).Microseconds())/float64(b.N*events), "redis-cpu-µs/event")
		})
	}
}
