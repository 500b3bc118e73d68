package adminui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/adminui"
	"github.com/walcast/walcast/e2e/sioclient"
)

const chromiumPath = "/usr/bin/chromium"

// TestAdminUIInChromium: the official Admin UI (the ui/dist of the pinned
// @socket.io/admin-ui, served here from another origin than the server, as
// the hosted UI is) runs in headless Chromium, is refused with a wrong
// password, logs in to a walcast socketio.Server, its Sockets page lists
// the sockets this test opened and its Servers page shows the server
// healthy (its server_stats arrive).
func TestAdminUIInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is not installed (%v): install the Debian package: apt-get install -y chromium", err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)
	dist := filepath.Join(dir, "node_modules", "@socket.io", "admin-ui", "ui", "dist")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uiSrv := &http.Server{Handler: http.FileServer(http.Dir(dist)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = uiSrv.Serve(ln) }()
	t.Cleanup(func() { _ = uiSrv.Close() })
	uiOrigin := "http://" + ln.Addr().String()

	// The UI connects withCredentials: the server must name its origin.
	const serverID = "walcast-browser-test"
	_, url := startServer(t, adminui.Config{ServerID: serverID}, uiOrigin)
	app := sioclient.Start(t, url, sioclient.ClientConfig{Count: 3, Auth: map[string]any{"rooms": []string{"r1"}}})
	var ids []string
	for i := range 3 {
		ids = append(ids, app.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }).ID)
	}

	// Not t.TempDir: Chromium's helpers may still write in the profile for a
	// moment after the browser closed.
	profile, err := os.MkdirTemp("", "walcast-adminui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", profile)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "run.mjs", uiOrigin+"/", url, adminUser, adminPassword, profile, strings.Join(ids, ","), serverID)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, runErr := cmd.Output()

	var refused bool
	var rows, server []string
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Kind  string   `json:"kind"`
			Error string   `json:"error"`
			Rows  []string `json:"rows"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		t.Logf("browser: %s", sc.Bytes())
		switch l.Kind {
		case "fail":
			t.Fatalf("browser: %s\n%s", l.Error, stderr.String())
		case "refused":
			refused = true
		case "listed":
			rows = l.Rows
		case "server":
			server = l.Rows
		}
	}
	if runErr != nil {
		t.Fatalf("node run.mjs: %v\n%s", runErr, stderr.String())
	}
	if !refused {
		t.Errorf("the UI did not show \"Invalid credentials\" for a wrong password")
	}
	for _, id := range ids {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, id) }) {
			t.Errorf("the Sockets page rows %q do not list socket %s", rows, id)
		}
	}
	// The Servers page: server_stats arrive, so the server is healthy.
	if len(server) != 1 || !strings.Contains(strings.ToUpper(server[0]), "HEALTHY") {
		t.Errorf("the Servers page shows %q for %s, want one healthy server", server, serverID)
	}
}

// ensureNodeModules installs the pinned packages when the folder's
// node_modules lacks them (scripts/test.sh normally ran npm ci already).
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{"playwright-core", "@socket.io/admin-ui"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
			}
			return
		}
	}
}
