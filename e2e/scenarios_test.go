package e2e

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/e2e/sioclient"
)

// decode unmarshals a script's result line, failing the test on error.
func decode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode result %s: %v", raw, err)
	}
}

func (o *observations) where(kind string, match func(observation) bool) []observation {
	var out []observation
	for _, ob := range o.all(kind) {
		if match(ob) {
			out = append(out, ob)
		}
	}
	return out
}

func bySocket(id string) func(observation) bool {
	return func(ob observation) bool { return ob.socket == id }
}

func TestTransports(t *testing.T) {
	for _, mode := range []string{"websocket", "polling", "upgrade"} {
		t.Run(mode, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			_, final := ts.run(t, "transports.mjs", mode)
			var r struct {
				ID, SID, AtConnect, AfterUpgrade string
			}
			decode(t, final.Raw, &r)

			// The server handled every round trip of this socket, and saw the
			// transport the client reported.
			msgs := ts.obs.where("event", func(ob observation) bool { return ob.socket == r.ID && ob.name == "message" })
			acks := ts.obs.where("event", func(ob observation) bool { return ob.socket == r.ID && ob.name == "message-with-ack" })
			roundTrips := 2
			if mode == "upgrade" {
				roundTrips = 3 // one more after the second transports were refused
			}
			if len(msgs) != roundTrips || len(acks) != roundTrips {
				t.Fatalf("server saw %d message and %d message-with-ack events from %s, want %d each", len(msgs), len(acks), r.ID, roundTrips)
			}
			if got := msgs[len(msgs)-1].transport; got != r.AfterUpgrade {
				t.Errorf("server-side transport at the last round trip = %q, client says %q", got, r.AfterUpgrade)
			}
			ts.obs.waitFor(t, "client namespace disconnect of "+r.ID, func() bool {
				d := ts.obs.where("disconnect", bySocket(r.ID))
				return len(d) == 1 && d[0].reason == socketio.ReasonClientNamespaceDisconn
			})
		})
	}
}

func TestMiddleware(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{requireToken: true})
			_, final := ts.run(t, "middleware.mjs", transport)
			var r struct{ ID string }
			decode(t, final.Raw, &r)

			seen := ts.obs.all("middleware")
			if len(seen) != 3 {
				t.Fatalf("middleware ran %d times, want 3 (no token, bad token, good token): %+v", len(seen), seen)
			}
			good := seen[2]
			var auth struct {
				Token string `json:"token"`
				User  struct {
					ID    int      `json:"id"`
					Roles []string `json:"roles"`
				} `json:"user"`
			}
			if err := json.Unmarshal([]byte(good.auth), &auth); err != nil {
				t.Fatalf("auth payload the middleware saw is not JSON: %q", good.auth)
			}
			if auth.Token != "good" || auth.User.ID != 7 || !slices.Equal(auth.User.Roles, []string{"admin", "viewer"}) {
				t.Errorf("middleware saw auth %s", good.auth)
			}
			if good.header != "header-value" {
				t.Errorf("middleware saw header %q", good.header)
			}
			if !strings.Contains(good.query, "room=dashboard") {
				t.Errorf("middleware saw query %q", good.query)
			}
			if !strings.HasPrefix(good.remote, "127.0.0.1:") {
				t.Errorf("middleware saw remote address %q", good.remote)
			}
			if seen[1].auth != `{"token":"bad"}` {
				t.Errorf("second middleware call saw auth %s, want the bad token", seen[1].auth)
			}
			// Only the good token got a socket.
			conns := ts.obs.all("connect")
			if len(conns) != 1 || conns[0].socket != r.ID {
				t.Errorf("connections %+v, want only %s", conns, r.ID)
			}
		})
	}
}

