package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/browsertest"
	"github.com/walcast/walcast/internal/logbuf"
	"github.com/walcast/walcast/internal/pgtest"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "TestDemoPage: write the page's screenshot to docs/demo.png")

// demoScreenshot is the README's picture of the page, relative to this
// package.
const demoScreenshot = "../../docs/demo.png"

// TestDemoPage: `walcast demo` serves a page at the address its banner
// prints first; in headless Chromium the page's two official
// socket.io-client connections show what each audience receives as its
// buttons write rows, the record lock of one pane in the other, a cut
// connection coming back recovered with the event it missed, and the
// viewer's demotion as the contract's connect_error.
func TestDemoPage(t *testing.T) {
	browserDir := browserTestDir(t)
	browsertest.NodeModules(t, "demo", "socket.io-client")
	d := startDemo(t)
	b := startDemoBrowser(t, browserDir, d.URL+"/")

	s := b.waitFor("both panes connected", func(s demoSnapshot) bool {
		return strings.HasPrefix(s.pane("admin").State, "connected") && strings.HasPrefix(s.pane("viewer").State, "connected")
	})
	client, err := findSocketIOClient("demo/node_modules/socket.io-client")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.About, "socket.io-client "+client.version+" from npm") {
		t.Errorf("the page does not say which client it loaded (%s): %q", client.version, s.About)
	}
	wantActions := []string{"donate-ann", "donate-bob", "edit-member", "settings", "delete-donation", "bulk", "demote", "restore"}
	var gotActions []string
	for _, a := range s.Actions {
		gotActions = append(gotActions, a.Name)
		// each button says, for both panes, whether it sees the change and why
		if strings.Count(a.Row, "sees it")+strings.Count(a.Row, "does not") != 2 {
			t.Errorf("action %s does not say who sees it and why: %q", a.Name, a.Row)
		}
	}
	// and the audiences it refers to are the routing profile's
	if !strings.Contains(s.Audiences, "donations → role:super_admin, role:admin, role:manager, role:data_entry, member:{member_id}") ||
		!strings.Contains(s.Audiences, "settings → all") {
		t.Errorf("the page's audiences: %q", s.Audiences)
	}
	if strings.Join(gotActions, ",") != strings.Join(wantActions, ",") {
		t.Errorf("actions %v, want %v", gotActions, wantActions)
	}
	for _, p := range []string{"admin", "viewer"} {
		if v := s.pane(p); v.Recovered != "false" || v.Error != "none" || v.Transport == "" {
			t.Errorf("%s pane at start: %+v", p, v)
		}
	}

	// Rows: the admin sees both donations, the viewer only Ann's.
	byMember := func(m string) func(map[string]any) bool {
		return func(row map[string]any) bool { return row["member_id"] == m }
	}
	b.click("button[data-action=donate-ann]")
	s = b.waitFor("Ann's donation in both panes", func(s demoSnapshot) bool {
		return s.pane("admin").has("donation:update", "CREATE", byMember("m-ann")) && s.pane("viewer").has("donation:update", "CREATE", byMember("m-ann"))
	})
	annDonation := s.pane("viewer").find("donation:update", "CREATE", byMember("m-ann"))["id"]
	b.click("button[data-action=donate-bob]")
	b.waitFor("Bob's donation in the admin pane", func(s demoSnapshot) bool {
		return s.pane("admin").has("donation:update", "CREATE", byMember("m-bob"))
	})
	b.click("button[data-action=settings]")
	s = b.waitFor("the settings in both panes", func(s demoSnapshot) bool {
		return s.pane("admin").has("settings:update", "ROW", nil) && s.pane("viewer").has("settings:update", "ROW", nil)
	})
	// The settings were committed after Bob's donation, and a socket gets
	// events in commit order: had the viewer been sent Bob's, she has it now.
	for _, e := range s.pane("viewer").Events {
		if e.Event == "donation:update" && byMember("m-bob")(e.data(t)) {
			t.Errorf("the viewer pane shows Bob's donation: %+v", e)
		}
	}
	b.click("button[data-action=edit-member]")
	b.waitFor("Ann's member record in both panes", func(s demoSnapshot) bool {
		ann := func(row map[string]any) bool { return row["id"] == "m-ann" }
		return s.pane("admin").has("member:update", "UPDATE", ann) && s.pane("viewer").has("member:update", "UPDATE", ann)
	})
	b.click("button[data-action=delete-donation]")
	b.waitFor("the DELETE of Ann's donation in both panes", func(s demoSnapshot) bool {
		deleted := func(row map[string]any) bool { return row["id"] == annDonation }
		return s.pane("admin").has("donation:update", "DELETE", deleted) && s.pane("viewer").has("donation:update", "DELETE", deleted)
	})
	b.click("button[data-action=bulk]")
	s = b.waitFor("one RESYNC in both panes", func(s demoSnapshot) bool {
		return s.pane("admin").has("donation:update", "RESYNC", nil) && s.pane("viewer").has("donation:update", "RESYNC", nil)
	})
	for _, e := range s.pane("admin").Events {
		if e.Type == "CREATE" && e.data(t)["fund"] == "Bulk import" {
			t.Fatalf("the bulk insert reached the admin pane as rows, not one RESYNC: %+v", e)
		}
	}

	// Locks: the admin's edit shows in the viewer's badge; her own edit is
	// refused with the holder's name; done frees it for both.
	b.click("[data-pane=admin] [data-do=edit]")
	s = b.waitFor("the admin's lock in the viewer's badge", func(s demoSnapshot) bool {
		return s.pane("viewer").Badge == "being edited by admin" && s.pane("admin").Badge == "you are editing it"
	})
	if ack := s.pane("admin").Ack; !strings.Contains(ack, `lock:acquire → {"success":true,"lockedBy":"admin"}`) {
		t.Errorf("admin's lock:acquire ack shows %q", ack)
	}
	b.click("[data-pane=viewer] [data-do=edit]")
	b.waitFor("the viewer's refused acquire", func(s demoSnapshot) bool {
		return s.pane("viewer").Ack == `lock:acquire → {"success":false,"lockedBy":"admin"}`
	})
	b.click("[data-pane=admin] [data-do=done]")
	b.waitFor("the lock freed in both panes", func(s demoSnapshot) bool {
		return s.pane("viewer").Badge == "free" && s.pane("admin").Badge == "free" && s.pane("admin").Ack == `lock:release → {"success":true}`
	})
	b.click("[data-pane=admin] [data-do=edit]")
	b.waitFor("the admin's lock again", func(s demoSnapshot) bool { return s.pane("viewer").Badge == "being edited by admin" })

	// A cut connection comes back recovered, same socket id, with the
	// donation written while it was down, replayed.
	for _, p := range []string{"viewer", "admin"} {
		before := b.snapshot().pane(p)
		replays := before.count(func(e demoEventView) bool { return e.Tag == "replayed" })
		b.click("[data-pane=" + p + "] [data-do=cut]")
		s = b.waitFor(p+" recovered with the missed donation", func(s demoSnapshot) bool {
			v := s.pane(p)
			return strings.HasPrefix(v.State, "connected") && v.count(func(e demoEventView) bool { return e.Tag == "replayed" }) == replays+1
		})
		v := s.pane(p)
		if v.Recovered != "true" || v.Sid != before.Sid {
			t.Errorf("%s pane after the cut: recovered %q, socket id %q (was %q); want recovered and the same id:\n%s", p, v.Recovered, v.Sid, before.Sid, v.CutNote)
		}
		if e := v.Events[0]; e.Tag != "replayed" || e.Event != "donation:update" || e.Type != "CREATE" || e.data(t)["member_id"] != "m-ann" {
			t.Errorf("%s pane's newest event after the cut: %+v, want Ann's donation replayed", p, e)
		}
	}

	// Demoting Ann's login: both panes get the users row (hers through
	// user:2), then her connection is closed and the client's reconnect is
	// refused with the contract's error.
	b.click("button[data-action=demote]")
	disabled := func(row map[string]any) bool { return row["username"] == "ann" && row["role"] == "disabled" }
	b.waitFor("the viewer told and refused, the admin told", func(s demoSnapshot) bool {
		v := s.pane("viewer")
		return v.Error == "Authentication error: Invalid token" && !strings.HasPrefix(v.State, "connected") &&
			v.has("user:update", "UPDATE", disabled) && s.pane("admin").has("user:update", "UPDATE", disabled)
	})
	if *updateScreenshot {
		path, err := filepath.Abs(demoScreenshot)
		if err != nil {
			t.Fatal(err)
		}
		b.do(map[string]any{"op": "screenshot", "path": path})
		t.Logf("wrote %s", path)
	}
	b.click("button[data-action=restore]")
	b.waitFor("the viewer connected again", func(s demoSnapshot) bool { return strings.HasPrefix(s.pane("viewer").State, "connected") })

	b.close()
	if err := d.stop(); err != nil {
		t.Errorf("walcast demo exited with %v after SIGTERM", err)
	}
}

