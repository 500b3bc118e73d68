package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/auth"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/route"
)

const secret = "gateway-test-secret"

func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start serves a hub with the gateway attached and running; standby is
// what Config.Standby reports.
func start(t *testing.T, standby *atomic.Bool, obs *counts) (*broadcast.Hub, string) {
	t.Helper()
	return startWith(t, Config{Standby: standby.Load, Observer: obs, OnRefusal: obs.Refused})
}

// startWith serves a hub with the gateway attached with cfg (its verifier,
// lock store, reserved rooms and logger filled in when unset).
func startWith(t testing.TB, cfg Config) (*broadcast.Hub, string) {
	t.Helper()
	verifier, err := auth.NewVerifier(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	hub := broadcast.New(broadcast.Config{Logger: log})
	cfg.Verifier, cfg.Logger = verifier, log
	if cfg.LockStore == nil {
		cfg.LockStore = locks.NewMemoryStore(time.Minute)
	}
	if !cfg.Reserved.Contains(route.UserRoomPrefix) {
		cfg.Reserved = route.GraceGiver().ReservedRooms()
	}
	gw, err := Attach(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: hub.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		hub.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return hub, ln.Addr().String()
}

func dial(t *testing.T, addr string, auth string) (*siotest.Conn, string) {
	t.Helper()
	c, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got, err := c.Connect("/", auth)
	if err != nil {
		t.Fatal(err)
	}
	return c, got
}

func TestHandshakeRefusals(t *testing.T) {
	var standby atomic.Bool
	obs := newCounts()
	_, addr := start(t, &standby, obs)
	expired := token(t, jwt.MapClaims{"id": 1, "role": "admin", "exp": time.Now().Add(-time.Hour).Unix()})
	cases := []struct{ name, auth, want string }{
		{"no token", `{}`, auth.MsgNoToken},
		{"empty token", `{"token":""}`, auth.MsgNoToken},
		{"garbage", `{"token":"x.y.z"}`, auth.MsgInvalidToken},
		{"expired", `{"token":"` + expired + `"}`, auth.MsgInvalidToken},
	}
	for _, tc := range cases {
		if _, got := dial(t, addr, tc.auth); !strings.Contains(got, tc.want) {
			t.Errorf("%s: connect answered %q, want %q", tc.name, got, tc.want)
		}
	}
	standby.Store(true)
	good := token(t, jwt.MapClaims{"id": 1, "role": "admin", "exp": time.Now().Add(time.Hour).Unix()})
	if _, got := dial(t, addr, `{"token":"`+good+`"}`); !strings.Contains(got, StandbyMessage) {
		t.Errorf("standby: connect answered %q", got)
	}
	want := map[string]int{"auth " + auth.ReasonNoToken: 2, "auth " + auth.ReasonMalformed: 1, "auth " + auth.ReasonExpired: 1,
		"refused standby": 1}
	if got := obs.get(); !maps.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}

// counts records what a gateway tells its Observer and OnRefusal.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func newCounts() *counts { return &counts{m: map[string]int{}} }

func (c *counts) add(k string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] += n
}

func (c *counts) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

func (c *counts) AuthFailed(reason string)         { c.add("auth "+reason, 1) }
func (c *counts) Refused(kind string)              { c.add("refused "+kind, 1) }
func (c *counts) EventEmitted(event string, n int) { c.add("event "+event, n) }

// TestTokenRoomsAndJoinRules: a socket is in its token's rooms; it may
// join and leave other rooms, but not reserved ones, overlong ones or
// another socket's own room.
func TestTokenRoomsAndJoinRules(t *testing.T) {
	var standby atomic.Bool
	obs := newCounts()
	hub, addr := start(t, &standby, obs)
	tok := token(t, jwt.MapClaims{"id": 7, "role": "viewer", "memberId": "m-7", "exp": time.Now().Add(time.Hour).Unix()})
	viewer, got := dial(t, addr, `{"token":"`+tok+`"}`)
	if !strings.HasPrefix(got, `0{"sid":`) {
		t.Fatalf("connect: %q", got)
	}
	var sid struct{ SID string }
	_ = json.Unmarshal([]byte(got[1:]), &sid)
	_, other := dial(t, addr, `{"token":"`+tok+`"}`)
	var otherSID struct{ SID string }
	_ = json.Unmarshal([]byte(other[1:]), &otherSID)

	for _, room := range []string{"user:7", "role:viewer", "member:m-7"} {
		if n := len(hub.Namespace("/").To(room).Sockets()); n != 2 {
			t.Errorf("%d sockets in %s, want both", n, room)
		}
	}
	ack := func(id int, event, room string) string {
		t.Helper()
		arg, _ := json.Marshal(room)
		if err := viewer.SendText(fmt.Sprintf(`2%d["%s",%s]`, id, event, arg)); err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := viewer.ReadText(5 * time.Second)
			if err != nil {
				t.Fatalf("%s %q: %v", event, room, err)
			}
			if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("3%d", id)); ok {
				return rest
			}
		}
	}
	cases := []struct{ event, room, want string }{
		{EventJoinRoom, "donations-page", `[{"success":true}]`},
		{EventLeaveRoom, "donations-page", `[{"success":true}]`},
		{EventJoinRoom, "role:admin", `[{"error":"reserved room","success":false}]`},
		{EventLeaveRoom, "user:7", `[{"error":"reserved room","success":false}]`},
		{EventJoinRoom, "member:m-1", `[{"error":"reserved room","success":false}]`},
		{EventJoinRoom, otherSID.SID, `[{"error":"reserved room","success":false}]`},
		{EventJoinRoom, strings.Repeat("r", MaxRoomName+1), `[{"error":"invalid room","success":false}]`},
		{EventJoinRoom, "", `[{"error":"invalid room","success":false}]`},
	}
	for i, tc := range cases {
		if got := ack(i, tc.event, tc.room); got != tc.want {
			t.Errorf("%s %.20q: ack %s, want %s", tc.event, tc.room, got, tc.want)
		}
	}
	if n := len(hub.Namespace("/").To("role:admin").Sockets()); n != 0 {
		t.Errorf("%d sockets in role:admin after a refused join", n)
	}
	if rooms := hub.Namespace("/").Socket(sid.SID).Rooms(); len(rooms) != 4 {
		t.Errorf("rooms after leaving: %v, want its own and the token's three", rooms)
	}
	want := map[string]int{"refused reserved_room": 4, "refused invalid_room": 2}
	if got := obs.get(); !maps.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
	// A lock taken is announced to everyone, and counted as lock:update.
	if err := viewer.SendText(`299["lock:acquire",{"resourceType":"member","resourceId":"m-7"}]`); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := viewer.ReadText(5 * time.Second)
		if err != nil {
			t.Fatalf("lock:update never came: %v", err)
		}
		if strings.HasPrefix(msg, `2["lock:update:member:m-7"`) {
			break
		}
	}
	// Counted once Emit returned, which may be just after the packet left.
	deadline := time.Now().Add(5 * time.Second)
	for obs.get()["event "+EventLockUpdate] == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := obs.get()["event "+EventLockUpdate]; got != 1 {
		t.Errorf("%d lock announcements counted, want 1", got)
	}
}

func TestRecoveryRules(t *testing.T) {
	if Recovery(0, route.ReservedRooms{}) != nil {
		t.Error("recovery on with a zero window")
	}
	rec := Recovery(time.Minute, route.GraceGiver().ReservedRooms())
	if rec.MaxDisconnection != time.Minute {
		t.Errorf("window %v", rec.MaxDisconnection)
	}
	for room, keep := range map[string]bool{"user:7": false, "role:admin": false, "member:m": false, "donations-page": true} {
		if rec.KeepRoom(room) != keep {
			t.Errorf("KeepRoom(%q) = %v, want %v", room, !keep, keep)
		}
	}
}
