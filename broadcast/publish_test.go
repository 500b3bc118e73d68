package broadcast_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/internal/redistest"
)

// serveHub serves hub on a free port; sockets join the rooms their auth
// payload lists ({"rooms": [...]}).
func serveHub(t *testing.T, hub *broadcast.Hub) string {
	t.Helper()
	hub.Namespace("/").OnConnection(func(s *socketio.Socket) {
		var auth struct{ Rooms []string }
		if err := json.Unmarshal(s.Handshake().Auth, &auth); err == nil {
			s.Join(auth.Rooms...)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: hub.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); hub.Close() })
	return ln.Addr().String()
}

func dialRooms(t *testing.T, addr string, rooms ...string) *siotest.Conn {
	t.Helper()
	c, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	auth, _ := json.Marshal(map[string]any{"rooms": rooms})
	if got, err := c.Connect("/", string(auth)); err != nil || !strings.HasPrefix(got, `0{"sid":`) {
		t.Fatalf("connect: %q %v", got, err)
	}
	return c
}

// expect reads want from c, in order; "closed" stands for the transport
// closing.
func expect(t *testing.T, who string, c *siotest.Conn, want ...string) {
	t.Helper()
	for _, w := range want {
		got, err := c.ReadText(5 * time.Second)
		if w == "closed" {
			if !errors.Is(err, siotest.ErrClosed) {
				t.Fatalf("%s: got %q (%v), want the transport closed", who, got, err)
			}
			continue
		}
		if err != nil || got != w {
			t.Fatalf("%s: got %q (%v), want %q", who, got, err, w)
		}
	}
}

// twoTransactions is the scenario every cluster mode runs: the first
// transaction sends an event to admins and revokes user 7's sockets but
// those of role admin (a DISCONNECT), the second sends one to everyone and
// revokes user 8's sockets by closing their connections, without a
// DISCONNECT, so the client reconnects and meets the handshake's check.
// (Payload keys are in sorted order: the pub/sub adapter's msgpack round
// trip sorts them.)
var twoTransactions = []broadcast.Transaction{
	{Position: 0x100, Events: []broadcast.Event{{Rooms: []string{"role:admin"}, Name: "member:update", Payload: json.RawMessage(`{"data":{"id":1},"type":"UPDATE"}`)}},
		Revocations: []broadcast.Revocation{{Rooms: []string{"user:7"}, Except: []string{"role:admin"}}}},
	{Position: 0x200, Events: []broadcast.Event{{Name: "settings:update", Payload: json.RawMessage(`{"name":"Grace"}`)}},
		Revocations: []broadcast.Revocation{{Rooms: []string{"user:8"}, Close: true}}},
}

func runTwoTransactions(t *testing.T, hub *broadcast.Hub, addr string) {
	t.Helper()
	admin := dialRooms(t, addr, "user:7", "role:admin")
	demoted := dialRooms(t, addr, "user:7", "role:viewer")
	other := dialRooms(t, addr, "user:8", "role:viewer")
	delivered, err := hub.Publish(context.Background(), twoTransactions)
	if err != nil || len(delivered) != 2 || !delivered[0] || !delivered[1] {
		t.Fatalf("Publish = %v, %v; want both delivered", delivered, err)
	}
	expect(t, "admin", admin, `2["member:update",{"data":{"id":1},"type":"UPDATE"}]`, `2["settings:update",{"name":"Grace"}]`)
	expect(t, "demoted", demoted, "1")
	expect(t, "other", other, `2["settings:update",{"name":"Grace"}]`, "closed")
}

func TestPublishInMemory(t *testing.T) {
	hub, err := broadcast.Open(context.Background(), broadcast.Config{}, broadcast.Cluster{})
	if err != nil {
		t.Fatal(err)
	}
	if hub.GroupsTransactions() {
		t.Error("the memory hub says it groups transactions")
	}
	runTwoTransactions(t, hub, serveHub(t, hub))
	if _, ok, err := hub.PublishedPosition(context.Background()); ok || err != nil {
		t.Errorf("PublishedPosition without a fence: ok %v, %v", ok, err)
	}
}