// TestServeServesNoPage: the page is the demo's alone.
func TestServeServesNoPage(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	for _, path := range []string{"/", "/demo/config", "/demo/demo.js", "/demo/socket.io.min.js"} {
		if code, body := in.get(path); code != http.StatusNotFound {
			t.Errorf("walcast serve answers GET %s with %d %q, want 404", path, code, body)
		}
	}
}

// TestDemoActions: the write endpoints run their fixed statements for the
// demo's own page only; anything else is refused and writes nothing.
func TestDemoActions(t *testing.T) {
	dsn := newDB(t)
	pgtest.Exec(t, dsn, demoSeed)
	cfg, err := parseServe(nil, []string{"DATABASE_URL=" + dsn, "JWT_SECRET=x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	page := newDemoPage(dsn, socketIOClient{}, cfg, "admin-token", "viewer-token", newLogger(io.Discard, 0, "text"))
	h := page.handler(http.NotFoundHandler())
	request := func(method, target, host string, header map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		r.Host = host
		for k, v := range header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const host = "127.0.0.1:8080"
	sameOrigin := map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}
	for _, c := range []struct {
		name, method, target, host string
		header                     map[string]string
		want                       int
	}{
		{"another site's page", "POST", "/demo/actions/demote", host, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"no Origin", "POST", "/demo/actions/donate-ann", host, nil, http.StatusForbidden},
		{"Origin of another port", "POST", "/demo/actions/donate-ann", host, map[string]string{"Origin": "http://127.0.0.1:9999"}, http.StatusForbidden},
		{"a same-site, not same-origin request", "POST", "/demo/actions/donate-ann", host, map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"a rebound DNS name", "POST", "/demo/actions/demote", "evil.example:8080", map[string]string{"Origin": "http://evil.example:8080", "Sec-Fetch-Site": "same-origin"}, http.StatusMisdirectedRequest},
		{"tokens through a rebound DNS name", "GET", "/demo/config", "evil.example:8080", nil, http.StatusMisdirectedRequest},
		{"the page through a rebound DNS name", "GET", "/", "127.0.0.1.nip.io:8080", nil, http.StatusMisdirectedRequest},
		{"GET of an action", "GET", "/demo/actions/donate-ann", host, sameOrigin, http.StatusMethodNotAllowed},
		{"PUT of an action", "PUT", "/demo/actions/donate-ann", host, sameOrigin, http.StatusMethodNotAllowed},
		{"an unknown action", "POST", "/demo/actions/drop-tables", host, sameOrigin, http.StatusNotFound},
		{"SQL in the name", "POST", "/demo/actions/donate-ann;DELETE%20FROM%20users", host, sameOrigin, http.StatusNotFound},
	} {
		w := request(c.method, c.target, c.host, c.header)
		if w.Code != c.want || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%s: %s %s -> %d %s, want %d with an error", c.name, c.method, c.target, w.Code, w.Body, c.want)
		}
	}
	if n := queryInt(t, dsn, `SELECT count(*) FROM donations`); n != 0 {
		t.Errorf("refused requests wrote %d donations", n)
	}
	if n := queryInt(t, dsn, `SELECT count(*) FROM users WHERE username = 'ann' AND role = 'viewer'`); n != 1 {
		t.Errorf("a refused demote changed Ann's row")
	}

	for _, c := range []struct {
		action, host string
		want         int
		result       string // what the answer's result holds
	}{
		{"donate-ann", host, http.StatusOK, "1"},
		{"donate-ann", "localhost:8080", http.StatusOK, "2"},
		{"delete-donation", "[::1]:8080", http.StatusOK, "2"},
		{"delete-donation", host, http.StatusOK, "1"},
		{"delete-donation", host, http.StatusConflict, "Ann has no donation left to delete"},
		{"bulk", host, http.StatusOK, "1001 rows"},
		{"demote", host, http.StatusOK, "disabled"},
		{"restore", host, http.StatusOK, "viewer"},
	} {
		w := request("POST", "/demo/actions/"+c.action, c.host, map[string]string{"Origin": "http://" + c.host, "Sec-Fetch-Site": "same-origin"})
		var res demoActionResult
		_ = json.Unmarshal(w.Body.Bytes(), &res)
		if w.Code != c.want || (w.Code == http.StatusOK && (res.Result != c.result || res.SQL != page.actions[c.action].SQL)) ||
			(w.Code != http.StatusOK && !strings.Contains(w.Body.String(), c.result)) {
			t.Errorf("%s via %s: %d %s, want %d with %q", c.action, c.host, w.Code, w.Body, c.want, c.result)
		}
	}
	if n := queryInt(t, dsn, `SELECT count(*) FROM donations WHERE member_id = 'm-bob' AND fund = 'Bulk import'`); n != 1001 {
		t.Errorf("bulk wrote %d rows, want flood_rows+1 = 1001", n)
	}

	w := request("GET", "/demo/config", host, nil)
	var cfgJSON demoPageConfig
	if err := json.Unmarshal(w.Body.Bytes(), &cfgJSON); err != nil || w.Code != http.StatusOK || len(cfgJSON.Panes) != 2 || cfgJSON.Panes[1].Token != "viewer-token" || cfgJSON.FloodRows != 1000 {
		t.Errorf("GET /demo/config: %d %s", w.Code, w.Body)
	}
	w = request("GET", "/", host, nil)
	if csp := w.Header().Get("Content-Security-Policy"); w.Code != http.StatusOK || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(w.Body.String(), `<script src="/demo/socket.io.min.js">`) {
		t.Errorf("GET /: %d, CSP %q", w.Code, csp)
	}
	if w = request("GET", "/healthz", host, nil); w.Code != http.StatusNotFound {
		t.Errorf("GET /healthz did not reach walcast's handler: %d", w.Code)
	}
}

// TestDemoNeedsTheClient: without socket.io-client from npm the demo stops
// at once, saying what to run, before it starts PostgreSQL.
func TestDemoNeedsTheClient(t *testing.T) {
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "package.json"), []byte(`{"name":"socket.io-client","version":"2.5.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	noBundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(noBundle, "package.json"), []byte(`{"name":"socket.io-client","version":"4.8.4"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(t.TempDir(), "missing"), "not found in"},
		{old, "needs socket.io-client 4"},
		{noBundle, "has no browser bundle"},
	} {
		var stderr logbuf.Buffer
		err := run(context.Background(), []string{"demo", "--socketio-client", c.dir}, nil, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "npm ci --prefix cmd/walcast/demo") {
			t.Errorf("demo with %s: %v, want %q and the npm command", c.dir, err, c.want)
		}
		if strings.Contains(stderr.String(), "PostgreSQL") {
			t.Errorf("demo with %s started PostgreSQL before finding the client", c.dir)
		}
	}
}

