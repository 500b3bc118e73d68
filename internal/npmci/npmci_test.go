package npmci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEnsureInstalledRunsNothing: with every package present npm ci is not
// run (here it would fail: the folder has no package.json).
func TestEnsureInstalledRunsNothing(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"node_modules/a/package.json":        `{"name":"a"}`,
		"node_modules/@scope/b/package.json": `{"name":"@scope/b"}`,
	})
	if err := Ensure(dir, "a", "@scope/b"); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
}

// TestEnsureMissingAfterInstall: a package npm ci does not bring (not in
// package.json) is an error naming it, not a silent pass.
func TestEnsureMissingAfterInstall(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"package.json":      `{"name":"empty","private":true}`,
		"package-lock.json": `{"name":"empty","lockfileVersion":3,"requires":true,"packages":{"":{"name":"empty"}}}`,
	})
	err := Ensure(dir, "not-a-dependency")
	if err == nil || !strings.Contains(err.Error(), "not-a-dependency is still missing") {
		t.Fatalf("Ensure = %v, want not-a-dependency still missing", err)
	}
}
