package adminui_test

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/walcast/walcast/broadcast/adminui"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/e2e/sioclient"
)

const (
	adminUser     = "operator"
	adminPassword = "changeit"
	wait          = 15 * time.Second
)

func hashOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// startServer serves a socketio.Server whose "/" sockets join the rooms
// their auth names (and "join"/"leave" on request), with the Admin UI
// attached; it returns the server's URL.
func startServer(t testing.TB, cfg adminui.Config, origins ...string) (*socketio.Server, string) {
	t.Helper()
	srv := socketio.NewServer(socketio.Config{EngineIO: engineio.Config{AllowedOrigins: origins, AllowCredentials: len(origins) > 0}})
	srv.Of("/").OnConnection(func(s *socketio.Socket) {
		var auth struct{ Rooms []string }
		_ = json.Unmarshal(s.Handshake().Auth, &auth)
		s.Join(auth.Rooms...)
		s.On("join", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
			var room string
			_ = args.Unmarshal(0, &room)
			s.Join(room)
			_ = ack()
		})
		s.On("leave", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
			var room string
			_ = args.Unmarshal(0, &room)
			s.Leave(room)
			_ = ack()
		})
	})
	if cfg.Username == "" {
		cfg.Username, cfg.PasswordHash = adminUser, hashOf(t, adminPassword)
	}
	ui, err := adminui.Attach(srv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ui.Close()
		srv.Close()
		_ = hs.Close()
	})
	return srv, "http://" + ln.Addr().String()
}

func TestAttachRefuses(t *testing.T) {
	srv := socketio.NewServer(socketio.Config{})
	defer srv.Close()
	for _, tc := range []struct {
		name string
		cfg  adminui.Config
		want string
	}{
		{"no credentials", adminui.Config{}, "username and a bcrypt password hash are required"},
		{"no hash", adminui.Config{Username: "a"}, "username and a bcrypt password hash are required"},
		{"plain password", adminui.Config{Username: "a", PasswordHash: "changeit"}, "not a bcrypt hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adminui.Attach(srv, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Attach: %v, want an error saying %q", err, tc.want)
			}
			if srv.Lookup("/admin") != nil {
				t.Errorf("a refused config created the /admin namespace")
			}
		})
	}
}

// uiSocket is the part of a SerializedSocket the tests read.
type uiSocket struct {
	ID        string   `json:"id"`
	ClientID  string   `json:"clientId"`
	Transport string   `json:"transport"`
	Nsp       string   `json:"nsp"`
	Rooms     []string `json:"rooms"`
	Data      map[string]any
	Handshake struct {
		Address string            `json:"address"`
		Headers map[string]string `json:"headers"`
		Query   map[string]string `json:"query"`
		Issued  int64             `json:"issued"`
		URL     string            `json:"url"`
		XDomain bool              `json:"xdomain"`
		Auth    any               `json:"auth"`
	} `json:"handshake"`
}

func event(name string) func(sioclient.Line) bool {
	return func(l sioclient.Line) bool { return l.Kind == "event" && l.Event == name }
}

func arg[T any](t *testing.T, l sioclient.Line, i int) T {
	t.Helper()
	var v T
	if err := l.Arg(i, &v); err != nil {
		t.Fatalf("%s: %v (%s)", l.Event, err, l.Raw)
	}
	return v
}

