package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseServeDefaultsAndPrecedence(t *testing.T) {
	s, err := parseServe(nil, []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET= spaced secret "}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != ":8080" || s.Path != "/socket.io/" || s.Slot != "walcast" || s.Publication != "walcast" ||
		s.JWTAlgorithm != "HS256" || s.LockTTL != 15*time.Minute || s.ExpiryWarning != time.Minute ||
		s.LogLevel != slog.LevelInfo || s.LogFormat != "text" || s.RedisURL != "" || !slices.Equal(s.CORSOrigins, []string{"*"}) || s.WriteDelay != 0 ||
		s.LockRate != 5 || s.LockBurst != 10 || s.MaxRooms != 100 {
		t.Errorf("defaults: %+v", s)
	}
	if s.JWTSecret != " spaced secret " {
		t.Errorf("secret %q was altered; secrets are taken verbatim", s.JWTSecret)
	}

	s, err = parseServe(
		[]string{"--slot", "from_flag", "--path", "/rt", "--lock-ttl", "30s", "--cors-origins", "https://a.example, https://b.example", "--log-format", "json", "--lock-renew", "--write-delay", "20ms",
			"--lock-rate", "0.5", "--max-rooms", "7"},
		[]string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s", "WALCAST_SLOT=from_env", "WALCAST_PUBLICATION=pub_env", "WALCAST_LOG_LEVEL=debug", "REDIS_URL=redis://127.0.0.1:6379", "WALCAST_LOCK_BURST=3"},
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Slot != "from_flag" {
		t.Errorf("slot %q: the flag must win over WALCAST_SLOT", s.Slot)
	}
	if s.Publication != "pub_env" || s.LogLevel != slog.LevelDebug || s.RedisURL != "redis://127.0.0.1:6379" {
		t.Errorf("environment not applied: %+v", s)
	}
	if s.Path != "/rt/" || s.LockTTL != 30*time.Second || s.LogFormat != "json" || !s.LockRenew || s.WriteDelay != 20*time.Millisecond ||
		!slices.Equal(s.CORSOrigins, []string{"https://a.example", "https://b.example"}) || s.LockRate != 0.5 || s.LockBurst != 3 || s.MaxRooms != 7 {
		t.Errorf("flags not applied: %+v", s)
	}
}

// TestParseServeRefusals: each bad setting fails with a message naming it.
func TestParseServeRefusals(t *testing.T) {
	ok := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"--lissten", ":1"}, ok, "-lissten"},
		{"stray argument", []string{"extra"}, ok, `unexpected argument "extra"`},
		{"unknown WALCAST_ variable", nil, append(ok, "WALCAST_SLOTT=x"), "WALCAST_SLOTT"},
		{"no database url", nil, []string{"JWT_SECRET=s"}, "--database-url (DATABASE_URL) is required"},
		{"no secret nor key", nil, []string{"DATABASE_URL=postgres://x/db"}, "--jwt-secret (JWT_SECRET) is required"},
		{"secret and key", []string{"--jwt-public-key", "k.pem"}, ok, "--jwt-secret and --jwt-public-key contradict"},
		{"HS256 with a key", []string{"--jwt-algorithm", "hs256", "--jwt-public-key", "k.pem"}, []string{"DATABASE_URL=postgres://x/db"}, "--jwt-algorithm HS256 needs --jwt-secret"},
		{"RS256 without a key", []string{"--jwt-algorithm", "RS256"}, ok, "--jwt-algorithm RS256 needs --jwt-public-key"},
		{"unknown algorithm", nil, append(ok, "JWT_ALGORITHM=none"), `--jwt-algorithm: "NONE"`},
		{"bad log level", []string{"--log-level", "loud"}, ok, "--log-level"},
		{"bad log format", nil, append(ok, "WALCAST_LOG_FORMAT=xml"), "--log-format"},
		{"relative path", []string{"--path", "socket.io"}, ok, "--path"},
		{"bad redis url", nil, append(ok, "REDIS_URL=localhost:6379"), "--redis-url"},
		{"wildcard with origins", []string{"--cors-origins", "*,https://a.example"}, ok, "--cors-origins"},
		{"no origins", nil, append(ok, "WALCAST_CORS_ORIGINS= "), "--cors-origins (WALCAST_CORS_ORIGINS): empty"},
		{"zero lock rate", []string{"--lock-rate", "0"}, ok, `--lock-rate (WALCAST_LOCK_RATE): "0" is not a positive number`},
		{"lock rate not a number", nil, append(ok, "WALCAST_LOCK_RATE=NaN"), "--lock-rate"},
		{"fractional burst", []string{"--lock-burst", "1.5"}, ok, `--lock-burst (WALCAST_LOCK_BURST): "1.5" is not a positive whole number`},
		{"negative room cap", nil, append(ok, "WALCAST_MAX_ROOMS=-1"), "--max-rooms"},
		{"bad duration", []string{"--lock-ttl", "15"}, ok, "--lock-ttl"},
		{"zero duration", nil, append(ok, "WALCAST_TOKEN_EXPIRY_WARNING=0s"), "--token-expiry-warning"},
		{"bad boolean", []string{"--lock-renew=maybe"}, ok, "--lock-renew"},
		{"negative write delay", []string{"--write-delay", "-1ms"}, ok, "--write-delay"},
		{"write delay over a second", nil, append(ok, "WALCAST_WRITE_DELAY=2s"), "--write-delay (WALCAST_WRITE_DELAY): 2s is over 1s"},
		{"bad boolean from env", nil, append(ok, "WALCAST_RECREATE_SLOT=sometimes"), "--recreate-slot"},
		{"unknown redis adapter", []string{"--redis-adapter", "kafka"}, append(ok, "REDIS_URL=redis://127.0.0.1:6379"), `--redis-adapter (WALCAST_REDIS_ADAPTER): "kafka"`},
		{"pubsub without redis", nil, append(ok, "WALCAST_REDIS_ADAPTER=pubsub"), "--redis-adapter (WALCAST_REDIS_ADAPTER) pubsub needs --redis-url"},
		{"admin listener on the public port", []string{"--listen", ":9000", "--admin-listen", "127.0.0.1:9000"}, ok, "--admin-listen (WALCAST_ADMIN_LISTEN) 127.0.0.1:9000 is the public --listen address"},
		{"admin listener on the same address", nil, append(ok, "WALCAST_LISTEN=127.0.0.1:9464"), "is the public --listen address"},
		{"admin listener not an address", []string{"--admin-listen", "9464"}, ok, `--admin-listen (WALCAST_ADMIN_LISTEN): "9464" is not host:port`},
		{"pprof without the listener", []string{"--admin-listen", "off", "--admin-pprof"}, ok, "--admin-pprof (WALCAST_ADMIN_PPROF) needs the operator listener"},
		{"admin ui without a hash", []string{"--admin-ui-username", "ops"}, ok, "--admin-ui-username (WALCAST_ADMIN_UI_USERNAME) needs --admin-ui-password-hash"},
		{"admin ui hash without a user", nil, append(ok, "WALCAST_ADMIN_UI_PASSWORD_HASH="+testHash), "--admin-ui-password-hash (WALCAST_ADMIN_UI_PASSWORD_HASH) needs --admin-ui-username"},
		{"admin ui password in clear", []string{"--admin-ui-username", "ops", "--admin-ui-password-hash", "secret"}, ok, "--admin-ui-password-hash (WALCAST_ADMIN_UI_PASSWORD_HASH) is not a bcrypt hash"},
		{"admin ui changes without the ui", []string{"--admin-ui-allow-changes"}, ok, "--admin-ui-allow-changes (WALCAST_ADMIN_UI_ALLOW_CHANGES) needs the Admin UI"},
		{"admin ui origin with a path", []string{"--admin-ui-origin", "https://admin.example/ui"}, ok, `--admin-ui-origin (WALCAST_ADMIN_UI_ORIGIN): "https://admin.example/ui" is not an origin`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			s, err := parseServe(tc.args, tc.env, &stderr)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestParseServeBooleans: on/off settings work bare, with =value, and from
// the environment, the flag winning.
func TestParseServeBooleans(t *testing.T) {
	base := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}
	cases := []struct {
		args []string
		env  []string
		want bool
	}{
		{nil, nil, false},
		{[]string{"--recreate-slot"}, nil, true},
		{[]string{"--recreate-slot=true"}, nil, true},
		{nil, []string{"WALCAST_RECREATE_SLOT=yes"}, true},
		{[]string{"--recreate-slot=false"}, []string{"WALCAST_RECREATE_SLOT=true"}, false},
		{[]string{"--recreate-slot=0"}, nil, false},
	}
	for _, tc := range cases {
		s, err := parseServe(tc.args, append(slices.Clone(base), tc.env...), io.Discard)
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
			continue
		}
		if s.RecreateSlot != tc.want {
			t.Errorf("%v %v: RecreateSlot = %v, want %v", tc.args, tc.env, s.RecreateSlot, tc.want)
		}
	}
}

