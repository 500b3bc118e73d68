// Package browsertest gives tests Debian's headless Chromium, driven from
// Node through playwright-core by chromium.mjs in this folder. Browser test
// scripts import launchChromium from chromium.mjs by relative path, so
// "playwright-core" resolves from this folder's node_modules wherever the
// script lives.
//
// Typical use:
//
//	func TestX(t *testing.T) {
//		browsertest.Require(t) // Chromium present, playwright-core installed
//		cmd := exec.Command("node", "run.mjs", pageURL, browsertest.Profile(t))
//		...
//	}
//
// Like sioclient's Node, Chromium is a hard requirement: a missing browser
// fails the test with what to install, because a skip would report success
// for a page nobody loaded.
package browsertest

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/npmci"
)

// defaultChromium is Debian's package; chromium.mjs launches the same
// binary, or $CHROMIUM when set.
const defaultChromium = "/usr/bin/chromium"

// Require fails t unless Chromium is installed and this folder's
// node_modules holds playwright-core (running npm ci when it does not).
func Require(t testing.TB) {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = defaultChromium
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium is not installed (%v): install the Debian package: apt-get install -y chromium", err)
	}
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	NodeModules(t, dir, "playwright-core")
}

// Dir is the folder holding chromium.mjs and its package.json, found from
// this source file's location.
func Dir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate internal/browsertest from the source path (built with -trimpath?)")
	}
	return filepath.Dir(file), nil
}

// Profile is a fresh Chromium user-data-dir, removed after the test.
// Not t.TempDir: Chromium's helpers may still be writing in the profile for
// a moment after the browser closed, and TempDir's cleanup fails the test
// when removal does.
func Profile(t testing.TB) string {
	t.Helper()
	profile, err := os.MkdirTemp("", "walcast-chromium-")
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
	return profile
}

// NodeModules runs npm ci in dir when its node_modules lacks any of pkgs
// (scripts/test.sh normally ran npm ci already).
func NodeModules(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	if err := npmci.Ensure(dir, pkgs...); err != nil {
		t.Fatal(err)
	}
}