// TestProtocol drives the Admin UI namespace with the official
// socket.io-client as the UI does: login, config, all_sockets (handshakes
// without credentials), server_stats, then sockets connecting, joining,
// leaving and disconnecting as they happen; a read-only UI cannot
// disconnect anyone, a wrong password is refused with the text the UI
// recognises, and the session id logs in again without the password.
func TestProtocol(t *testing.T) {
	var traffic atomic.Uint64
	_, url := startServer(t, adminui.Config{ServerID: "walcast-test", StatsInterval: 200 * time.Millisecond, Traffic: func() adminui.Traffic {
		n := traffic.Add(1)
		return adminui.Traffic{PacketsIn: n, PacketsOut: 10 * n, BytesIn: 100 * n, BytesOut: 1000 * n}
	}})

	// Two browsers carrying every kind of credential a handshake can.
	app := sioclient.Start(t, url, sioclient.ClientConfig{
		Count:        2,
		Auth:         map[string]any{"token": "secret-jwt", "rooms": []string{"r1"}},
		Query:        map[string]string{"token": "secret-query", "lang": "en"},
		ExtraHeaders: map[string]string{"Authorization": "Bearer secret-header", "Cookie": "sid=secret-cookie", "X-Api-Key": "secret-key", "X-Trace": "visible"},
	})
	var appIDs []string
	for i := range 2 {
		appIDs = append(appIDs, app.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }).ID)
	}

	bad := sioclient.Start(t, url, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"username": adminUser, "password": "wrong"}})
	if l := bad.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect_error" }); l.Message != "invalid credentials" {
		t.Errorf("wrong password: connect_error %q, want \"invalid credentials\" (the text the UI recognises)", l.Message)
	}

	admin := sioclient.Start(t, url, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"username": adminUser, "password": adminPassword}})
	session := arg[string](t, admin.WaitFor(wait, event("session")), 0)
	if len(session) < 16 {
		t.Errorf("session id %q: want a long random id", session)
	}
	cfg := arg[struct {
		SupportedFeatures []string `json:"supportedFeatures"`
	}](t, admin.WaitFor(wait, event("config")), 0)
	if want := []string{"AGGREGATED_EVENTS", "ALL_EVENTS"}; !slices.Equal(cfg.SupportedFeatures, want) {
		t.Errorf("read-only features %v, want %v (no JOIN, LEAVE, DISCONNECT, EMIT)", cfg.SupportedFeatures, want)
	}

	all := arg[[]uiSocket](t, admin.WaitFor(wait, event("all_sockets")), 0)
	var listed []string
	for _, s := range all {
		if s.Nsp != "/" {
			continue
		}
		listed = append(listed, s.ID)
		if !slices.Contains(s.Rooms, "r1") || !slices.Contains(s.Rooms, s.ID) {
			t.Errorf("socket %s rooms %v, want its own room and r1", s.ID, s.Rooms)
		}
		if s.Transport != "websocket" && s.Transport != "polling" {
			t.Errorf("socket %s transport %q", s.ID, s.Transport)
		}
		if len(s.ClientID) != 12 {
			t.Errorf("socket %s clientId %q: want a 12-character digest", s.ID, s.ClientID)
		}
		if s.Handshake.Address != "127.0.0.1" || s.Handshake.Issued == 0 || !strings.HasPrefix(s.Handshake.URL, "/socket.io/") {
			t.Errorf("socket %s handshake %+v", s.ID, s.Handshake)
		}
		if s.Handshake.Headers["x-trace"] != "visible" || s.Handshake.Query["lang"] != "en" {
			t.Errorf("socket %s: ordinary header and query missing: %+v", s.ID, s.Handshake)
		}
		if len(s.Data) != 0 {
			t.Errorf("socket %s data %v: want none by default", s.ID, s.Data)
		}
	}
	slices.Sort(listed)
	slices.Sort(appIDs)
	if !slices.Equal(listed, appIDs) {
		t.Errorf("all_sockets lists %v in /, want the app's sockets %v", listed, appIDs)
	}
	raw := string(admin.WaitFor(wait, event("all_sockets")).Raw)
	for _, secret := range []string{"secret-jwt", "secret-query", "secret-header", "secret-cookie", "secret-key"} {
		if strings.Contains(raw, secret) {
			t.Errorf("all_sockets shows %q: %s", secret, raw)
		}
	}

	type stats struct {
		ServerID     string `json:"serverId"`
		PID          int    `json:"pid"`
		ClientsCount int    `json:"clientsCount"`
		Namespaces   []struct {
			Name         string `json:"name"`
			SocketsCount int    `json:"socketsCount"`
		} `json:"namespaces"`
	}
	st := arg[stats](t, admin.WaitFor(wait, event("server_stats")), 0)
	if st.ServerID != "walcast-test" || st.PID == 0 || st.ClientsCount != 3 {
		t.Errorf("server_stats %+v: want serverId walcast-test, a pid, 3 clients (two app, one UI)", st)
	}
	counts := map[string]int{}
	for _, n := range st.Namespaces {
		counts[n.Name] = n.SocketsCount
	}
	if counts["/"] != 2 || counts["/admin"] != 1 {
		t.Errorf("server_stats namespaces %v, want / 2 and /admin 1", counts)
	}

	// A third browser comes, joins and leaves a room, and goes.
	third := sioclient.Start(t, url, sioclient.ClientConfig{Auth: map[string]any{"rooms": []string{}}})
	id3 := third.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect" }).ID
	conn := admin.WaitFor(wait, func(l sioclient.Line) bool {
		return l.Kind == "event" && l.Event == "socket_connected" && strings.Contains(string(l.Raw), id3)
	})
	if s := arg[uiSocket](t, conn, 0); s.ID != id3 || s.Nsp != "/" || !slices.Equal(s.Rooms, []string{id3}) {
		t.Errorf("socket_connected %+v, want %s in / with only its own room", s, id3)
	}
	if ts := arg[string](t, conn, 1); !strings.HasSuffix(ts, "Z") {
		t.Errorf("socket_connected timestamp %q: want an ISO date", ts)
	}
	third.EmitWithAck(0, wait, "join", "r9")
	joined := admin.WaitFor(wait, event("room_joined"))
	if got := []string{arg[string](t, joined, 0), arg[string](t, joined, 1), arg[string](t, joined, 2)}; !slices.Equal(got, []string{"/", "r9", id3}) {
		t.Errorf("room_joined %v, want [/ r9 %s]", got, id3)
	}
	third.EmitWithAck(0, wait, "leave", "r9")
	left := admin.WaitFor(wait, event("room_left"))
	if got := []string{arg[string](t, left, 0), arg[string](t, left, 1), arg[string](t, left, 2)}; !slices.Equal(got, []string{"/", "r9", id3}) {
		t.Errorf("room_left %v, want [/ r9 %s]", got, id3)
	}

	// Read-only: the UI's disconnect request is ignored.
	admin.Emit(0, "_disconnect", "/", false, appIDs[0])
	third.Disconnect(0)
	gone := admin.WaitFor(wait, event("socket_disconnected"))
	if got := []string{arg[string](t, gone, 0), arg[string](t, gone, 1), arg[string](t, gone, 2)}; !slices.Equal(got, []string{"/", id3, "client namespace disconnect"}) {
		t.Errorf("socket_disconnected %v, want [/ %s client namespace disconnect]", got, id3)
	}
	if n := admin.Count(func(l sioclient.Line) bool {
		return l.Kind == "event" && l.Event == "socket_disconnected" && strings.Contains(string(l.Raw), appIDs[0])
	}); n != 0 || app.Count(func(l sioclient.Line) bool { return l.Kind == "disconnect" }) != 0 {
		t.Errorf("a read-only UI disconnected an app socket")
	}

	// Traffic is counted: the third browser's connection and disconnection.
	admin.WaitFor(wait, func(l sioclient.Line) bool {
		return l.Kind == "event" && l.Event == "server_stats" && strings.Contains(string(l.Raw), `"type":"rawDisconnection","subType":"client namespace disconnect"`)
	})

	// Traffic deltas between ticks: each tick reads the counters once.
	admin.WaitFor(wait, func(l sioclient.Line) bool {
		raw := string(l.Raw)
		return l.Kind == "event" && l.Event == "server_stats" && strings.Contains(raw, `"type":"bytesOut","count":1000}`) && strings.Contains(raw, `"type":"packetsIn","count":1}`)
	})

	// The session id logs in again, without the password and without a new
	// session.
	again := sioclient.Start(t, url, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"sessionId": session}})
	again.WaitFor(wait, event("all_sockets"))
	if again.Count(event("session")) != 0 {
		t.Errorf("a session id login was given a new session")
	}
	forged := sioclient.Start(t, url, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"sessionId": session + "0"}})
	forged.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect_error" })
}