// TestParseServeRedisAdapter: streams by default, pubsub from the flag or the
// environment (the flag winning), any case.
func TestParseServeRedisAdapter(t *testing.T) {
	base := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s", "REDIS_URL=redis://127.0.0.1:6379"}
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "streams"},
		{[]string{"--redis-adapter", "pubsub"}, nil, "pubsub"},
		{nil, []string{"WALCAST_REDIS_ADAPTER=PubSub"}, "pubsub"},
		{[]string{"--redis-adapter=streams"}, []string{"WALCAST_REDIS_ADAPTER=pubsub"}, "streams"},
	}
	for _, tc := range cases {
		s, err := parseServe(tc.args, append(slices.Clone(base), tc.env...), io.Discard)
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
			continue
		}
		if s.RedisAdapter != tc.want {
			t.Errorf("%v %v: RedisAdapter = %q, want %q", tc.args, tc.env, s.RedisAdapter, tc.want)
		}
	}
	// Without Redis the default is accepted: it only matters with REDIS_URL.
	if _, err := parseServe(nil, base[:2], io.Discard); err != nil {
		t.Errorf("default adapter without REDIS_URL: %v", err)
	}
}

// TestServeUsageIsReadable: `walcast serve -h` lists every setting with
// its variable, in lines a terminal shows whole.
func TestServeUsageIsReadable(t *testing.T) {
	var out strings.Builder
	if _, err := parseServe([]string{"-h"}, nil, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for i, line := range strings.Split(out.String(), "\n") {
		if len(line) > usageWidth {
			t.Errorf("usage line %d is %d characters: %q", i+1, len(line), line)
		}
	}
	for _, st := range serveSettings {
		if !strings.Contains(out.String(), "--"+st.flag+" ") || !strings.Contains(out.String(), "$"+st.env+" ") && !strings.Contains(out.String(), "$"+st.env+"\n") {
			t.Errorf("usage does not list --%s with $%s", st.flag, st.env)
		}
	}
}

// TestReadmeConfigurationTable: README's configuration table lists every
// setting of serve, and only those, with its variable and default.
func TestReadmeConfigurationTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `--([a-z-]+)` \\| `([A-Z_]+)` \\|([^|]*)\\|")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		rows[m[1]] = [2]string{m[2], strings.TrimSpace(m[3])}
	}
	for _, st := range serveSettings {
		r, ok := rows[st.flag]
		if !ok {
			t.Errorf("README's table lacks --%s", st.flag)
			continue
		}
		delete(rows, st.flag)
		if r[0] != st.env {
			t.Errorf("README: --%s is set by %s, walcast reads %s", st.flag, r[0], st.env)
		}
		want := "`" + st.def + "`"
		if st.boolean() {
			want = st.def
		}
		if st.def != "" && !strings.Contains(r[1], want) {
			t.Errorf("README: --%s defaults to %q, walcast to %s", st.flag, r[1], want)
		}
		if st.def == "" && r[1] == "" && st.defText != "" {
			t.Errorf("README: --%s has no default written; walcast's is %q", st.flag, st.defText)
		}
	}
	for f := range rows {
		t.Errorf("README's table has --%s, which walcast serve does not know", f)
	}
}

