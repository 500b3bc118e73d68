package redisadapter

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
)

// waitDisconnect reads until the server's DISCONNECT packet for "/" ("1")
// and fails on anything else ending the connection first.
func (c *goClient) waitDisconnect(t testing.TB) {
	t.Helper()
	for {
		text, _, err := c.conn.Read(waitTimeout)
		if err != nil {
			t.Fatalf("%s: no DISCONNECT packet: %v", c.name, err)
		}
		if text == "1" || strings.HasPrefix(text, "1,") {
			return
		}
	}
}

// A disconnect request cuts, on every instance, the sockets in its rooms
// but not in its except rooms, with a DISCONNECT packet (what
// socket.disconnect(false) sends), and leaves the others connected.
func TestDisconnectRequests(t *testing.T) {
	cases := []struct {
		name    string
		request func(t *testing.T, rc *redis.Client, srv *socketio.Server, opts socketio.BroadcastOptions)
		adapter func(rc *redis.Client, t *testing.T) func(*socketio.Namespace) socketio.Adapter
	}{
		{
			name: "streams batch",
			adapter: func(rc *redis.Client, t *testing.T) func(*socketio.Namespace) socketio.Adapter {
				return newStreams(t, rc, StreamsOptions{}).NewAdapter
			},
			request: func(t *testing.T, rc *redis.Client, srv *socketio.Server, opts socketio.BroadcastOptions) {
				a := srv.Sockets().Adapter().(*StreamsAdapter)
				items := []BatchItem{{Packet: event("before")}, {Disconnect: true, Opts: opts}}
				ok, err := a.PublishBatch(context.Background(), items, Fence{MarkKey: "mark", Position: Position{LSN: 0x10}})
				if err != nil || !ok {
					t.Fatalf("publish: %v %v", ok, err)
				}
				entries, err := rc.XRange(context.Background(), "socket.io", "-", "+").Result()
				if err != nil || len(entries) != 2 {
					t.Fatalf("stream: %v %v", entries, err)
				}
				// The Node adapter's form of a disconnectSockets entry.
				e := entries[1].Values
				want := `{"opts":{"rooms":["user:1"],"except":["role:admin"],"flags":{}},"close":false}`
				if e["type"] != "6" || e["nsp"] != "/" || e["data"] != want || e[PositionField] != (Position{0x10, 1}).String() {
					t.Errorf("disconnect entry %v, want type 6 data %s", e, want)
				}
			},
		},
		{
			name: "pubsub request",
			adapter: func(rc *redis.Client, t *testing.T) func(*socketio.Namespace) socketio.Adapter {
				return NewPubSub(rc, PubSubOptions{}).NewAdapter
			},
			request: func(t *testing.T, rc *redis.Client, srv *socketio.Server, opts socketio.BroadcastOptions) {
				if err := srv.Sockets().Emit("before"); err != nil {
					t.Fatal(err)
				}
				a := srv.Sockets().Adapter().(*PubSubAdapter)
				if err := a.RequestDisconnect(context.Background(), opts); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, rc := startRedis(t)
			this, thisAddr := startServer(t, tc.adapter(rc, t))
			peer, peerAddr := startServer(t, tc.adapter(rc, t))
			gone := []*goClient{
				connectGo(t, "gone here", thisAddr, "user:1", "role:viewer"),
				connectGo(t, "gone on the peer", peerAddr, "user:1", "role:viewer"),
			}
			kept := []*goClient{
				connectGo(t, "same user, new role", peerAddr, "user:1", "role:admin"),
				connectGo(t, "other user", peerAddr, "user:2", "role:viewer"),
			}
			waitRoom(t, this, "", 1)
			waitRoom(t, peer, "", 3)
			tc.request(t, rc, this, socketio.BroadcastOptions{Rooms: []string{"user:1"}, Except: []string{"role:admin"}})
			for _, c := range gone {
				if got := c.eventsUntil(t, "before"); len(got) != 0 {
					t.Errorf("%s: got %v before", c.name, got)
				}
				c.waitDisconnect(t)
			}
			waitRoom(t, this, "", 0)
			waitRoom(t, peer, "", 2)
			// The kept sockets still get broadcasts after the request.
			if err := peer.Sockets().Emit("after"); err != nil {
				t.Fatal(err)
			}
			for _, c := range kept {
				if got := c.eventsUntil(t, "after"); len(got) != 1 || got[0] != "before" {
					t.Errorf("%s: got %v, want [before]", c.name, got)
				}
			}
		})
	}
}

// A disconnect entry walcast appends in a fenced batch is applied by a Node
// socket.io@4 server with @socket.io/redis-streams-adapter 0.3.1 too: the
// official client sees "io server disconnect" on both servers' sockets it
// designates, and the others stay.
func TestStreamsDisconnectInteropWithNodeServer(t *testing.T) {
	redisSrv, rc := startRedis(t)
	goSrv, goAddr := startServer(t, newStreams(t, rc, StreamsOptions{}).NewAdapter)
	_, nodeURL := nodeServer(t, redisSrv.URL(), "streams")
	clients := startNodeClients(t,
		clientSpec{"n-gone", nodeURL, []string{"user:1", "role:viewer"}},
		clientSpec{"n-kept", nodeURL, []string{"user:1", "role:admin"}},
		clientSpec{"g-gone", "http://" + goAddr, []string{"user:1", "role:viewer"}},
	)
	waitRoom(t, goSrv, "", 1)
	a := goSrv.Sockets().Adapter().(*StreamsAdapter)
	items := []BatchItem{{Disconnect: true, Opts: socketio.BroadcastOptions{Rooms: []string{"user:1"}, Except: []string{"role:admin"}}}}
	if ok, err := a.PublishBatch(context.Background(), items, Fence{MarkKey: "mark", Position: Position{LSN: 1}}); err != nil || !ok {
		t.Fatalf("publish: %v %v", ok, err)
	}
	got := map[string]any{}
	for range 2 {
		m := clients.next("disconnected")
		got[m["disconnected"].(string)] = m["reason"]
	}
	for _, name := range []string{"n-gone", "g-gone"} {
		if got[name] != "io server disconnect" {
			t.Errorf("%s: disconnect reason %v, want io server disconnect (all: %v)", name, got[name], got)
		}
	}
	if err := goSrv.Sockets().Emit("end"); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, clients.until("end", 1), map[string][]string{})
}
