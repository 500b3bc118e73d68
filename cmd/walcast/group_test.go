package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/internal/redistest"
	"github.com/walcast/walcast/relay"
)

// TestGroupCommitThroughRedis: transactions that pile up while walcast is
// paused reach Redis in groups (several transactions per script call), and
// every client gets every event once, in commit order.
func TestGroupCommitThroughRedis(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	dsn := newDB(t)
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'A', 'B')`)
	in := startWalcast(t, dsn, serveOpts{env: []string{"REDIS_URL=" + rs.URL()}})
	c := connect(t, in, mint(t, 9001, "adm", "super_admin", nil, time.Hour))

	// Paused, walcast reads nothing; the transactions wait in the WAL and
	// arrive together after SIGCONT.
	if err := in.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const txs, rows = 60, 30
	for i := 0; i < txs; i++ {
		pgtest.Exec(t, dsn, `INSERT INTO donations (member_id, amount, fund) SELECT 'm-1', `+strconv.Itoa(i*rows)+` + g, 'Tithes' FROM generate_series(1, `+strconv.Itoa(rows)+`) g`)
	}
	if err := in.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	got := waitEvents(t, c, 0, "donation:update", txs*rows, 60*time.Second)
	for i, l := range got {
		var p struct {
			Type string
			Data struct{ Amount string }
		}
		if err := json.Unmarshal(l.Args[0], &p); err != nil || p.Type != "CREATE" {
			t.Fatalf("event %d: %s", i, l.Args[0])
		}
		if want := strconv.Itoa(i+1) + ".00"; p.Data.Amount != want {
			t.Fatalf("event %d carries amount %s, want %s: events out of order, missing or repeated", i, p.Data.Amount, want)
		}
	}
	barrier(t, dsn, c, 0)
	if n := len(events(c, 0, "donation:update")); n != txs*rows {
		t.Fatalf("%d donation:update events, want exactly %d", n, txs*rows)
	}

	// The log says how the transactions were published.
	var groups, biggest int
	for _, m := range regexp.MustCompile(`msg="published to the stream" transactions=(\d+) entries=(\d+)`).FindAllStringSubmatch(in.logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		e, _ := strconv.Atoi(m[2])
		groups++
		biggest = max(biggest, n)
		if e > relay.MaxGroupEntries+rows {
			t.Errorf("one script call appended %d entries, over the %d bound plus one transaction", e, relay.MaxGroupEntries)
		}
	}
	if biggest < 2 {
		t.Errorf("no script call carried more than one transaction (%d calls): the backlog was not grouped", groups)
	}
	t.Logf("%d transactions of %d rows published in %d script calls (largest %d transactions)", txs, rows, groups, biggest)
}
