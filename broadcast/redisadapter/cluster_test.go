package redisadapter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
)

type adapterKind struct {
	name string
	make func(t *testing.T, c *redis.Client) func(*socketio.Namespace) socketio.Adapter
}

var adapterKinds = []adapterKind{
	{"streams", func(t *testing.T, c *redis.Client) func(*socketio.Namespace) socketio.Adapter {
		return newStreams(t, c, StreamsOptions{}).NewAdapter
	}},
	{"pubsub", func(t *testing.T, c *redis.Client) func(*socketio.Namespace) socketio.Adapter {
		return NewPubSub(c, PubSubOptions{}).NewAdapter
	}},
}

// Two walcast servers sharing one Redis deliver each other's broadcasts,
// all-clients, rooms and except, exactly once, and keep Local ones to themselves.
func TestTwoServersDeliverEachOthersBroadcastsOnce(t *testing.T) {
	for _, kind := range adapterKinds {
		t.Run(kind.name, func(t *testing.T) {
			_, rc := startRedis(t)
			srvA, addrA := startServer(t, kind.make(t, rc))
			srvB, addrB := startServer(t, kind.make(t, rc))

			clients := []*goClient{
				connectGo(t, "a1", addrA, "r1"),
				connectGo(t, "a2", addrA),
				connectGo(t, "b1", addrB, "r1"),
				connectGo(t, "b2", addrB, "r2"),
			}
			waitRoom(t, srvA, "r1", 1)
			waitRoom(t, srvB, "r1", 1)
			waitRoom(t, srvB, "r2", 1)

			a, b := srvA.Sockets(), srvB.Sockets()
			steps := []struct {
				name string
				emit func() error
			}{
				{"allA", func() error { return a.Emit("allA", 1) }},
				{"allB", func() error { return b.Emit("allB", "x") }},
				{"r1A", func() error { return a.To("r1").Emit("r1A") }},
				{"r2A", func() error { return a.To("r2").Emit("r2A") }},
				{"r1r2B", func() error { return b.To("r1", "r2").Emit("r1r2B") }},
				{"exceptR1B", func() error { return b.Except("r1").Emit("exceptR1B") }},
				{"r1ExceptR1A", func() error { return a.To("r1").Except("r1").Emit("r1ExceptR1A") }},
				{"localA", func() error { return a.Except().Local().Emit("localA") }},
				{"binB", func() error { return b.Emit("binB", []byte{0, 1, 2, 255}) }},
				{"end", func() error { return a.Emit("end") }},
			}
			for _, s := range steps {
				if err := s.emit(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
			}
			want := map[string][]string{
				"a1": {"allA", "allB", "r1A", "r1r2B", "localA", "binB"},
				"a2": {"allA", "allB", "exceptR1B", "localA", "binB"},
				"b1": {"allA", "allB", "r1A", "r1r2B", "binB"},
				"b2": {"allA", "allB", "r2A", "r1r2B", "exceptR1B", "binB"},
			}
			for _, c := range clients {
				got := c.eventsUntil(t, "end")
				// Broadcasts from one server keep their order everywhere; the
				// local one skips Redis, so compare as sets but count each.
				slices.Sort(got)
				w := slices.Clone(want[c.name])
				slices.Sort(w)
				if !slices.Equal(got, w) {
					t.Errorf("%s got %v, want each of %v exactly once", c.name, got, w)
				}
			}
		})
	}
}

// go-redis subscribes again after Redis comes back: broadcasts flow again
// without restarting anything (what was published meanwhile is lost: pub/sub).
func TestPubSubSurvivesRedisRestart(t *testing.T) {
	redisSrv, rc := startRedis(t)
	srv, addr := startServer(t, NewPubSub(rc, PubSubOptions{PublishTimeout: time.Second}).NewAdapter)
	c := connectGo(t, "c", addr)
	waitRoom(t, srv, "", 1)
	ns := srv.Sockets()
	if err := ns.Emit("before"); err != nil {
		t.Fatal(err)
	}
	if got := c.eventsUntil(t, "before"); len(got) != 0 {
		t.Fatalf("got %v before the first event", got)
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
	// Until the subscription is back, published probes reach nobody; keep
	// probing until one arrives, then check that a later event arrives once.
	deadline := time.Now().Add(waitTimeout)
	for {
		_ = ns.Emit("probe")
		text, _, err := c.conn.Read(200 * time.Millisecond)
		if err == nil && strings.Contains(text, "probe") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no broadcast delivered after Redis came back")
		}
	}
	if err := ns.Emit("after"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Emit("end"); err != nil {
		t.Fatal(err)
	}
	got := c.eventsUntil(t, "end")
	// Probes published just before the one that was read may still arrive.
	got = slices.DeleteFunc(got, func(s string) bool { return s == "probe" })
	if !slices.Equal(got, []string{"after"}) {
		t.Errorf("after the restart got %v, want [after]", got)
	}
}
