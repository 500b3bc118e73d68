package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/route"
)

// The page `walcast demo` serves at "/": plain HTML, CSS and JavaScript,
// no build step. Only its socket.io-client comes from elsewhere: npm.
//
//go:embed demo/index.html demo/demo.js demo/demo.css
var demoAssets embed.FS

// defaultSocketIOClient is where scripts/demo.sh installs the page's
// client (npm ci in cmd/walcast/demo), relative to the checkout's root.
const defaultSocketIOClient = "cmd/walcast/demo/node_modules/socket.io-client"

// socketIOClient is the official socket.io-client package the page loads.
type socketIOClient struct {
	bundle  string // dist/socket.io.min.js
	version string
}

// findSocketIOClient checks that dir is a socket.io-client 4 package with
// its browser bundle: the page relies on v4's auth option and
// socket.recovered.
func findSocketIOClient(dir string) (socketIOClient, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return socketIOClient{}, fmt.Errorf("--socketio-client %s: %w", dir, err)
	}
	fix := "run `npm ci --prefix cmd/walcast/demo` in the walcast checkout (scripts/demo.sh does), or point --socketio-client at a socket.io-client 4 package folder"
	b, err := os.ReadFile(filepath.Join(abs, "package.json"))
	if err != nil {
		return socketIOClient{}, fmt.Errorf("the demo page needs the official socket.io-client from npm, not found in %s (%v): %s", abs, err, fix)
	}
	var pkg struct{ Name, Version string }
	if err := json.Unmarshal(b, &pkg); err != nil {
		return socketIOClient{}, fmt.Errorf("read %s: %w", filepath.Join(abs, "package.json"), err)
	}
	if pkg.Name != "socket.io-client" || !strings.HasPrefix(pkg.Version, "4.") {
		return socketIOClient{}, fmt.Errorf("the demo page needs socket.io-client 4, %s holds %s %s: %s", abs, pkg.Name, pkg.Version, fix)
	}
	bundle := filepath.Join(abs, "dist", "socket.io.min.js")
	if _, err := os.Stat(bundle); err != nil {
		return socketIOClient{}, fmt.Errorf("socket.io-client %s in %s has no browser bundle (%v): %s", pkg.Version, abs, err, fix)
	}
	return socketIOClient{bundle: bundle, version: pkg.Version}, nil
}

// The demo's people: the tokens it prints are theirs, and demoSeed gives
// them their users rows.
const (
	demoViewerMember = "m-ann"
	demoOtherMember  = "m-bob"
)

// demoPane is one side of the page: a socket.io-client connection with
// one user's token.
type demoPane struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Token    string  `json:"token"`
	Username string  `json:"username"`
	Role     string  `json:"role"`
	MemberID *string `json:"memberId"`
	Rooms    string  `json:"rooms"` // the rooms walcast puts its socket in, in words
}

// demoSight says whether a pane should receive an action's change and why.
type demoSight struct {
	Sees bool   `json:"sees"`
	Why  string `json:"why"`
}

// demoAction is a button of the page: one fixed statement, run through
// the demo's own database connection. The page names an action; it never
// sends SQL.
type demoAction struct {
	Name     string               `json:"name"`
	Label    string               `json:"label"`
	SQL      string               `json:"sql"`
	Table    string               `json:"table"`    // whose audience applies
	Event    string               `json:"event"`    // the event it causes
	Audience []string             `json:"audience"` // the table's audience in the routing profile
	Panes    map[string]demoSight `json:"panes"`    // by demoPane.ID
	args     []any
}

// demoPageConfig is what the page reads at start (GET /demo/config).
type demoPageConfig struct {
	SocketPath     string       `json:"socketPath"`
	ClientVersion  string       `json:"clientVersion"`
	DatabaseURL    string       `json:"databaseURL"`
	FloodRows      int          `json:"floodRows"`
	LockRate       float64      `json:"lockRate"`
	LockBurst      int          `json:"lockBurst"`
	LockTTL        string       `json:"lockTTL"`
	RecoveryWindow string       `json:"recoveryWindow"`
	LockMember     demoMember   `json:"lockMember"`
	Panes          []demoPane   `json:"panes"`
	Actions        []demoAction `json:"actions"`
}

type demoMember struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// demoPage serves the page, its assets, its configuration and its write
// endpoints in front of walcast's own handler.
type demoPage struct {
	dsn     string
	client  socketIOClient
	config  demoPageConfig
	actions map[string]demoAction
	log     *slog.Logger
	writes  sync.Mutex // one write at a time, in the order they came
}

