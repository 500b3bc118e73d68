package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/walcast/walcast/e2e/sioclient"
)

// TestMain installs the pinned client once (npm ci) when node_modules is
// missing, and fails loudly when Node is absent: a skipped end-to-end suite
// would report a browser contract as checked when it was not.
func TestMain(m *testing.M) {
	if _, err := sioclient.Setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