func TestPublishRefusals(t *testing.T) {
	hub := broadcast.New(broadcast.Config{})
	addr := serveHub(t, hub)
	c := dialRooms(t, addr)
	txs := []broadcast.Transaction{
		{Position: 1, Events: []broadcast.Event{{Name: "a"}}},
		{Position: 2, Events: []broadcast.Event{{Name: "b", Payload: json.RawMessage(`{"x":`)}}},
		{Position: 3, Events: []broadcast.Event{{Name: "c"}}},
	}
	delivered, err := hub.Publish(context.Background(), txs)
	if err == nil || len(delivered) != 1 {
		t.Fatalf("Publish with an invalid payload in the second transaction = %v, %v; want the first accepted and an error", delivered, err)
	}
	expect(t, "socket", c, `2["a"]`)
	if _, err := hub.Publish(context.Background(), []broadcast.Transaction{{Events: []broadcast.Event{{Namespace: "/admin", Name: "x"}}}}); !errors.Is(err, broadcast.ErrNotMainNamespace) {
		t.Errorf("event for /admin: %v, want ErrNotMainNamespace", err)
	}
	if err := hub.Emit(context.Background(), broadcast.Event{Name: "after"}); err != nil {
		t.Fatal(err)
	}
	expect(t, "socket", c, `2["after"]`) // nothing of the refused transactions
}