func TestAcks(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			_, final := ts.run(t, "acks.mjs", transport)
			var r struct{ ID, ServerTimeoutError string }
			decode(t, final.Raw, &r)

			answered := ts.obs.where("server-ack", func(ob observation) bool { return ob.name == "question" })
			if len(answered) != 1 || answered[0].err != "" {
				t.Fatalf("server acks for question: %+v", answered)
			}
			if got := string(answered[0].args.JSON[0]) + "," + string(answered[0].args.JSON[1]); got != `{"answer":42},"second"` {
				t.Errorf("server got the client's answer %s", got)
			}
			// The client answered "silent" after the timeout: the callback ran
			// once, with the timeout, and the late answer was dropped.
			silent := ts.obs.where("server-ack", func(ob observation) bool { return ob.name == "silent" })
			if len(silent) != 1 || silent[0].err != socketio.ErrAckTimeout.Error() {
				t.Fatalf("server acks for silent: %+v, want one timeout", silent)
			}
			if r.ServerTimeoutError != socketio.ErrAckTimeout.Error() {
				t.Errorf("client was told %q", r.ServerTimeoutError)
			}
		})
	}
}

func TestBinary(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			_, final := ts.run(t, "binary.mjs", transport)
			var r struct{ ID string }
			decode(t, final.Raw, &r)

			msgs := ts.obs.where("event", func(ob observation) bool { return ob.socket == r.ID && ob.name == "message" })
			if len(msgs) != 3 {
				t.Fatalf("server saw %d message events, want 3", len(msgs))
			}
			// The second message carried five attachments, in the order the
			// client's deconstruction walks the arguments.
			var sizes []int
			for _, b := range msgs[1].args.Binary {
				sizes = append(sizes, len(b))
			}
			if want := []int{1, 1000, 70000, 0, 1000}; !slices.Equal(sizes, want) {
				t.Fatalf("attachment sizes %v, want %v", sizes, want)
			}
			for i, b := range msgs[1].args.Binary[2] {
				if b != byte(i*31+3) {
					t.Fatalf("attachment 2 byte %d = %d, want %d", i, b, byte(i*31+3))
				}
			}
			if b, ok := msgs[0].args.Bytes(0); !ok || len(b) != 1 || b[0] != 1 {
				t.Errorf("first message: Bytes(0) = %v, %v", b, ok)
			}
			if len(msgs[2].args.Binary) != 0 {
				t.Errorf("text message after binary carries %d attachments", len(msgs[2].args.Binary))
			}
		})
	}
}

func TestRooms(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			_, final := ts.run(t, "rooms.mjs", transport)
			var r struct {
				Steps []struct {
					Step      int
					Desc      string
					Receivers []string
				}
			}
			decode(t, final.Raw, &r)
			if len(r.Steps) != 12 {
				t.Fatalf("%d broadcast steps checked, want 12", len(r.Steps))
			}
			if got := len(ts.obs.where("broadcast", func(ob observation) bool { return ob.name == "room-event" })); got != 12 {
				t.Errorf("server ran %d room broadcasts, want 12", got)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			_, final := ts.run(t, "namespaces.mjs", transport)
			var r struct{ Custom, Root, MuxCustom string }
			decode(t, final.Raw, &r)

			custom := ts.obs.where("connect", func(ob observation) bool { return ob.nsp == "/custom" })
			var auths []string
			for _, ob := range custom {
				auths = append(auths, ob.auth)
			}
			if want := []string{`{"who":"custom"}`, `{"who":"mux"}`}; !slices.Equal(auths, want) {
				t.Errorf("/custom connections saw auth %v, want %v", auths, want)
			}
			if len(custom) == 2 && (custom[0].socket != r.Custom || custom[1].socket != r.MuxCustom) {
				t.Errorf("/custom socket ids %s %s, client saw %s %s", custom[0].socket, custom[1].socket, r.Custom, r.MuxCustom)
			}
			if ts.SIO.Lookup("/nope") != nil {
				t.Error("a client's CONNECT created the unknown namespace /nope")
			}
		})
	}
}

