package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast/auth"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }

// emitAck sends event with args on c as ack id and returns the ack's
// arguments (the JSON after "3<id>").
func emitAck(t *testing.T, c *siotest.Conn, id int, event string, args ...any) string {
	t.Helper()
	b, _ := json.Marshal(append([]any{event}, args...))
	if err := c.SendText(fmt.Sprintf("2%d%s", id, b)); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := c.ReadText(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", event, err)
		}
		if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("3%d", id)); ok {
			return rest
		}
	}
}

func tokenFor(t testing.TB, id any, role string, member any, ttl time.Duration) string {
	return token(t, jwt.MapClaims{"id": id, "role": role, "memberId": member, "exp": time.Now().Add(ttl).Unix()})
}

func authOf(tok string) string { return `{"token":"` + tok + `"}` }

func connected(reply string) bool { return strings.HasPrefix(reply, `0{"sid":`) }

// usersDB is a database with the example schema and users 1 (admin) and 2
// (viewer of member m-1); dir is loaded from it.
func usersDB(t *testing.T) (string, *accounts.Directory) {
	t.Helper()
	dsn := pg.NewDatabase(t)
	pgtest.Exec(t, dsn, sql.GraceGiverSchema,
		`INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'B'), ('m-2', 'C', 'D')`,
		`INSERT INTO users (id, username, password_hash, role, member_id) VALUES (1, 'a', 'x', 'admin', NULL), (2, 'v', 'x', 'viewer', 'm-1')`)
	ctx := context.Background()
	dir := accounts.New(accounts.Columns{Table: "public.users", ID: "id", Role: "role", MemberID: "member_id"})
	if err := dir.Load(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	return dsn, dir
}

func ptr[T any](v T) *T { return &v }

// TestHandshakeChecksAccounts: a token is honoured only while its user's
// row exists and says what the token says; a row that changes closes the
// connection of the sockets it no longer matches (no DISCONNECT packet, so
// the client reconnects and meets the check), nobody else's.
func TestHandshakeChecksAccounts(t *testing.T) {
	_, dir := usersDB(t)
	_, addr := startWith(t, Config{Accounts: dir})
	for _, tc := range []struct {
		name string
		tok  string
		ok   bool
	}{
		{"admin", tokenFor(t, 1, "admin", nil, time.Hour), true},
		{"admin, id as a string", tokenFor(t, "1", "admin", nil, time.Hour), true},
		{"viewer with its member", tokenFor(t, 2, "viewer", "m-1", time.Hour), true},
		{"no such user", tokenFor(t, 3, "admin", nil, time.Hour), false},
		{"a role the row does not have", tokenFor(t, 2, "admin", "m-1", time.Hour), false},
		{"another member", tokenFor(t, 2, "viewer", "m-2", time.Hour), false},
		{"no member", tokenFor(t, 2, "viewer", nil, time.Hour), false},
	} {
		_, got := dial(t, addr, authOf(tc.tok))
		if connected(got) != tc.ok || (!tc.ok && !strings.Contains(got, auth.MsgInvalidToken)) {
			t.Errorf("%s: connect answered %q, want connected %v", tc.name, got, tc.ok)
		}
	}

	viewer, _ := dial(t, addr, authOf(tokenFor(t, 2, "viewer", "m-1", time.Hour)))
	admin, _ := dial(t, addr, authOf(tokenFor(t, 1, "admin", nil, time.Hour)))
	// The viewer's member changes: its socket is cut, by closing.
	dir.Apply([]accounts.Change{{ID: "2", Role: ptr("viewer"), MemberID: ptr("m-2")}})
	if msg, err := viewer.ReadText(5 * time.Second); err != siotest.ErrClosed {
		t.Fatalf("viewer after its member changed: read %q, %v; want the connection closed, no DISCONNECT", msg, err)
	}
	if _, got := dial(t, addr, authOf(tokenFor(t, 2, "viewer", "m-1", time.Hour))); connected(got) {
		t.Error("the old token connects again after the member change")
	}
	if _, got := dial(t, addr, authOf(tokenFor(t, 2, "viewer", "m-2", time.Hour))); !connected(got) {
		t.Errorf("a token with the new member id refused: %q", got)
	}
	// The admin was not touched.
	if got := emitAck(t, admin, 1, EventJoinRoom, "still-here"); got != `[{"success":true}]` {
		t.Errorf("admin after someone else's change: %s", got)
	}
	dir.Apply([]accounts.Change{{ID: "1", Deleted: true}})
	if _, err := admin.ReadText(5 * time.Second); err != siotest.ErrClosed {
		t.Fatalf("admin after its deletion: %v, want the connection closed", err)
	}
}

// TestTokenExpiryCloses: at expiry the connection is closed (no
// DISCONNECT): the client reconnects and its expired token is refused.
func TestTokenExpiryCloses(t *testing.T) {
	_, addr := startWith(t, Config{ExpiryWarning: time.Second})
	c, got := dial(t, addr, authOf(token(t, jwt.MapClaims{"id": 1, "exp": time.Now().Add(1500 * time.Millisecond).Unix()})))
	if !connected(got) {
		t.Fatalf("connect: %q", got)
	}
	var msgs []string
	for {
		msg, err := c.ReadText(5 * time.Second)
		if err == siotest.ErrClosed {
			break
		}
		if err != nil {
			t.Fatalf("after %q: %v, want the connection closed at expiry", msgs, err)
		}
		msgs = append(msgs, msg)
	}
	for _, m := range msgs {
		if strings.HasPrefix(m, "1") {
			t.Errorf("got a DISCONNECT (%q) before the close: the client would stay offline", m)
		}
	}
}

// TestLockRateLimit: lock calls past the socket's bucket are refused with
// "rate limited" and reach no store; what passes is bounded by the burst
// plus the rate.
func TestLockRateLimit(t *testing.T) {
	_, addr := startWith(t, Config{LockRate: 2, LockBurst: 3})
	c, _ := dial(t, addr, authOf(tokenFor(t, 1, "admin", nil, time.Hour)))
	start := time.Now()
	ok, limited := 0, 0
	for i := range 40 {
		event := "lock:acquire"
		if i%2 == 1 {
			event = "lock:release"
		}
		got := emitAck(t, c, i, event, map[string]any{"resourceType": "member", "resourceId": "m-1"})
		var ack []struct {
			Success bool
			Error   string
		}
		switch err := json.Unmarshal([]byte(got), &ack); {
		case err != nil || len(ack) != 1:
			t.Fatalf("%s acked %s", event, got)
		case ack[0].Success:
			ok++
		case got == `[{"error":"rate limited","success":false}]`:
			limited++
		default:
			t.Fatalf("%s acked %s", event, got)
		}
	}
	allowed := 3 + int(time.Since(start).Seconds()*2) + 1
	if ok > allowed || ok < 3 || ok+limited != 40 {
		t.Errorf("%d calls passed and %d were limited in %s, want at most %d to pass", ok, limited, time.Since(start), allowed)
	}
	if got := emitAck(t, c, 99, "lock:check", map[string]any{"resourceType": "member", "resourceId": "m-1"}); got != `[{"error":"rate limited","success":false}]` {
		t.Errorf("lock:check past the bucket acked %s", got)
	}
	time.Sleep(600 * time.Millisecond) // one token back
	if got := emitAck(t, c, 100, "lock:check", map[string]any{"resourceType": "member", "resourceId": "m-1"}); strings.Contains(got, "rate limited") {
		t.Errorf("lock:check after the bucket refilled acked %s", got)
	}
}

// TestRoomLimits: a socket joins at most MaxRooms rooms itself; rooms in
// the form of a socket id are refused whether or not such a socket is
// here; leaving frees a place.
func TestRoomLimits(t *testing.T) {
	hub, addr := startWith(t, Config{MaxRooms: 5})
	c, got := dial(t, addr, authOf(tokenFor(t, 1, "admin", nil, time.Hour)))
	var sid struct{ SID string }
	_ = json.Unmarshal([]byte(got[1:]), &sid)
	for i := range 5 {
		if got := emitAck(t, c, i, EventJoinRoom, fmt.Sprint("room-", i)); got != `[{"success":true}]` {
			t.Fatalf("join %d: %s", i, got)
		}
	}
	if got := emitAck(t, c, 10, EventJoinRoom, "room-0"); got != `[{"success":true}]` {
		t.Errorf("joining a room it is in: %s", got)
	}
	if got := emitAck(t, c, 11, EventJoinRoom, "room-5"); got != `[{"error":"too many rooms","success":false}]` {
		t.Errorf("sixth room: %s", got)
	}
	if got := emitAck(t, c, 12, EventLeaveRoom, "room-0"); got != `[{"success":true}]` {
		t.Errorf("leave: %s", got)
	}
	if got := emitAck(t, c, 13, EventJoinRoom, "room-5"); got != `[{"success":true}]` {
		t.Errorf("join after a leave: %s", got)
	}
	for i, room := range []string{"AbCdEfGhIjKlMnOpQr_-", "00000000000000000000"} {
		if got := emitAck(t, c, 20+i, EventJoinRoom, room); got != `[{"error":"reserved room","success":false}]` {
			t.Errorf("join %q (a socket id's form, no such socket here): %s", room, got)
		}
	}
	if got := emitAck(t, c, 30, EventJoinRoom, "AbCdEfGhIjKlMnOpQr_-x"); got == `[{"error":"reserved room","success":false}]` {
		t.Errorf("a 21-character room taken for a socket id: %s", got)
	}
	if rooms := hub.Namespace("/").Socket(sid.SID).Rooms(); len(rooms) != 1+2+5 {
		t.Errorf("rooms %v, want its own, the token's two and five", rooms)
	}
}

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	b.init(2, 3)
	at := time.Unix(1000, 0)
	for i := range 3 {
		if !b.take(at) {
			t.Fatalf("burst call %d refused", i)
		}
	}
	if b.take(at) {
		t.Fatal("a fourth call at once passed")
	}
	if b.take(at.Add(400 * time.Millisecond)) {
		t.Fatal("passed after 0.4 s at 2/s (0.8 token)")
	}
	if !b.take(at.Add(500 * time.Millisecond)) {
		t.Fatal("refused after 0.5 s at 2/s (a whole token)")
	}
	if b.take(at.Add(time.Hour)); b.tokens > 3 {
		t.Fatalf("%v tokens after an hour, want at most the burst", b.tokens)
	}
}