func TestPublishThroughRedis(t *testing.T) {
	for _, adapter := range []broadcast.ClusterAdapter{broadcast.AdapterStreams, broadcast.AdapterPubSub} {
		t.Run(string(adapter), func(t *testing.T) {
			rs := redistest.Run(t, redistest.Options{})
			rdb, err := redisadapter.NewClient(rs.URL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			ctx := context.Background()
			cluster := broadcast.Cluster{Redis: rdb, Adapter: adapter, MarkKey: "walcast:mark:test"}
			// Two instances: what one publishes reaches the other's sockets.
			a, err := broadcast.Open(ctx, broadcast.Config{}, cluster)
			if err != nil {
				t.Fatal(err)
			}
			b, err := broadcast.Open(ctx, broadcast.Config{}, cluster)
			if err != nil {
				t.Fatal(err)
			}
			serveHub(t, a)
			addrB := serveHub(t, b)
			runTwoTransactions(t, a, addrB)
			if got := a.GroupsTransactions(); got != (adapter == broadcast.AdapterStreams) {
				t.Errorf("GroupsTransactions = %v", got)
			}
			n, hasStream, err := b.StreamLength(ctx)
			if adapter == broadcast.AdapterPubSub {
				if hasStream || err != nil {
					t.Errorf("StreamLength with pub/sub: %d %v %v, want none", n, hasStream, err)
				}
			} else if !hasStream || err != nil || n != 4 {
				t.Errorf("StreamLength = %d %v %v, want the two transactions' 4 entries", n, hasStream, err)
			}
			pos, ok, err := b.PublishedPosition(ctx)
			if adapter == broadcast.AdapterPubSub {
				if ok || err != nil {
					t.Errorf("PublishedPosition with pub/sub: ok %v, %v", ok, err)
				}
				return
			}
			if err != nil || !ok || pos != 0x200 {
				t.Fatalf("PublishedPosition = %X %v %v, want 200", pos, ok, err)
			}
			// The fence: a transaction published already is accepted and
			// skipped, the one after it appended.
			c := dialRooms(t, addrB, "role:admin")
			again := append(twoTransactions[1:2:2], broadcast.Transaction{Position: 0x300, Events: []broadcast.Event{{Name: "fresh"}}})
			delivered, err := a.Publish(ctx, again)
			if err != nil || len(delivered) != 2 || delivered[0] || !delivered[1] {
				t.Fatalf("Publish of a published and a new transaction = %v, %v; want [false true]", delivered, err)
			}
			expect(t, "admin", c, `2["fresh"]`)
		})
	}
}

// TestLocalNamespaces: a namespace kept local has a memory adapter and its
// broadcasts do not reach the other instances, while the main one's do.
func TestLocalNamespaces(t *testing.T) {
	for _, adapter := range []broadcast.ClusterAdapter{broadcast.AdapterStreams, broadcast.AdapterPubSub} {
		t.Run(string(adapter), func(t *testing.T) {
			rs := redistest.Run(t, redistest.Options{})
			rdb, err := redisadapter.NewClient(rs.URL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			ctx := context.Background()
			cluster := broadcast.Cluster{Redis: rdb, Adapter: adapter, MarkKey: "walcast:mark:test", LocalNamespaces: []string{"/admin"}}
			a, err := broadcast.Open(ctx, broadcast.Config{}, cluster)
			if err != nil {
				t.Fatal(err)
			}
			b, err := broadcast.Open(ctx, broadcast.Config{}, cluster)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []*broadcast.Hub{a, b} {
				if _, ok := h.Namespace("/admin").Adapter().(*socketio.MemoryAdapter); !ok {
					t.Fatalf("/admin adapter %T, want the memory adapter", h.Namespace("/admin").Adapter())
				}
				if _, ok := h.Namespace("/").Adapter().(*socketio.MemoryAdapter); ok {
					t.Fatal("/ got a memory adapter in a cluster")
				}
			}
			serveHub(t, a)
			addrB := serveHub(t, b)
			// One connection in both namespaces of b: what reaches it
			// through Redis arrives in publish order.
			c := dialRooms(t, addrB)
			if got, err := c.Connect("/admin", ""); err != nil || !strings.HasPrefix(got, `0/admin,{"sid":`) {
				t.Fatalf("connect /admin: %q %v", got, err)
			}
			if err := a.Emit(ctx, broadcast.Event{Namespace: "/admin", Name: "local"}); err != nil {
				t.Fatal(err)
			}
			if err := a.Emit(ctx, broadcast.Event{Name: "shared"}); err != nil {
				t.Fatal(err)
			}
			expect(t, "b's socket", c, `2["shared"]`)
			if err := b.Emit(ctx, broadcast.Event{Namespace: "/admin", Name: "mine"}); err != nil {
				t.Fatal(err)
			}
			expect(t, "b's /admin socket", c, `2/admin,["mine"]`)
		})
	}
}

// TestPublishState: a transaction's State reaches OnState on every
// instance, in transaction order, after its events and before its
// revocations, in each cluster mode.
func TestPublishState(t *testing.T) {
	for _, mode := range []string{"memory", "streams", "pubsub"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			cluster := broadcast.Cluster{MarkKey: "walcast:mark:test", Adapter: broadcast.ClusterAdapter(mode)}
			if mode != "memory" {
				rs := redistest.Run(t, redistest.Options{})
				rdb, err := redisadapter.NewClient(rs.URL(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer rdb.Close()
				cluster.Redis = rdb
			}
			// Each instance records the states it is handed and how many
			// of its sockets in user:8 (revoked by the second transaction)
			// were still connected then.
			type seen struct {
				state     string
				connected int
			}
			open := func() (*broadcast.Hub, chan seen) {
				got := make(chan seen, 4)
				var hub *broadcast.Hub
				c := cluster
				c.OnState = func(b []byte) { got <- seen{string(b), len(hub.Namespace("/").To("user:8").Sockets())} }
				hub, err := broadcast.Open(ctx, broadcast.Config{}, c)
				if err != nil {
					t.Fatal(err)
				}
				return hub, got
			}
			publisher, publisherGot := open()
			receiver, receiverGot := publisher, publisherGot
			if mode != "memory" {
				receiver, receiverGot = open()
				serveHub(t, publisher)
			}
			other := dialRooms(t, serveHub(t, receiver), "user:8", "role:viewer")
			txs := []broadcast.Transaction{
				{Position: 0x100, Events: []broadcast.Event{{Name: "first"}}, State: []byte(`"s1"`)},
				{Position: 0x200, Events: []broadcast.Event{{Name: "second"}}, State: []byte(`"s2"`),
					Revocations: []broadcast.Revocation{{Rooms: []string{"user:8"}, Close: true}}},
			}
			if _, err := publisher.Publish(ctx, txs); err != nil {
				t.Fatal(err)
			}
			expect(t, "user 8", other, `2["first"]`, `2["second"]`, "closed")
			instances := map[string]chan seen{"receiver": receiverGot}
			if mode != "memory" {
				instances["publisher"] = publisherGot
			}
			for who, got := range instances {
				for i, want := range []string{`"s1"`, `"s2"`} {
					select {
					case s := <-got:
						if s.state != want {
							t.Errorf("%s: state %d is %s, want %s", who, i, s.state, want)
						}
						if who == "receiver" && s.connected != 1 {
							t.Errorf("%s: state %s came with %d sockets of user:8 connected, want 1: before the revocation", who, s.state, s.connected)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%s: state %d never came", who, i)
					}
				}
			}
		})
	}
}
