package redisadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
)

// checkReceived compares what each client got with want, as multisets:
// every expected event exactly once, nothing else.
func checkReceived(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for name, w := range want {
		g := slices.Clone(got[name])
		slices.Sort(g)
		w = slices.Clone(w)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s got\n  %v\nwant each of\n  %v", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected client %s", name)
		}
	}
}

func nodeServer(t *testing.T, redisURL, kind string) (*nodeProc, string) {
	t.Helper()
	p := startNode(t, "server", redisURL, kind)
	port := p.next("ready")["ready"]
	return p, fmt.Sprintf("http://127.0.0.1:%v", port)
}

// A Node socket.io@4 server with @socket.io/redis-streams-adapter 0.3.1 and a
// walcast server share one stream: each delivers the other's broadcasts
// (all-clients, rooms, except, binary) to its own clients, checked with the
// official socket.io-client.
//
// A walcast-only state entry in a fenced batch reaches walcast's OnState and
// nothing of the Node server's.
func TestStreamsInteropWithNodeServer(t *testing.T) {
	redisSrv, rc := startRedis(t)
	states := make(chan string, 4)
	streams := newStreams(t, rc, StreamsOptions{OnState: func(b []byte) { states <- string(b) }})
	goSrv, goAddr := startServer(t, streams.NewAdapter)
	node, nodeURL := nodeServer(t, redisSrv.URL(), "streams")

	clients := startNodeClients(t,
		clientSpec{"n1", nodeURL, []string{"r1"}},
		clientSpec{"n2", nodeURL, nil},
		clientSpec{"g1", "http://" + goAddr, []string{"r1"}},
		clientSpec{"g2", "http://" + goAddr, []string{"r2"}},
	)
	waitRoom(t, goSrv, "r1", 1)
	waitRoom(t, goSrv, "r2", 1)

	ns := goSrv.Sockets()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ns.Emit("goAll", 1, "two", map[string]any{"three": 3.5}))
	must(ns.To("r1").Emit("goR1"))
	must(ns.Except("r1").Emit("goExR1"))
	must(ns.Emit("goBin", "x", []byte{1, 2, 3}))
	node.do(map[string]any{"op": "emit", "event": "nodeAll", "args": []any{"é", nil, true}})
	node.do(map[string]any{"op": "emit", "event": "nodeR1", "rooms": []string{"r1"}})
	node.do(map[string]any{"op": "emit", "event": "nodeR2", "rooms": []string{"r2"}})
	node.do(map[string]any{"op": "emit", "event": "nodeExR1", "except": []string{"r1"}})
	node.do(map[string]any{"op": "emit", "event": "nodeBin", "args": []any{1}, "bin": true})
	// socketsJoin/socketsLeave travel through the stream too (types 4 and 5).
	node.do(map[string]any{"op": "join", "rooms": []string{"r2"}, "join": []string{"r9"}})
	waitRoom(t, goSrv, "r9", 1)
	node.do(map[string]any{"op": "emit", "event": "nodeR9", "rooms": []string{"r9"}})
	node.do(map[string]any{"op": "leave", "rooms": []string{"r9"}, "leave": "r9"})
	waitRoom(t, goSrv, "r9", 0)
	appended, err := ns.Adapter().(*StreamsAdapter).PublishBatch(context.Background(),
		[]BatchItem{{State: []byte(`[{"id":"1","deleted":true}]`)}}, Fence{MarkKey: "mark", Position: Position{LSN: 1}})
	if err != nil || !appended {
		t.Fatalf("state batch: appended %v, %v", appended, err)
	}
	must(ns.Emit("end"))

	goAll := `goAll[1,"two",{"three":3.5}]`
	goBin := `goBin["x",{"$bin":"AQID"}]`
	nodeAll := `nodeAll["é",null,true]`
	nodeBin := `nodeBin[1,{"$bin":"YmluOm5vZGVCaW4="}]`
	want := map[string][]string{
		"n1": {goAll, `goR1[]`, goBin, nodeAll, `nodeR1[]`, nodeBin},
		"n2": {goAll, `goExR1[]`, goBin, nodeAll, `nodeExR1[]`, nodeBin},
		"g1": {goAll, `goR1[]`, goBin, nodeAll, `nodeR1[]`, nodeBin},
		"g2": {goAll, `goExR1[]`, goBin, nodeAll, `nodeR2[]`, `nodeExR1[]`, nodeBin, `nodeR9[]`},
	}
	checkReceived(t, clients.until("end", 4), want)
	select {
	case st := <-states:
		if st != `[{"id":"1","deleted":true}]` {
			t.Errorf("OnState got %s", st)
		}
	case <-time.After(5 * time.Second):
		t.Error("the state entry never reached OnState")
	}
	node.do(map[string]any{"op": "emit", "event": "alive"}) // the Node server still runs
}

