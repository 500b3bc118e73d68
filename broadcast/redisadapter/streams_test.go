package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/internal/redistest"
)

func event(name string, args ...string) *parser.Packet {
	raw := []json.RawMessage{json.RawMessage(parser.AppendJSONString(nil, name))}
	for _, a := range args {
		raw = append(raw, json.RawMessage(a))
	}
	return &parser.Packet{Type: parser.Event, Namespace: "/", ID: parser.NoID, Name: name, Args: raw}
}

// Publish with a fence appends only above the mark, raises it in the same
// step, and tags the entry with its position; refused events reach nobody.
func TestStreamsFencedPublish(t *testing.T) {
	_, rc := startRedis(t)
	srv, addr := startServer(t, newStreams(t, rc, StreamsOptions{}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	a := srv.Sockets().Adapter().(*StreamsAdapter)
	ctx := context.Background()

	publish := func(name string, lsn uint64, idx uint32) error {
		_, err := a.Publish(ctx, event(name), socketio.BroadcastOptions{}, &Fence{MarkKey: "mark", Position: Position{lsn, idx}})
		return err
	}
	steps := []struct {
		name     string
		lsn      uint64
		idx      uint32
		accepted bool
	}{
		{"p1", 0x100, 0, true},
		{"p2", 0x100, 1, true},
		{"dupP2", 0x100, 1, false},
		{"older", 0xff, 7, false},
		{"p3", 0x1000, 0, true}, // longer hex, still ordered: fixed width
		{"p4", 0x1_0000_0000, 0, true},
		{"olderAgain", 0x1000, 5, false},
	}
	for _, s := range steps {
		err := publish(s.name, s.lsn, s.idx)
		if s.accepted && err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !s.accepted && !errors.Is(err, ErrFenced) {
			t.Fatalf("%s: got %v, want ErrFenced", s.name, err)
		}
	}
	if err := srv.Sockets().Emit("end"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.eventsUntil(t, "end"), []string{"p1", "p2", "p3", "p4"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	mark, err := rc.Get(ctx, "mark").Result()
	if err != nil || mark != (Position{0x1_0000_0000, 0}).String() {
		t.Errorf("mark = %q, %v", mark, err)
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
	}
	want := []string{"0000000000000100/00000000", "0000000000000100/00000001", "0000000000001000/00000000", "0000000100000000/00000000"}
	if !slices.Equal(positions, want) {
		t.Errorf("positions in stream %v, want %v", positions, want)
	}
}

// The stream is trimmed by age, not count: entries older than Window go on
// the next append.
func TestStreamsTrimsByAge(t *testing.T) {
	// One entry per stream node so approximate (~) trimming can drop single
	// entries; with the default 100 it trims only whole nodes.
	srvR := redistest.Run(t, redistest.Options{ExtraArgs: []string{"--stream-node-max-entries", "1"}})
	rc, err := NewClient(srvR.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	srv, _ := startServer(t, newStreams(t, rc, StreamsOptions{Window: 300 * time.Millisecond}).NewAdapter)
	ns := srv.Sockets()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := ns.Emit("old"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.XLen(ctx, "socket.io").Val(); n != 50 {
		t.Fatalf("XLEN %d before the window passed, want 50 (no count limit)", n)
	}
	time.Sleep(400 * time.Millisecond)
	if err := ns.Emit("new"); err != nil {
		t.Fatal(err)
	}
	entries, err := rc.XRange(ctx, "socket.io", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !json.Valid([]byte(entries[0].Values["data"].(string))) {
		t.Fatalf("after the window: %d entries, want only the new one: %v", len(entries), entries)
	}
}

// Redis is a trust boundary: entries that do not decode are logged and skipped,
// and delivery goes on with the next one.
func TestStreamsSkipsBadEntries(t *testing.T) {
	_, rc := startRedis(t)
	srv, addr := startServer(t, newStreams(t, rc, StreamsOptions{}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	ctx := context.Background()
	bad := []map[string]any{
		{"uid": "x", "nsp": "/", "type": "3", "data": "{not json"},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":[]},"opts":{}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":0,"data":["x"]}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":[1]}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["disconnect"]}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["x"],"nsp":"/other"}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["x"]},"opts":{"rooms":[{}]}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": "!!!!"},
		{"uid": "x", "nsp": "/", "type": "3", "data": "3gAB"}, // msgpack map16 claiming 1 entry, truncated
		{"uid": "x", "nsp": "/", "type": "3"},
		{"uid": "x", "nsp": "/", "type": "nope", "data": "{}"},
		{"uid": "x", "nsp": "/", "type": "2"}, // heartbeat: ignored, not an error
		{"junk": "1"},
	}
	for _, v := range bad {
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: "socket.io", Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Sockets().Emit("good", `1`); err != nil {
		t.Fatal(err)
	}
	if err := srv.Sockets().Emit("end"); err != nil {
		t.Fatal(err)
	}
	if got := c.eventsUntil(t, "end"); !slices.Equal(got, []string{"good"}) {
		t.Errorf("delivered %v, want only good", got)
	}
}

// When Redis goes away the broadcast fails (nothing is delivered locally
// only), and once Redis is back on the same address reading resumes by itself.
func TestStreamsSurvivesRedisRestart(t *testing.T) {
	redisSrv := redistest.Run(t, redistest.Options{AppendOnly: true})
	rc, err := NewClient(redisSrv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	srv, addr := startServer(t, newStreams(t, rc, StreamsOptions{BlockTime: 200 * time.Millisecond, PublishTimeout: time.Second}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	ns := srv.Sockets()
	if err := ns.Emit("before"); err != nil {
		t.Fatal(err)
	}
	if err := redisSrv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Emit("during"); err == nil {
		t.Fatal("broadcast with Redis down reported success")
	}
	if err := redisSrv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for ns.Emit("after") != nil {
		if time.Now().After(deadline) {
			t.Fatal("broadcast still failing after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ns.Emit("end"); err != nil {
		t.Fatal(err)
	}
	if got := c.eventsUntil(t, "end"); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("delivered %v, want [before after]", got)
	}
}

func TestParsePosition(t *testing.T) {
	for _, p := range []Position{{}, {0x16B3C8A0, 3}, {^uint64(0), ^uint32(0)}} {
		got, err := ParsePosition(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePosition(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, bad := range []string{"", "0/0", "000000000000000G/00000000", "0000000000000000-00000000", "0000000000000000/000000000"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
}