func TestBrowsableAddr(t *testing.T) {
	for _, c := range []struct{ listen, want string }{
		{"0.0.0.0:8080", "127.0.0.1:8080"},
		{"[::]:8080", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"[::1]:8080", "[::1]:8080"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := browsableAddr(addr); got != c.want {
			t.Errorf("browsableAddr(%s) = %s, want %s", c.listen, got, c.want)
		}
	}
}

// startDemo runs `walcast demo` from the checkout's root, as
// scripts/demo.sh does, takes its URL from the banner's first line and
// waits until it is ready. It is stopped with SIGTERM (its Ctrl-C) when
// the test ends.
func startDemo(t *testing.T) *instance {
	t.Helper()
	cmd := exec.Command(walcastBin, "demo", "--listen", "127.0.0.1:0")
	cmd.Dir = "../.."
	in := &instance{t: t, cmd: cmd, logs: &logbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = in.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start walcast demo: %v", err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for n := 0; sc.Scan(); n++ {
			if n == 0 {
				first <- sc.Text()
			}
			_, _ = in.logs.Write(append(sc.Bytes(), '\n'))
		}
		close(first)
		in.err = cmd.Wait()
		close(in.done)
	}()
	t.Cleanup(func() {
		_ = in.stop()
		if t.Failed() {
			t.Logf("walcast demo output:\n%s", in.logs.String())
		}
	})
	select {
	case line, ok := <-first:
		url, found := strings.CutPrefix(line, "open ")
		if !ok || !found || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
			t.Fatalf("the banner's first line is %q, want \"open http://127.0.0.1:PORT/\":\n%s", line, in.logs.String())
		}
		in.URL = strings.TrimSuffix(url, "/")
	case <-time.After(2 * time.Minute):
		t.Fatalf("no banner from walcast demo in 2 minutes:\n%s", in.logs.String())
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		code, body := in.get("/readyz")
		if code == http.StatusOK {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("walcast demo not ready in a minute (last /readyz %d %s):\n%s", code, body, in.logs.String())
		}
	}
}