// @socket.io/redis-emitter 5.1 and a Node socket.io@4 server with
// @socket.io/redis-adapter 8.3 reach walcast's clients through the pub/sub
// adapter: all-clients broadcasts as well as room ones, and the other way round.
func TestPubSubInteropWithEmitterAndNodeServer(t *testing.T) {
	redisSrv, rc := startRedis(t)
	goSrv, goAddr := startServer(t, NewPubSub(rc, PubSubOptions{}).NewAdapter)
	node, nodeURL := nodeServer(t, redisSrv.URL(), "pubsub")
	emitter := startNode(t, "emitter", redisSrv.URL())
	emitter.next("ready")

	clients := startNodeClients(t,
		clientSpec{"n1", nodeURL, []string{"r1"}},
		clientSpec{"g1", "http://" + goAddr, []string{"r1"}},
		clientSpec{"g2", "http://" + goAddr, []string{"r2"}},
	)
	waitRoom(t, goSrv, "r1", 1)
	waitRoom(t, goSrv, "r2", 1)

	emitter.do(map[string]any{"op": "emit", "event": "emAll", "args": []any{map[string]any{"a": []int{1, 2}}}})
	emitter.do(map[string]any{"op": "emit", "event": "emR1", "rooms": []string{"r1"}})
	emitter.do(map[string]any{"op": "emit", "event": "emR1R2", "rooms": []string{"r1", "r2"}})
	emitter.do(map[string]any{"op": "emit", "event": "emExR1", "except": []string{"r1"}})
	emitter.do(map[string]any{"op": "emit", "event": "emBin", "bin": true})
	// socketsJoin through the request channel: g2 (in r2) joins r3.
	emitter.do(map[string]any{"op": "join", "rooms": []string{"r2"}, "join": []string{"r3"}})
	waitRoom(t, goSrv, "r3", 1)
	emitter.do(map[string]any{"op": "emit", "event": "emR3", "rooms": []string{"r3"}})
	node.do(map[string]any{"op": "emit", "event": "nodeAll"})
	node.do(map[string]any{"op": "emit", "event": "nodeR2", "rooms": []string{"r2"}})
	ns := goSrv.Sockets()
	if err := ns.Emit("goAll", "ü"); err != nil {
		t.Fatal(err)
	}
	if err := ns.To("r1").Emit("goR1", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := ns.Emit("end"); err != nil {
		t.Fatal(err)
	}

	emAll := `emAll[{"a":[1,2]}]`
	emBin := `emBin[{"$bin":"YmluOmVtQmlu"}]`
	goR1 := `goR1[{"$bin":"Yg=="}]`
	want := map[string][]string{
		"n1": {emAll, `emR1[]`, `emR1R2[]`, emBin, `nodeAll[]`, `goAll["ü"]`, goR1},
		"g1": {emAll, `emR1[]`, `emR1R2[]`, emBin, `nodeAll[]`, `goAll["ü"]`, goR1},
		"g2": {emAll, `emR1R2[]`, `emExR1[]`, emBin, `emR3[]`, `nodeAll[]`, `nodeR2[]`, `goAll["ü"]`},
	}
	checkReceived(t, clients.until("end", 3), want)
}

var _ socketio.Adapter = (*PubSubAdapter)(nil)
var _ socketio.Adapter = (*StreamsAdapter)(nil)

// fetchedIDs returns the sockets a Node fetchSockets command returned, by id.
func fetched(t *testing.T, res map[string]any) map[string]map[string]any {
	t.Helper()
	list, ok := res["sockets"].([]any)
	if !ok {
		t.Fatalf("fetch answer %v", res)
	}
	out := make(map[string]map[string]any)
	for _, s := range list {
		m := s.(map[string]any)
		out[m["id"].(string)] = m
	}
	return out
}

// Node peers' requests over pub/sub are answered: fetchSockets lists walcast's
// sockets (with their rooms and handshake, without its credentials), and an
// acknowledged broadcast reaches walcast's clients without making the Node
// caller time out.
func TestInteropRequestsFromNodeServer(t *testing.T) {
	for _, kind := range []string{"streams", "pubsub"} {
		t.Run(kind, func(t *testing.T) {
			redisSrv, rc := startRedis(t)
			var newAdapter func(*socketio.Namespace) socketio.Adapter
			if kind == "streams" {
				newAdapter = newStreams(t, rc, StreamsOptions{}).NewAdapter
			} else {
				newAdapter = NewPubSub(rc, PubSubOptions{}).NewAdapter
			}
			goSrv, goAddr := startServer(t, newAdapter)
			node, nodeURL := nodeServer(t, redisSrv.URL(), kind)
			clients := startNodeClients(t,
				clientSpec{"n1", nodeURL, []string{"r1"}},
				clientSpec{"g1", "http://" + goAddr, []string{"r1"}},
				clientSpec{"g2", "http://" + goAddr, []string{"r2"}},
			)
			waitRoom(t, goSrv, "r1", 1)
			waitRoom(t, goSrv, "r2", 1)
			g2 := goSrv.Sockets().Adapter().Sockets([]string{"r2"})[0]

			all := fetched(t, node.do(map[string]any{"op": "fetch"}))
			if len(all) != 3 {
				t.Fatalf("fetchSockets found %d sockets, want 3: %v", len(all), all)
			}
			got, ok := all[g2.ID()]
			if !ok {
				t.Fatalf("fetchSockets misses walcast's socket %s: %v", g2.ID(), all)
			}
			if rooms := got["rooms"].([]any); !slices.Contains(rooms, any("r2")) || !slices.Contains(rooms, any(g2.ID())) {
				t.Errorf("rooms of %s: %v", g2.ID(), rooms)
			}
			if got["address"] != "127.0.0.1" || fmt.Sprint(got["auth"]) != "map[]" {
				t.Errorf("handshake of %s: address %v auth %v, want the address and an empty auth", g2.ID(), got["address"], got["auth"])
			}
			// Anyone who may publish on the request channel gets this
			// answer: the token (valid on the application's API too), the
			// cookie and the Authorization header of walcast's sockets stay
			// in walcast. (The Node server's own socket n1 is local to it.)
			for _, s := range goSrv.Sockets().Adapter().Sockets(nil) {
				hs, _ := json.Marshal(all[s.ID()]["handshake"])
				headers, _ := all[s.ID()]["handshake"].(map[string]any)["headers"].(map[string]any)
				if _, ok := headers["x-client-name"]; !ok || strings.Contains(string(hs), "secret-") {
					t.Errorf("handshake of %s: %s, want its headers without credentials", s.ID(), hs)
				}
			}
			inR2 := fetched(t, node.do(map[string]any{"op": "fetch", "rooms": []string{"r2"}}))
			if _, ok := inR2[g2.ID()]; len(inR2) != 1 || !ok {
				t.Errorf("fetchSockets in r2: %v", inR2)
			}

			if kind == "streams" {
				res := node.do(map[string]any{"op": "emitWithAck", "event": "ackme"})
				if acks, _ := res["acks"].([]any); !slices.Equal(acks, []any{"ack:n1"}) {
					t.Errorf("emitWithAck answers %v, want only the Node client's", res)
				}
				if err := goSrv.Sockets().Emit("end"); err != nil {
					t.Fatal(err)
				}
				want := map[string][]string{"n1": {"ackme[]"}, "g1": {"ackme[]"}, "g2": {"ackme[]"}}
				checkReceived(t, clients.until("end", 3), want)
			}
		})
	}
}