// testHash is bcrypt("secret") at the lowest cost.
const testHash = "$2a$04$JuVMC6n22/80IbYwzVEELOLkwT3bfDSmQvpfhDN.9yxyyw0G4P4f."

// TestParseServeOperatorSettings: the operator listener is on by default
// on loopback, off by "off"; the Admin UI takes a user, a bcrypt hash
// verbatim and its origins.
func TestParseServeOperatorSettings(t *testing.T) {
	base := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}
	s, err := parseServe(nil, base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.AdminListen != "127.0.0.1:9464" || s.AdminPprof || s.adminUI() || !slices.Equal(s.AdminUIOrigins, []string{"https://admin.socket.io"}) {
		t.Errorf("defaults: listen %q pprof %v ui %v origins %v", s.AdminListen, s.AdminPprof, s.adminUI(), s.AdminUIOrigins)
	}
	for _, off := range []string{"off", "OFF"} {
		if s, err := parseServe([]string{"--admin-listen", off}, base, io.Discard); err != nil || s.AdminListen != "" {
			t.Errorf("--admin-listen %s: %q, %v", off, s.AdminListen, err)
		}
	}
	s, err = parseServe([]string{"--admin-listen", "0.0.0.0:9100", "--admin-pprof", "--admin-ui-allow-changes", "--admin-ui-origin", "http://localhost:8081/, https://ops.example"},
		append(base, "WALCAST_ADMIN_UI_USERNAME=ops", "WALCAST_ADMIN_UI_PASSWORD_HASH="+testHash), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.AdminListen != "0.0.0.0:9100" || !s.AdminPprof || s.AdminUIUsername != "ops" || s.AdminUIPasswordHash != testHash || !s.AdminUIAllowChanges ||
		!slices.Equal(s.AdminUIOrigins, []string{"http://localhost:8081", "https://ops.example"}) {
		t.Errorf("operator settings not applied: %+v", s)
	}
}

// TestParseServeClientLimits: the limits on clients that have not
// authenticated default on, read every form the help promises and refuse
// the rest by name.
func TestParseServeClientLimits(t *testing.T) {
	base := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}
	s, err := parseServe(nil, base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxPayload != 1_000_000 || s.FrameTimeout != 10*time.Second || s.MaxHeaderBytes != 16384 || s.HeaderTimeout != 10*time.Second ||
		s.BodyTimeout != 10*time.Second || s.IdleTimeout != 75*time.Second || s.ConnectTimeout != 10*time.Second ||
		s.MaxPending != 1000 || s.MaxPendingPerAddress != 100 || len(s.TrustedProxies) != 0 {
		t.Errorf("defaults: %+v", s)
	}
	s, err = parseServe([]string{"--max-pending", "0", "--connect-timeout", "3s", "--trusted-proxies", "10.1.2.3/8, 192.0.2.7,::1"},
		append(base, "WALCAST_MAX_PENDING_PER_ADDRESS=7", "WALCAST_MAX_PAYLOAD=5000"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if s.MaxPending != 0 || s.MaxPendingPerAddress != 7 || s.MaxPayload != 5000 || s.ConnectTimeout != 3*time.Second || !slices.Equal(s.TrustedProxies, want) {
		t.Errorf("given: %+v", s)
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"--trusted-proxies", "10.0.0.0/33"}},
		{[]string{"--trusted-proxies", "proxy.local"}},
		{[]string{"--max-pending", "-1"}},
		{[]string{"--max-pending-per-address", "many"}},
		{[]string{"--max-payload", "0"}},
		{[]string{"--frame-timeout", "0s"}},
		{[]string{"--idle-timeout", "soon"}},
		{[]string{"--max-header-bytes", "-5"}},
	} {
		_, err := parseServe(tc.args, base, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.args[0]) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.args[0])
		}
	}
}