func TestDisconnect(t *testing.T) {
	cases := []struct {
		mode, transport string
	}{
		{"server", "websocket"},
		{"server", "polling"},
		{"drop", "websocket"},
		{"drop", "polling"},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.transport, func(t *testing.T) {
			// A small queue makes the flood in onDropMe overflow quickly.
			ts := startServer(t, serverOptions{sendQueue: 64})
			_, final := ts.run(t, "disconnect.mjs", c.mode, c.transport)
			var r struct{ FirstID, SecondID, Reason string }
			decode(t, final.Raw, &r)

			var first []observation
			ts.obs.waitFor(t, "disconnect of "+r.FirstID, func() bool {
				first = ts.obs.where("disconnect", bySocket(r.FirstID))
				return len(first) > 0
			})
			if len(first) != 1 {
				t.Fatalf("disconnect handler ran %d times for %s", len(first), r.FirstID)
			}
			if c.mode == "server" {
				if first[0].reason != socketio.ReasonServerNamespaceDisconn {
					t.Errorf("server-side reason %q, want %q", first[0].reason, socketio.ReasonServerNamespaceDisconn)
				}
				if n := len(ts.obs.all("connect")); n != 1 {
					t.Errorf("%d connections, want 1: the client must not reconnect", n)
				}
				return
			}
			dropped := ts.obs.where("dropped", bySocket(r.FirstID))
			if len(dropped) != 1 || dropped[0].sockets >= 100_000 {
				t.Fatalf("the send queue never overflowed: %+v", dropped)
			}
			t.Logf("transport closed after %d queued events, server reason %q, client reason %q", dropped[0].sockets, first[0].reason, r.Reason)
			if first[0].reason == socketio.ReasonServerNamespaceDisconn || first[0].reason == socketio.ReasonClientNamespaceDisconn {
				t.Errorf("server-side reason %q: the transport should have been closed, not the namespace", first[0].reason)
			}
			if len(ts.obs.where("connect", bySocket(r.SecondID))) != 1 {
				t.Errorf("server never saw the reconnected socket %s", r.SecondID)
			}
		})
	}
}

// TestFanout: one broadcast, encoded once, reaches websocket, polling and
// upgraded clients identically (text and binary).
func TestFanout(t *testing.T) {
	ts := startServer(t, serverOptions{})
	_, final := ts.run(t, "fanout.mjs", "4")
	var r struct {
		Clients    int
		Transports map[string]int
	}
	decode(t, final.Raw, &r)
	if r.Clients != 12 || r.Transports["polling"] != 4 {
		t.Fatalf("result %+v", r)
	}
	fan := ts.obs.where("broadcast", func(ob observation) bool { return ob.name == "fan" })
	if len(fan) != 4 {
		t.Fatalf("%d fan broadcasts, want 4", len(fan))
	}
	for _, ob := range fan {
		if ob.sockets != 12 {
			t.Errorf("a broadcast went to a namespace of %d sockets, want 12", ob.sockets)
		}
	}
}

// TestSlowConsumer: a socket that stops reading is cut by its bounded
// send queue instead of blocking the broadcaster or growing memory.
func TestSlowConsumer(t *testing.T) {
	ts := startServer(t, serverOptions{})
	res := sioclient.Run(context.Background(), "scenarios/slow.mjs", sioclient.Options{URL: ts.URL})
	if res.Err != nil {
		// Tell a blocked broadcaster apart from other failures: if the
		// namespace's adapter cannot even list its sockets, the broadcast
		// that cut the stalled socket never returned.
		listed := make(chan struct{})
		go func() {
			ts.SIO.Of("/").Adapter().Sockets(nil)
			close(listed)
		}()
		select {
		case <-listed:
			t.Fatalf("%v", res.Err)
		case <-time.After(2 * time.Second):
			t.Fatalf("%v\nDEADLOCK: the namespace adapter is still locked after the script ended: the broadcast that cut the slow consumer never returned", res.Err)
		}
	}
	final, _ := res.Final()
	var r struct {
		StalledID, ReaderID     string
		CutAfterBytes, Received int
	}
	decode(t, final.Raw, &r)
	t.Logf("stalled socket cut after %d bytes of broadcasts; the reader got all %d events", r.CutAfterBytes, r.Received)
	var cut []observation
	ts.obs.waitFor(t, "the stalled socket's disconnect", func() bool {
		cut = ts.obs.where("disconnect", bySocket(r.StalledID))
		return len(cut) > 0
	})
	if cut[0].reason != "slow consumer" {
		t.Errorf("stalled socket closed with reason %q, want %q", cut[0].reason, "slow consumer")
	}
	ts.obs.waitFor(t, "the reader's own disconnect", func() bool { return len(ts.obs.where("disconnect", bySocket(r.ReaderID))) > 0 })
	if d := ts.obs.where("disconnect", bySocket(r.ReaderID)); d[0].reason != socketio.ReasonClientNamespaceDisconn {
		t.Errorf("reader disconnected with %q", d[0].reason)
	}
}

