package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the walcast binary is built from relay and
// gateway, without the testing package and without the test-only helpers,
// which register test flags and carry code no production process should
// run.
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	// Row changes reach the hub through relay, sockets meet gateway.
	for _, want := range []string{"github.com/walcast/walcast/relay", "github.com/walcast/walcast/gateway"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("the walcast binary does not link %s: %q", want, deps)
		}
	}
	for _, forbidden := range []string{
		"testing",
		"github.com/walcast/walcast/internal/pgtest",
		"github.com/walcast/walcast/internal/redistest",
		"github.com/walcast/walcast/internal/browsertest",
		"github.com/walcast/walcast/internal/npmci",
	} {
		if slices.Contains(deps, forbidden) {
			t.Errorf("the walcast binary links %s", forbidden)
		}
	}
}
