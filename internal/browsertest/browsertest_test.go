package browsertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChromiumModuleResolvesPlaywright: chromium.mjs, imported by relative
// path from a script in another folder (as the browser tests' scripts do),
// loads playwright-core from this folder's node_modules and exports
// launchChromium.
func TestChromiumModuleResolvesPlaywright(t *testing.T) {
	Require(t)
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	rel, err := filepath.Rel(elsewhere, filepath.Join(dir, "chromium.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(elsewhere, "probe.mjs")
	src := `import { launchChromium } from "` + filepath.ToSlash(rel) + `";
console.log(typeof launchChromium);
`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "probe.mjs")
	cmd.Dir = elsewhere
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node probe.mjs: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "function" {
		t.Errorf("launchChromium is %q, want function", got)
	}
}

// TestProfileRemovedAfterTest: the profile exists during the test and is
// gone, with what Chromium wrote in it, once the test's cleanups ran.
func TestProfileRemovedAfterTest(t *testing.T) {
	var profile string
	t.Run("browser", func(t *testing.T) {
		profile = Profile(t)
		if err := os.MkdirAll(filepath.Join(profile, "Default"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Errorf("profile %s still there after its test (stat: %v)", profile, err)
	}
}