// demoBrowser is testdata/browser/demo.mjs: Chromium on the page, doing
// what it is told one line at a time.
type demoBrowser struct {
	t      *testing.T
	stdin  io.WriteCloser
	lines  chan map[string]any
	stderr *logbuf.Buffer
	closed sync.Once
	exited chan struct{}
}

// demoSnapshot is what demo.mjs reads off the page's DOM.
type demoSnapshot struct {
	About     string                  `json:"about"`
	Audiences string                  `json:"audiences"`
	LastWrite string                  `json:"lastWrite"`
	Panes     map[string]demoPaneView `json:"panes"`
	Actions   []struct {
		Name, Label, Row string
	} `json:"actions"`
}

type demoPaneView struct {
	State, Sid, Transport, Recovered, Error, Badge, Ack, CutNote string
	Events                                                       []demoEventView
}

type demoEventView struct{ Event, Type, Tag, Row string }

func (s demoSnapshot) pane(id string) demoPaneView { return s.Panes[id] }

// data is the row an event shows, decoded; nil when it shows none.
func (e demoEventView) data(t *testing.T) map[string]any {
	var m map[string]any
	if strings.HasPrefix(e.Row, "{") {
		if err := json.Unmarshal([]byte(e.Row), &m); err != nil {
			t.Errorf("the page shows %s's row as %q: %v", e.Event, e.Row, err)
		}
	}
	return m
}

