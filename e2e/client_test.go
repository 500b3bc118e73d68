package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/e2e/sioclient"
)

// TestGenericClient drives e2e/client.mjs (the helper other packages use)
// through every command, so a regression in the helper shows up here and
// not as a confusing failure elsewhere.
func TestGenericClient(t *testing.T) {
	ts := startServer(t, serverOptions{requireToken: true})
	c := sioclient.Start(t, ts.URL, sioclient.ClientConfig{
		Count:      3,
		Transports: []string{"websocket"},
		Auths:      []any{map[string]string{"token": "a"}, map[string]string{"token": "b"}, map[string]string{"token": "bad"}},
	})
	is := func(kind string, client int) func(sioclient.Line) bool {
		return func(l sioclient.Line) bool { return l.Kind == kind && l.Client == client }
	}

	refused := c.WaitFor(10*time.Second, is("connect_error", 2))
	if refused.Message != "Authentication error: Invalid token" || string(refused.Data) != `{"code":401,"hint":"token rejected"}` {
		t.Errorf("client 2 refused with %q %s", refused.Message, refused.Data)
	}
	conn := c.WaitFor(10*time.Second, is("connect", 1))
	if ts.SIO.Of("/").Socket(conn.ID) == nil {
		t.Fatalf("server has no socket %s", conn.ID)
	}
	authEv := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Client == 1 && l.Event == "auth" })
	var auth map[string]string
	if err := authEv.Arg(0, &auth); err != nil || auth["token"] != "b" {
		t.Errorf("client 1 got auth event %s (%v)", authEv.Raw, err)
	}

	// Client -> server with ack, binary included.
	ack := c.EmitWithAck(0, 10*time.Second, "message-with-ack", "x", sioclient.Binary{1, 2, 3})
	var s string
	var b sioclient.Binary
	if ack.Error != "" || len(ack.Args) != 2 || ack.Arg(0, &s) != nil || ack.Arg(1, &b) != nil || s != "x" || !slices.Equal(b, []byte{1, 2, 3}) {
		t.Fatalf("ack line %s", ack.Raw)
	}

	// Server -> client with ack, answered from Go.
	ref := c.EmitAsync(1, 10*time.Second, "ask", map[string]any{"event": "question", "args": []any{1}, "timeoutMs": 3000})
	q := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Event == "question" })
	if q.Client != 1 || q.AckRef == 0 {
		t.Fatalf("question line %s", q.Raw)
	}
	c.Answer(q, "yes", sioclient.Binary{9})
	answer := c.WaitAck(ref, 10*time.Second)
	var got struct {
		Answer []json.RawMessage `json:"answer"`
	}
	if err := answer.Arg(0, &got); err != nil || len(got.Answer) != 2 || string(got.Answer[0]) != `"yes"` {
		t.Fatalf("ask answered %s (%v)", answer.Raw, err)
	}

	// Server-side disconnect reaches the client with the client's reason.
	ts.SIO.Of("/").Socket(conn.ID).Disconnect(false)
	d := c.WaitFor(10*time.Second, is("disconnect", 1))
	if d.Reason != "io server disconnect" {
		t.Errorf("disconnect reason %q", d.Reason)
	}
	if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "connect" }); n != 2 {
		t.Errorf("%d connect lines, want 2", n)
	}
}

// TestServerShutdown: closing the server must look like a lost transport to
// browsers, so they reconnect to the next instance (a rolling deploy), and
// not like a Socket.IO disconnect, after which the official client gives up.
func TestServerShutdown(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			c := sioclient.Start(t, ts.URL, sioclient.ClientConfig{Count: 2, Transports: []string{transport}, Reconnection: true})
			ts.SIO.Close()
			for i := range 2 {
				d := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == i })
				if d.Reason != "transport close" && d.Reason != "transport error" {
					t.Errorf("client %d saw %q on server shutdown, want a transport-level reason so it reconnects", i, d.Reason)
				}
			}
			ts.obs.waitFor(t, "two server-side disconnects", func() bool { return len(ts.obs.all("disconnect")) == 2 })
			for _, d := range ts.obs.all("disconnect") {
				if d.reason != socketio.ReasonServerShuttingDown {
					t.Errorf("server-side disconnect reason %q, want %q", d.reason, socketio.ReasonServerShuttingDown)
				}
			}
		})
	}
}
