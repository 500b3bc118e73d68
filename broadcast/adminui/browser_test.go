package adminui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/adminui"
	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/browsertest"
)

// TestAdminUIInChromium: the official Admin UI (the ui/dist of the pinned
// @socket.io/admin-ui, served here from another origin than the server, as
// the hosted UI is) runs in headless Chromium, is refused with a wrong
// password, logs in to a walcast socketio.Server, its Sockets page lists
// the sockets this test opened and its Servers page shows the server
// healthy (its server_stats arrive).
func TestAdminUIInChromium(t *testing.T) {
	browsertest.Require(t)
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	browsertest.NodeModules(t, dir, "@socket.io/admin-ui")
	dist := filepath.Join(dir, "node_modules", "@socket.io", "admin-ui", "ui", "dist")

	uiSrv := httptest.NewServer(http.FileServer(http.Dir(dist)))
	t.Cleanup(uiSrv.Close)
	uiOrigin := uiSrv.URL

	// The UI connects withCredentials: the server must name its origin.
	const serverID = "walcast-browser-test"
	_, url := startServer(t, adminui.Config{ServerID: serverID}, uiOrigin)
	app := sioclient.Start(t, url, sioclient.ClientConfig{Count: 3, Auth: map[string]any{"rooms": []string{"r1"}}})
	var ids []string
	for i := range 3 {
		ids = append(ids, app.WaitFor(wait, func(l sioclient.Line) bool { return l.Kind == "connect" && l.Client == i }).ID)
	}

	profile := browsertest.Profile(t)
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