// find returns the row of the newest event of that name and type whose
// row matches (any row when match is nil), or nil.
func (p demoPaneView) find(event, typ string, match func(map[string]any) bool) map[string]any {
	for _, e := range p.Events {
		if e.Event != event || e.Type != typ {
			continue
		}
		var row map[string]any
		_ = json.Unmarshal([]byte(e.Row), &row)
		if match == nil || match(row) {
			if row == nil {
				row = map[string]any{}
			}
			return row
		}
	}
	return nil
}

func (p demoPaneView) has(event, typ string, match func(map[string]any) bool) bool {
	return p.find(event, typ, match) != nil
}

func (p demoPaneView) count(f func(demoEventView) bool) int {
	n := 0
	for _, e := range p.Events {
		if f(e) {
			n++
		}
	}
	return n
}

func startDemoBrowser(t *testing.T, dir, pageURL string) *demoBrowser {
	t.Helper()
	cmd := exec.Command("node", "demo.mjs", pageURL, browsertest.Profile(t))
	cmd.Dir = dir
	b := &demoBrowser{t: t, lines: make(chan map[string]any, 100), stderr: &logbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = b.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node demo.mjs: %v", err)
	}
	go func() {
		defer func() { close(b.lines); _ = cmd.Wait(); close(b.exited) }()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 4<<20), 4<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				b.lines <- m
			}
		}
	}()
	// demo.mjs closes the browser when told or when its stdin ends;
	// killing it earlier would orphan Chromium.
	t.Cleanup(func() {
		b.close()
		select {
		case <-b.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-b.exited
		}
	})
	b.next(func(m map[string]any) bool { return m["kind"] == "loaded" }, "the page loaded")
	return b
}