func newDemoPage(dsn string, client socketIOClient, cfg *settings, adminToken, viewerToken string, log *slog.Logger) *demoPage {
	profile := route.GraceGiver()
	audience := func(table string) []string { return profile.Tables[table].Audience }
	viewerMember := demoViewerMember
	floodRows := profile.FloodRows
	if floodRows == 0 {
		floodRows = route.DefaultFloodRows
	}
	both := func(admin, viewer string) map[string]demoSight {
		return map[string]demoSight{"admin": {true, admin}, "viewer": {true, viewer}}
	}
	staff := "role:super_admin is in the audience"
	actions := []demoAction{
		{Name: "donate-ann", Label: "Add a donation for Ann", Table: "public.donations", Event: "donation:update",
			SQL:   `INSERT INTO donations (member_id, amount, fund, notes, entered_by) VALUES ('m-ann', (10 + floor(random() * 90))::numeric(12,2), 'Tithes', 'from the demo page', 'admin') RETURNING id::text`,
			Panes: both(staff, "member_id is m-ann: her member:m-ann room is in the audience (member:{member_id})")},
		{Name: "donate-bob", Label: "Add a donation for Bob", Table: "public.donations", Event: "donation:update",
			SQL: `INSERT INTO donations (member_id, amount, fund, notes, entered_by) VALUES ('m-bob', (10 + floor(random() * 90))::numeric(12,2), 'Missions', 'from the demo page', 'admin') RETURNING id::text`,
			Panes: map[string]demoSight{"admin": {true, staff},
				"viewer": {false, "member_id is m-bob: member:m-bob is not one of her rooms, and a viewer is not staff"}}},
		{Name: "edit-member", Label: "Edit Ann's member record", Table: "public.members", Event: "member:update",
			SQL:   `UPDATE members SET telephone = '555-' || lpad(floor(random() * 10000)::int::text, 4, '0') WHERE id = 'm-ann' RETURNING telephone`,
			Panes: both(staff, "her own record: member:{id} is member:m-ann")},
		{Name: "settings", Label: "Change the settings", Table: "public.settings", Event: "settings:update",
			SQL:   `UPDATE settings SET phone = '555-' || lpad(floor(random() * 10000)::int::text, 4, '0') RETURNING phone`,
			Panes: both("the audience is all: every socket", "the audience is all: every socket")},
		{Name: "delete-donation", Label: "Delete Ann's newest donation", Table: "public.donations", Event: "donation:update",
			SQL:   `DELETE FROM donations WHERE id = (SELECT max(id) FROM donations WHERE member_id = 'm-ann') RETURNING id::text`,
			Panes: both(staff, "the old row says member_id m-ann (donations has REPLICA IDENTITY FULL, so a DELETE carries it)")},
		{Name: "bulk", Label: fmt.Sprintf("Bulk-insert %d donations", floodRows+1), Table: "public.donations", Event: "donation:update",
			SQL:   `WITH added AS (INSERT INTO donations (member_id, amount, fund, notes, entered_by) SELECT 'm-bob', 1.00, 'Bulk import', 'row ' || n, 'admin' FROM generate_series(1, $1::int) AS n RETURNING 1) SELECT count(*)::text || ' rows' FROM added`,
			args:  []any{floodRows + 1},
			Panes: both(fmt.Sprintf("more than flood_rows (%d) in one transaction: one RESYNC, not %d events; it carries no row, so every socket gets it", floodRows, floodRows+1), "one RESYNC to every socket: refetch donations")},
		{Name: "demote", Label: "Demote Ann's login", Table: "public.users", Event: "user:update",
			SQL: `UPDATE users SET role = 'disabled', updated_at = now() WHERE username = 'ann' RETURNING role`,
			Panes: map[string]demoSight{"admin": {true, "user:update: role:super_admin is in the users audience"},
				"viewer": {true, "user:{id} is her user:2 room; then her token says viewer and her row no longer does: walcast closes her connection, the client reconnects by itself and gets connect_error \"Authentication error: Invalid token\""}}},
		{Name: "restore", Label: "Restore Ann's login", Table: "public.users", Event: "user:update",
			SQL: `UPDATE users SET role = 'viewer', updated_at = now() WHERE username = 'ann' RETURNING role`,
			Panes: map[string]demoSight{"admin": {true, "user:update: role:super_admin is in the users audience"},
				"viewer": {true, "her row matches her token again: the page reconnects her pane, and walcast, within the recovery window, restores her session and replays what user:2 missed"}}},
	}
	byName := make(map[string]demoAction, len(actions))
	for i := range actions {
		actions[i].Audience = audience(actions[i].Table)
		byName[actions[i].Name] = actions[i]
	}
	return &demoPage{
		dsn:     dsn,
		client:  client,
		actions: byName,
		log:     log,
		config: demoPageConfig{
			SocketPath:     cfg.Path,
			ClientVersion:  client.version,
			DatabaseURL:    dsn,
			FloodRows:      floodRows,
			LockRate:       cfg.LockRate,
			LockBurst:      cfg.LockBurst,
			LockTTL:        cfg.LockTTL.String(),
			RecoveryWindow: cfg.RecoveryWindow.String(),
			LockMember:     demoMember{ID: demoViewerMember, Name: "Ann Lee"},
			Panes: []demoPane{
				{ID: "admin", Title: "admin", Token: adminToken, Username: "admin", Role: "super_admin", Rooms: "user:1, role:super_admin"},
				{ID: "viewer", Title: "viewer: Ann", Token: viewerToken, Username: "ann", Role: "viewer", MemberID: &viewerMember, Rooms: "user:2, role:viewer, member:m-ann"},
			},
			Actions: actions,
		},
	}
}

