package redisadapter

import (
	"context"
	"slices"
	"testing"

	"github.com/walcast/walcast/broadcast/socketio"
)

// A batch is appended whole or not at all: a replay of the same transaction
// (even with a different number of events, as a new reader's router may
// produce) or of an older one changes nothing, and entries carry
// consecutive positions with the mark at the last.
func TestStreamsPublishBatchFencesWholeTransactions(t *testing.T) {
	_, rc := startRedis(t)
	srv, addr := startServer(t, newStreams(t, rc, StreamsOptions{}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	a := srv.Sockets().Adapter().(*StreamsAdapter)
	ctx := context.Background()

	batch := func(names ...string) []BatchItem {
		var items []BatchItem
		for _, n := range names {
			items = append(items, BatchItem{Packet: event(n), Opts: socketio.BroadcastOptions{}})
		}
		return items
	}
	steps := []struct {
		lsn      uint64
		names    []string
		appended bool
	}{
		{0x100, []string{"t1a", "t1b", "t1c"}, true},
		{0x100, []string{"t1a", "t1b", "t1c"}, false}, // redelivered after a crash
		{0x100, []string{"t1a"}, false},               // same transaction, fewer events
		{0x200, nil, true},                            // nothing to send: raises the mark only
		{0x180, []string{"older"}, false},
		{0x300, []string{"t3"}, true},
	}
	for _, s := range steps {
		got, err := a.PublishBatch(ctx, batch(s.names...), Fence{MarkKey: "mark", Position: Position{LSN: s.lsn}})
		if err != nil {
			t.Fatalf("batch at %x: %v", s.lsn, err)
		}
		if got != s.appended {
			t.Fatalf("batch at %x %v: appended=%v, want %v", s.lsn, s.names, got, s.appended)
		}
	}
	if err := srv.Sockets().Emit("end"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.eventsUntil(t, "end"), []string{"t1a", "t1b", "t1c", "t3"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	entries, err := rc.XRange(ctx, "socket.io", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var positions []string
	for _, e := range entries {
		if p, ok := e.Values[PositionField].(string); ok {
			positions = append(positions, p)
		}
		if e.Values["uid"] == nil || e.Values["nsp"] != "/" || e.Values["type"] != "3" || e.Values["data"] == nil {
			t.Errorf("entry %s lacks the Node adapter's fields: %v", e.ID, e.Values)
		}
	}
	want := []string{
		Position{0x100, 0}.String(), Position{0x100, 1}.String(), Position{0x100, 2}.String(), Position{0x300, 0}.String(),
	}
	if !slices.Equal(positions, want) {
		t.Errorf("positions %v, want %v", positions, want)
	}
	mark, ok, err := ReadMark(ctx, rc, "mark")
	if err != nil || !ok || mark != (Position{0x300, 0}) {
		t.Errorf("mark = %v %v %v, want 300/0", mark, ok, err)
	}
	if _, ok, err := ReadMark(ctx, rc, "no-such-mark"); ok || err != nil {
		t.Errorf("missing mark: ok=%v err=%v", ok, err)
	}
	if err := rc.Set(ctx, "bad-mark", "junk", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadMark(ctx, rc, "bad-mark"); err == nil {
		t.Error("a malformed mark was accepted")
	}
	if _, err := a.PublishBatch(ctx, batch("x"), Fence{}); err == nil {
		t.Error("a batch without a mark key was accepted")
	}
}

// Several transactions in one call are fenced one by one: after a crash a
// reader may group transactions already published with new ones, and only
// the new ones are appended, in order, with the mark at the last.
func TestStreamsPublishBatchesFencesEachTransaction(t *testing.T) {
	_, rc := startRedis(t)
	srv, addr := startServer(t, newStreams(t, rc, StreamsOptions{}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	a := srv.Sockets().Adapter().(*StreamsAdapter)
	ctx := context.Background()
	tx := func(lsn uint64, names ...string) FencedBatch {
		b := FencedBatch{Position: Position{LSN: lsn}}
		for _, n := range names {
			b.Items = append(b.Items, BatchItem{Packet: event(n)})
		}
		return b
	}
	got, err := a.PublishBatches(ctx, []FencedBatch{tx(0x100, "a1", "a2"), tx(0x200, "b1")}, "mark")
	if err != nil || !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("first group: %v, %v", got, err)
	}
	// Replayed: 0x100 and 0x200 again (0x200 with another number of
	// events), then two new ones, one of them without events.
	got, err = a.PublishBatches(ctx, []FencedBatch{tx(0x100, "a1", "a2"), tx(0x200, "b1", "b2"), tx(0x300), tx(0x400, "d1")}, "mark")
	if err != nil || !slices.Equal(got, []bool{false, false, true, true}) {
		t.Fatalf("replayed group: %v, %v", got, err)
	}
	if err := srv.Sockets().Emit("end"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.eventsUntil(t, "end"), []string{"a1", "a2", "b1", "d1"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if mark, ok, err := ReadMark(ctx, rc, "mark"); err != nil || !ok || mark != (Position{0x400, 0}) {
		t.Errorf("mark = %v %v %v, want 400/0", mark, ok, err)
	}
	// All fenced: nothing appended, the mark stays.
	if got, err := a.PublishBatches(ctx, []FencedBatch{tx(0x300), tx(0x400, "d1")}, "mark"); err != nil || !slices.Equal(got, []bool{false, false}) {
		t.Errorf("fully fenced group: %v, %v", got, err)
	}
	if n := rc.XLen(ctx, "socket.io").Val(); n != 5 {
		t.Errorf("stream holds %d entries, want 5 (a1 a2 b1 d1 end)", n)
	}
	// Positions must rise: a group out of order is refused before Redis.
	if _, err := a.PublishBatches(ctx, []FencedBatch{tx(0x600, "x"), tx(0x500, "y")}, "mark"); err == nil {
		t.Error("a group whose positions go down was accepted")
	}
}
