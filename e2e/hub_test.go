package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/logbuf"
)

// TestHubEmit drives the hub API the rest of walcast uses (broadcast.Hub)
// with official clients: audience by rooms joined at connect, payloads that
// arrive byte for byte, and bad emits that send nothing.
func TestHubEmit(t *testing.T) {
	logs := &logbuf.Buffer{}
	hub := broadcast.New(broadcast.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	root := hub.Namespace("/")
	type user struct {
		User int    `json:"user"`
		Role string `json:"role"`
	}
	root.Use(func(s *socketio.Socket) error {
		var who user
		if err := json.Unmarshal(s.Handshake().Auth, &who); err != nil || who.User == 0 {
			return errors.New("Authentication error: No token provided")
		}
		s.SetData(who)
		return nil
	})
	root.OnConnection(func(s *socketio.Socket) {
		who, ok := s.Data().(user)
		if !ok {
			s.Disconnect(true)
			return
		}
		s.Join(fmt.Sprintf("user:%d", who.User), "role:"+who.Role)
	})
	hs := httptest.NewServer(hub.Handler())
	t.Cleanup(func() {
		hub.Close()
		hs.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.Tail(20000))
		}
	})

	// Default transports: polling first, then the upgrade, as browsers do.
	c := sioclient.Start(t, hs.URL, sioclient.ClientConfig{
		Count: 3,
		Auths: []any{
			map[string]any{"user": 1, "role": "admin"},
			map[string]any{"user": 2, "role": "staff"},
			map[string]any{"user": 3, "role": "admin"},
		},
	})
	if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "connect" }); n != 3 {
		t.Fatalf("%d clients connected, want 3", n)
	}

	ctx := context.Background()
	member := `{"type":"UPDATE","data":{"id":5,"amount":"100.00","at":"2024-03-01T00:00:00.000Z","tags":["a"],"note":null}}`
	emits := []broadcast.Event{
		{Rooms: []string{"role:admin"}, Name: "member:update", Payload: json.RawMessage(member)},
		{Rooms: []string{"user:2"}, Name: "donation:update", Payload: json.RawMessage(`{"type":"CREATE","data":{"id":1}}`)},
		{Except: []string{"role:admin"}, Name: "settings:update", Payload: json.RawMessage(`{"name":"Church"}`)},
		{Rooms: []string{"user:1", "role:admin"}, Name: "lock:update:member:5", Payload: json.RawMessage(`{"isLocked":true}`)},
		{Name: "no-payload"},
	}
	for _, ev := range emits {
		if err := hub.Emit(ctx, ev); err != nil {
			t.Fatalf("emit %s: %v", ev.Name, err)
		}
	}
	// Refused emits send nothing; the fence after them proves it.
	bad := []broadcast.Event{
		{Name: "broken", Payload: json.RawMessage(`{"a":`)},
		{Name: "", Payload: json.RawMessage(`1`)},
		{Namespace: "/missing", Name: "x"},
	}
	for _, ev := range bad {
		if err := hub.Emit(ctx, ev); err == nil {
			t.Errorf("emit %+v succeeded", ev)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := hub.Emit(cancelled, broadcast.Event{Name: "after-cancel"}); err == nil {
		t.Error("emit with a cancelled context succeeded")
	}
	if err := hub.Emit(ctx, broadcast.Event{Name: "fence"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Client == i && l.Event == "fence" })
	}

	want := map[int][]string{
		0: {"member:update", "lock:update:member:5", "no-payload", "fence"},
		1: {"donation:update", "settings:update", "no-payload", "fence"},
		2: {"member:update", "lock:update:member:5", "no-payload", "fence"},
	}
	got := map[int][]string{}
	for _, l := range c.Lines() {
		if l.Kind != "event" || l.Event == "auth" {
			continue
		}
		got[l.Client] = append(got[l.Client], l.Event)
		if l.Event == "member:update" && (len(l.Args) != 1 || string(l.Args[0]) != member) {
			t.Errorf("client %d got member:update %s, want exactly %s", l.Client, l.Raw, member)
		}
		if l.Event == "no-payload" && len(l.Args) != 0 {
			t.Errorf("no-payload arrived with args %s", l.Raw)
		}
	}
	for i, w := range want {
		if !slices.Equal(got[i], w) {
			t.Errorf("client %d received %v, want %v (in order, each once)", i, got[i], w)
		}
	}
}
