// Package walcastproc runs walcast for the benchmarks the way users do: the
// binary built from this tree, as its own process, on a free loopback port,
// used once its /readyz says so.
package walcastproc

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walcast/walcast/internal/loopback"
)

// Build compiles cmd/walcast into a temporary directory and returns the
// binary's path and a function that removes it.
func Build() (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "walcast-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("build walcast: %w", err)
	}
	remove = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, "walcast")
	build := exec.Command("go", "build", "-o", bin, "github.com/walcast/walcast/cmd/walcast")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build walcast: %w", err)
	}
	return bin, remove, nil
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call.
func FreeAddr() (string, error) {
	port, err := loopback.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// WaitReady polls url (a /readyz) until it answers 200.
func WaitReady(url string, timeout time.Duration) error {
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", url, timeout)
}

// LoadAvg is the 1-minute load average: on a shared machine it says how
// much the figures owe to other work.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