func TestMalformed(t *testing.T) {
	ts := startServer(t, serverOptions{})
	res, final := ts.run(t, "malformed.mjs")
	var r struct {
		Cases              []string
		Connected          int  // cases that sent their bad packet on a connected socket
		ProbeConnected     bool // the event-before-CONNECT probe joined "/" (packet ignored)
		EventBeforeConnect string
		Bystander          string
	}
	decode(t, final.Raw, &r)
	if len(r.Cases) == 0 || len(res.Kind("case")) != len(r.Cases) {
		t.Fatalf("cases %v, case lines %d", r.Cases, len(res.Kind("case")))
	}
	// Both are safe (the script checked no handler saw the event); the
	// reference server closes, so say which one this server does.
	t.Logf("an EVENT before CONNECT was %s (the reference server closes the connection)", r.EventBeforeConnect)
	clients := 2 // the bystander and the late client leave on their own
	if r.ProbeConnected {
		clients++
	}
	// Every raw connection that had a socket lost it to the server for its
	// bad packet; the bystander and the late client left on their own.
	ts.obs.waitFor(t, "one disconnect per connected malformed case plus the clients", func() bool {
		return len(ts.obs.all("disconnect")) == r.Connected+clients
	})
	for _, d := range ts.obs.all("disconnect") {
		if d.socket == r.Bystander && d.reason != socketio.ReasonClientNamespaceDisconn {
			t.Errorf("bystander disconnected with %q", d.reason)
		}
	}
	bad := ts.obs.where("disconnect", func(ob observation) bool { return ob.reason == socketio.ReasonParseError })
	if len(bad) != r.Connected {
		t.Errorf("%d sockets closed for a parse error, want %d (one per malformed case)", len(bad), r.Connected)
	}
	if n := len(ts.obs.all("connect")); n != r.Connected+clients {
		t.Errorf("%d sockets connected, want %d: a malformed CONNECT must not create one", n, r.Connected+clients)
	}
	for _, ob := range ts.obs.all("event") {
		if ob.name == "message" {
			t.Errorf("a handler received %q from socket %s", ob.name, ob.socket)
		}
	}
}

