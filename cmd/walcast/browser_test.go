package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/browsertest"
	"github.com/walcast/walcast/internal/logbuf"
	"github.com/walcast/walcast/internal/pgtest"
)

// TestBrowser: a page in a real headless Chromium connects with
// socket.io-client's browser bundle (from another origin, as the app's
// pages do through CORS) and receives the event of a committed row.
func TestBrowser(t *testing.T) {
	browserDir := browserTestDir(t)
	e2eDir, err := sioclient.Setup() // node_modules with socket.io-client's bundle
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(e2eDir, "node_modules", "socket.io-client", "dist", "socket.io.min.js")

	// The page's own server, on another port than walcast: another origin.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /socket.io.min.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(browserDir, "page.html"))
	})
	pageSrv := httptest.NewServer(mux)
	t.Cleanup(pageSrv.Close)
	origin := pageSrv.URL

	dsn := newDB(t)
	tok := mint(t, 9001, "adm", "admin", nil, time.Hour)
	addUsers(t, dsn, tok)
	in := startWalcast(t, dsn, serveOpts{args: []string{"--cors-origins", origin}})
	q := url.Values{"url": {in.URL}, "token": {tok}}

	cmd := exec.Command("node", "run.mjs", origin+"/?"+q.Encode(), browsertest.Profile(t))
	cmd.Dir = browserDir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node run.mjs: %v", err)
	}
	exited := make(chan struct{})
	var once sync.Once
	// run.mjs closes the browser and exits by itself once it reported the
	// event; killing it earlier would orphan Chromium.
	stop := func() {
		once.Do(func() {
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(stop)

	lines := make(chan map[string]any, 100)
	go func() {
		defer func() { close(lines); _ = cmd.Wait(); close(exited) }()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	next := func(kind string) map[string]any {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					stop()
					t.Fatalf("browser script ended before %q: %s", kind, stderr.String())
				}
				t.Logf("browser: %v", m)
				if m["kind"] == "fail" {
					t.Fatalf("browser: %v\n%s", m["error"], stderr.String())
				}
				if m["kind"] == kind {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q from the browser in 60s: %s", kind, stderr.String())
			}
		}
	}
	next("connected")
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name, created_at) VALUES ('m-web', 'Web', 'Page', '2026-01-15T00:00:00Z')`)
	ev := next("event")
	got, _ := json.Marshal(ev["payload"])
	want := `{"type":"CREATE","data":{"id":"m-web","first_name":"Web","last_name":"Page","email":null,"telephone":null,"address":null,"city":null,"state":null,"zip":null,"family_id":null,"skills":[],"interests":[],"joined_at":null,"created_at":"2026-01-15T00:00:00.000Z"}}`
	if ev["event"] != "member:update" || !jsonEqual(t, got, want) {
		t.Errorf("browser got %v %s, want member:update %s", ev["event"], got, want)
	}
}

// browserTestDir is testdata/browser, once Debian's Chromium and the
// playwright-core its scripts launch it with are known to be there.
func browserTestDir(t *testing.T) string {
	t.Helper()
	browsertest.Require(t)
	dir, err := filepath.Abs("testdata/browser")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
