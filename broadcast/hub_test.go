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
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

func TestHubEmit(t *testing.T) {
	hub := broadcast.New(broadcast.Config{})
	hub.Namespace("/").OnConnection(func(s *socketio.Socket) {
		var auth struct{ Role string }
		if err := json.Unmarshal(s.Handshake().Auth, &auth); err == nil && auth.Role != "" {
			s.Join("role:" + auth.Role)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: hub.Handler()}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	defer hub.Close()
	addr := ln.Addr().String()

	dialAs := func(role string) *siotest.Conn {
		c, err := siotest.Dial(addr, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Connect("/", `{"role":"`+role+`"}`)
		if err != nil || !strings.HasPrefix(got, `0{"sid":`) {
			t.Fatalf("connect: %q %v", got, err)
		}
		return c
	}
	admin, viewer := dialAs("admin"), dialAs("viewer")
	defer admin.Close()
	defer viewer.Close()
	ctx := context.Background()

	// the payload is passed through byte for byte, not re-encoded
	payload := json.RawMessage(`{"type":"UPDATE", "data":{"amount":"100.00"}}`)
	if err := hub.Emit(ctx, broadcast.Event{Rooms: []string{"role:admin"}, Name: "donation:update", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Emit(ctx, broadcast.Event{Except: []string{"role:admin"}, Name: "settings:update"}); err != nil {
		t.Fatal(err)
	}
	errorCases := []struct {
		name string
		ctx  context.Context
		ev   broadcast.Event
	}{
		{"invalid JSON payload", ctx, broadcast.Event{Name: "x", Payload: json.RawMessage(`{"a":`)}},
		{"unknown namespace", ctx, broadcast.Event{Namespace: "/nope", Name: "x"}},
		{"empty name", ctx, broadcast.Event{}},
		{"cancelled context", cancelled(), broadcast.Event{Name: "x"}},
	}
	for _, tc := range errorCases {
		if err := hub.Emit(tc.ctx, tc.ev); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := hub.Emit(ctx, broadcast.Event{Name: "last"}); err != nil {
		t.Fatal(err)
	}
	expect := map[*siotest.Conn][]string{
		admin:  {`2["donation:update",{"type":"UPDATE", "data":{"amount":"100.00"}}]`, `2["last"]`},
		viewer: {`2["settings:update"]`, `2["last"]`},
	}
	for c, want := range expect {
		for _, w := range want {
			got, err := c.ReadText(5 * time.Second)
			if err != nil || got != w {
				t.Fatalf("got %q (%v), want %q", got, err, w)
			}
		}
	}

	hub.Close()
	for _, c := range []*siotest.Conn{admin, viewer} {
		if _, _, err := c.Read(5 * time.Second); !errors.Is(err, siotest.ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