// next returns the next line that want accepts, failing the test on a
// script failure or after a minute.
func (b *demoBrowser) next(want func(map[string]any) bool, what string) map[string]any {
	b.t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case m, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("demo.mjs ended before %s: %s", what, b.stderr.String())
			}
			switch m["kind"] {
			case "fail":
				b.t.Fatalf("demo.mjs: %v\n%s", m["error"], b.stderr.String())
			case "pageerror":
				b.t.Errorf("error on the page: %v", m["error"])
			case "console":
				b.t.Logf("page console: %v", m["text"])
			}
			if want(m) {
				return m
			}
		case <-timeout:
			b.t.Fatalf("no answer from demo.mjs in a minute for %s: %s", what, b.stderr.String())
		}
	}
}

// do sends one command and returns its answer.
func (b *demoBrowser) do(cmd map[string]any) map[string]any {
	b.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		b.t.Fatalf("send %s to demo.mjs: %v", line, err)
	}
	m := b.next(func(m map[string]any) bool { _, ok := m["ok"]; return ok }, string(line))
	if m["ok"] != true {
		b.t.Fatalf("demo.mjs %s: %v", line, m["error"])
	}
	return m
}

func (b *demoBrowser) click(selector string) {
	b.t.Helper()
	b.do(map[string]any{"op": "click", "selector": selector})
}

func (b *demoBrowser) snapshot() demoSnapshot {
	b.t.Helper()
	raw, _ := json.Marshal(b.do(map[string]any{"op": "snapshot"})["snapshot"])
	var s demoSnapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		b.t.Fatalf("snapshot %s: %v", raw, err)
	}
	return s
}

// waitFor polls the page until cond holds, for up to 30 s.
func (b *demoBrowser) waitFor(what string, cond func(demoSnapshot) bool) demoSnapshot {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := b.snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			shown, _ := json.MarshalIndent(s, "", "  ")
			b.t.Fatalf("the page never showed %s in 30s; it shows:\n%s", what, shown)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (b *demoBrowser) close() {
	b.closed.Do(func() {
		line, _ := json.Marshal(map[string]any{"op": "close"})
		_, _ = b.stdin.Write(append(line, '\n'))
		_ = b.stdin.Close()
	})
}
