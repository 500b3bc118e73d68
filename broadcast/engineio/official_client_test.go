package engineio

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfficialClient runs testdata/eioclient/check.mjs: the official
// engine.io-client from npm against this server over loopback. It needs
// node and npm (the package is installed from the lockfile into a temp
// directory) and is skipped, saying so, without them.
func TestOfficialClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the npm client run")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: official engine.io-client not run")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed: official engine.io-client not run")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "check.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "eioclient", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm ci failed (offline?), official client not run: %v\n%s", err, out)
	}

	e := newEnv(t, Config{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, true)
	run := exec.CommandContext(ctx, node, "check.mjs", e.http.URL, e.srv.Config().Path)
	run.Dir = dir
	out, err := run.CombinedOutput()
	t.Logf("official client:\n%s", out)
	if err != nil {
		t.Fatalf("official client: %v", err)
	}
	if n := strings.Count(string(out), " OK"); n != 4 {
		t.Fatalf("%d of 4 cases passed", n)
	}
}
