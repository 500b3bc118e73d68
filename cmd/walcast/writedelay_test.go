package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/pgtest"
)

// TestWriteDelaySetting: with --write-delay an idle socket's event leaves
// that long after it was emitted (the writes wait for more events to share
// one system call). Only the lower bound is checked: a loaded machine can
// only add time.
func TestWriteDelaySetting(t *testing.T) {
	dsn := newDB(t)
	const delay = 400 * time.Millisecond
	in := startWalcast(t, dsn, serveOpts{args: []string{"--write-delay", delay.String()}})
	c := connect(t, in, mint(t, 9001, "adm", "super_admin", nil, time.Hour))
	for i := 1; i <= 3; i++ {
		time.Sleep(2 * delay) // the socket is idle again
		start := time.Now()
		pgtest.Exec(t, dsn, fmt.Sprintf(`INSERT INTO settings (name) VALUES ('delay-%d') ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name`, i))
		waitEvents(t, c, 0, "settings:update", i, 30*time.Second)
		if took := time.Since(start); took < delay-50*time.Millisecond {
			t.Fatalf("event %d arrived %v after its commit, before the %v write delay: --write-delay is not applied", i, took, delay)
		}
	}
}
