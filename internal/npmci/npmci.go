// Package npmci installs the pinned npm packages of a folder (its
// package-lock.json) for tests that run Node scripts, once, however many
// test processes ask at the same time.
package npmci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Ensure runs npm ci in dir when its node_modules lacks any of pkgs
// (scripts/test.sh normally ran it already), and fails when npm ci did not
// bring them. npm ci runs under an exclusive lock on dir/.npm-ci.lock: test
// binaries of several packages run at once and may share a folder, and two
// npm ci in one folder delete each other's files.
func Ensure(dir string, pkgs ...string) error {
	if missing(dir, pkgs) == "" {
		return nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open npm lock file: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock npm install: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if missing(dir, pkgs) == "" { // another process installed them while we waited
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("%s/node_modules is missing and npm is not installed: run `npm ci --prefix %s`", dir, dir)
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	if p := missing(dir, pkgs); p != "" {
		return fmt.Errorf("npm ci in %s succeeded but %s is still missing", dir, p)
	}
	return nil
}

// missing is the first of pkgs that dir's node_modules lacks, or "".
func missing(dir string, pkgs []string) string {
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			return p
		}
	}
	return ""
}