// TestAllowChanges: with AllowChanges the UI is offered join, leave and
// disconnect, and they act on the sockets the request selects.
func TestAllowChanges(t *testing.T) {
	_, url := startServer(t, adminui.Config{AllowChanges: true})
	app := sioclient.Start(t, url, sioclient.ClientConfig{Count: 2, Auth: map[string]any{"rooms": []string{"r1"}}})
	a := app.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == 0 }).ID
	admin := sioclient.Start(t, url, sioclient.ClientConfig{Namespace: "/admin", Auth: map[string]string{"username": adminUser, "password": adminPassword}})
	cfg := arg[struct {
		SupportedFeatures []string `json:"supportedFeatures"`
	}](t, admin.WaitFor(wait, event("config")), 0)
	for _, f := range []string{"JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"} {
		if !slices.Contains(cfg.SupportedFeatures, f) {
			t.Errorf("features %v lack %s", cfg.SupportedFeatures, f)
		}
	}
	if slices.Contains(cfg.SupportedFeatures, "EMIT") {
		t.Errorf("features %v offer EMIT: the UI could send any event to browsers", cfg.SupportedFeatures)
	}
	admin.WaitFor(wait, event("all_sockets"))

	admin.Emit(0, "join", "/", "r2", a)
	j := admin.WaitFor(wait, event("room_joined"))
	if arg[string](t, j, 1) != "r2" || arg[string](t, j, 2) != a {
		t.Errorf("room_joined %s, want r2 for %s", j.Raw, a)
	}
	admin.Emit(0, "leave", "/", "r1")
	admin.WaitFor(wait, func(l sioclient.Line) bool {
		return l.Kind == "event" && l.Event == "room_left" && strings.Contains(string(l.Raw), `"r1"`)
	})
	if n := admin.Count(func(l sioclient.Line) bool { return l.Kind == "event" && l.Event == "room_left" }); n > 2 {
		t.Errorf("%d room_left for two sockets leaving r1", n)
	}

	admin.Emit(0, "_disconnect", "/", false, a)
	if l := app.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "disconnect" }); l.Client != 0 || l.Reason != "io server disconnect" {
		t.Errorf("disconnect %s, want client 0 sent away (io server disconnect)", l.Raw)
	}
}