// handler serves the page's routes and hands everything else (the
// Socket.IO path, /healthz, /readyz) to walcast's own handler.
func (p *demoPage) handler(walcast http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.asset("demo/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /demo/demo.js", p.asset("demo/demo.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /demo/demo.css", p.asset("demo/demo.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /demo/socket.io.min.js", p.clientBundle)
	mux.HandleFunc("GET /demo/config", p.configJSON)
	mux.HandleFunc("POST /demo/actions/{name}", p.act)
	mux.HandleFunc("/demo/actions/{name}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		demoError(w, http.StatusMethodNotAllowed, "actions are POST only")
	})
	mux.HandleFunc("/demo/", func(w http.ResponseWriter, _ *http.Request) {
		demoError(w, http.StatusNotFound, "no such demo resource")
	})
	demo := requireUnrebindableHost(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/demo/") {
			demo.ServeHTTP(w, r)
			return
		}
		walcast.ServeHTTP(w, r)
	})
}

// requireUnrebindableHost refuses requests whose Host is a DNS name other
// than localhost: a page of another site that rebinds its own name to
// 127.0.0.1 would otherwise be same-origin with the demo, read its tokens
// and press its buttons. An IP address cannot be rebound.
func requireUnrebindableHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if _, err := netip.ParseAddr(host); err != nil && !strings.EqualFold(host, "localhost") {
			demoError(w, http.StatusMisdirectedRequest, "the demo answers only to an IP address or localhost, not "+strconv.Quote(r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (p *demoPage) asset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := demoAssets.ReadFile(name)
		if err != nil {
			demoError(w, http.StatusInternalServerError, err.Error())
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Nothing but the demo's own scripts, styles and sockets; no
		// framing, so its buttons cannot be clicked through another page.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self' ws://"+r.Host+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		_, _ = w.Write(b)
	}
}

func (p *demoPage) clientBundle(w http.ResponseWriter, r *http.Request) {
	if _, err := os.Stat(p.client.bundle); err != nil {
		demoError(w, http.StatusServiceUnavailable, fmt.Sprintf("socket.io-client's bundle is gone (%v): run `npm ci --prefix cmd/walcast/demo` in the walcast checkout", err))
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFile(w, r, p.client.bundle)
}

func (p *demoPage) configJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(p.config)
}

// demoActionResult is an action's answer: the statement that ran and what
// it returned, for the page to show beside the events it caused.
type demoActionResult struct {
	Action string `json:"action"`
	SQL    string `json:"sql"`
	Result string `json:"result"`
}

// act runs one named action. Only same-origin requests from the demo's
// own page may write: a page of another site gets 403 and nothing runs.
func (p *demoPage) act(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "http://"+r.Host {
		demoError(w, http.StatusForbidden, "actions are for the demo's own page: Origin "+strconv.Quote(origin)+" is not http://"+r.Host)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		demoError(w, http.StatusForbidden, "actions are for the demo's own page, not a "+site+" request")
		return
	}
	a, ok := p.actions[r.PathValue("name")]
	if !ok {
		demoError(w, http.StatusNotFound, "no action "+strconv.Quote(r.PathValue("name")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	result, err := p.run(ctx, a)
	if errors.Is(err, pgx.ErrNoRows) {
		demoError(w, http.StatusConflict, "nothing to do: "+noRowsHint(a.Name))
		return
	}
	if err != nil {
		p.log.Warn("demo action failed", "action", a.Name, "err", err)
		demoError(w, http.StatusInternalServerError, fmt.Sprintf("%s: %v", a.Name, err))
		return
	}
	p.log.Info("demo action", "action", a.Name, "result", result)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(demoActionResult{Action: a.Name, SQL: a.SQL, Result: result})
}

func noRowsHint(action string) string {
	if action == "delete-donation" {
		return "Ann has no donation left to delete; add one first"
	}
	return "the row is gone"
}

func (p *demoPage) run(ctx context.Context, a demoAction) (string, error) {
	p.writes.Lock()
	defer p.writes.Unlock()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return "", fmt.Errorf("connect to the demo database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var result string
	if err := conn.QueryRow(ctx, a.SQL, a.args...).Scan(&result); err != nil {
		return "", err
	}
	return result, nil
}

func demoError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