func TestLimits(t *testing.T) {
	const maxPayload, maxAttachments, maxAttachmentBytes = 100_000, 10, 50_000
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{
				maxPayload: maxPayload,
				limits:     parser.Limits{MaxAttachments: maxAttachments, MaxAttachmentBytes: maxAttachmentBytes},
			})
			_, final := ts.run(t, "limits.mjs", transport,
				strconv.Itoa(maxPayload), strconv.Itoa(maxAttachments), strconv.Itoa(maxAttachmentBytes))
			var r struct {
				Outcomes []struct {
					Name, Reason string
					Ms           int
				}
			}
			decode(t, final.Raw, &r)
			t.Logf("refusals as the client saw them: %+v", r.Outcomes)
			if len(r.Outcomes) != 3 {
				t.Fatalf("outcomes %+v", r.Outcomes)
			}
			// Nothing over a limit reached a handler; the packet just under did.
			var labels []string
			for _, ob := range ts.obs.all("event") {
				if ob.name != "message" {
					continue
				}
				var label string
				if err := ob.args.Unmarshal(0, &label); err != nil {
					t.Fatalf("message label: %v", err)
				}
				labels = append(labels, label)
			}
			if !slices.Equal(labels, []string{"fits"}) {
				t.Errorf("handlers received messages %v, want only [fits]", labels)
			}
			if n := len(ts.obs.all("connect")); n != 4 {
				t.Errorf("%d connections, want 4 (one, plus a reconnect per refused packet)", n)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	ms := func(d time.Duration) string { return strconv.Itoa(int(d.Milliseconds())) }
	t.Run("pings", func(t *testing.T) {
		// pingTimeout leaves the official client a second to answer even
		// on a loaded machine.
		interval, timeout := 300*time.Millisecond, time.Second
		ts := startServer(t, serverOptions{pingInterval: interval, pingTimeout: timeout})
		_, final := ts.run(t, "heartbeat.mjs", "pings", ms(interval), ms(timeout))
		var r struct{ UnansweredClosedAfterMs int }
		decode(t, final.Raw, &r)
		t.Logf("silent session closed after %d ms", r.UnansweredClosedAfterMs)
		// The two official clients left on their own; the silent one was cut.
		ts.obs.waitFor(t, "three disconnects", func() bool { return len(ts.obs.all("disconnect")) == 3 })
		reasons := map[string]int{}
		for _, d := range ts.obs.all("disconnect") {
			reasons[d.reason]++
		}
		if reasons[socketio.ReasonClientNamespaceDisconn] != 2 || reasons[socketio.ReasonPingTimeout] != 1 {
			t.Errorf("disconnect reasons %v, want 2 %q and 1 %q", reasons, socketio.ReasonClientNamespaceDisconn, socketio.ReasonPingTimeout)
		}
	})
	t.Run("no-connect", func(t *testing.T) {
		interval, timeout := 5*time.Second, time.Second
		ts := startServer(t, serverOptions{pingInterval: interval, pingTimeout: timeout, connectTimeout: 300 * time.Millisecond})
		_, final := ts.run(t, "heartbeat.mjs", "no-connect", ms(interval), ms(timeout))
		var r struct{ NoConnectClosedAfterMs int }
		decode(t, final.Raw, &r)
		t.Logf("session without CONNECT closed after %d ms", r.NoConnectClosedAfterMs)
		if n := len(ts.obs.all("connect")); n != 0 {
			t.Errorf("%d sockets connected, want none", n)
		}
	})
}

// TestManyClients connects 1,000 official clients (WALCAST_E2E_CLIENTS
// overrides) from one Node process and checks one broadcast reaches each
// exactly once.
func TestManyClients(t *testing.T) {
	n := 1000
	if v := os.Getenv("WALCAST_E2E_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("WALCAST_E2E_CLIENTS=%q is not a positive number", v)
		}
	}
	ts := startServer(t, serverOptions{})
	res, final := ts.run(t, "many.mjs", strconv.Itoa(n))
	var r struct {
		Clients, Received, ServerAck int
		ConnectMs, DeliverMs         int
	}
	decode(t, final.Raw, &r)
	if r.Received != n || r.ServerAck != n {
		t.Fatalf("received by %d clients, server had %d sockets; want %d", r.Received, r.ServerAck, n)
	}
	big := ts.obs.where("broadcast", func(ob observation) bool { return ob.name == "big" })
	if len(big) != 1 || big[0].sockets != n {
		t.Fatalf("server broadcasts %+v, want one to %d sockets", big, n)
	}
	t.Logf("%d clients: connected in %d ms, broadcast delivered to all in %d ms (not a benchmark: see bench/)", n, r.ConnectMs, r.DeliverMs)
	_ = res
}
