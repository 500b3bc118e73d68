package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

func TestParseRates(t *testing.T) {
	got, err := parseRates("100, 500,2500.5")
	if err != nil || len(got) != 3 || got[0] != 100 || got[1] != 500 || got[2] != 2500.5 {
		t.Fatalf("parseRates = %v, %v; want [100 500 2500.5]", got, err)
	}
	for _, bad := range []string{"", "0", "-5", "x", "100,"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("parseRates(%q): want an error", bad)
		}
	}
}

func TestSeqOf(t *testing.T) {
	tag := []byte(`"notes":"r3:`)
	frame := []byte(`42["donation:update",{"type":"CREATE","data":{"id":7,"notes":"r3:1234","fund":"bench"}},"1-0"]`)
	if n, ok := seqOf(frame, tag); !ok || n != 1234 {
		t.Fatalf("seqOf = %d, %v; want 1234", n, ok)
	}
	for _, f := range []string{
		`42["donation:update",{"data":{"notes":"r2:5"}}]`, // another rung's event
		`42["donation:update",{"data":{"notes":"r3:x"}}]`,
		`42["donation:update",{"data":{"notes":"r3:5`, // cut short
		`2`,
	} {
		if n, ok := seqOf([]byte(f), tag); ok {
			t.Errorf("seqOf(%q) = %d: want no match", f, n)
		}
	}
	if _, ok := seqOf(frame, nil); ok {
		t.Error("seqOf with no tag (no rung yet) must not match")
	}
}

func TestParsePPIDAndProcStat(t *testing.T) {
	if pp, err := parsePPID([]byte("123 (post gres: (x)) S 77 123 123 0")); err != nil || pp != 77 {
		t.Fatalf("parsePPID = %d, %v; want 77", pp, err)
	}
	if _, err := parsePPID([]byte("123 postgres S")); err == nil {
		t.Fatal("parsePPID without ')': want an error")
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := parseProcStat([]byte("cpu  100 5 50 800 20 1 2 3 40 0\ncpu0 1 2 3 4 5\n"))
	if err != nil || busy != 161 || total != 981 {
		t.Fatalf("parseProcStat = %d, %d, %v; want busy 161 of 981 (guest not counted twice)", busy, total, err)
	}
	if _, _, err := parseProcStat([]byte("intr 1 2 3 4 5")); err == nil {
		t.Fatal("parseProcStat of a non-cpu line: want an error")
	}
	// The real files of this machine parse, and this process's parent is known.
	if _, _, err := machineCPU(); err != nil {
		t.Fatal(err)
	}
	if pp, err := parentOf(os.Getpid()); err != nil || pp != os.Getppid() {
		t.Fatalf("parentOf(self) = %d, %v; want %d", pp, err, os.Getppid())
	}
}

func TestRungVerdictsAndReport(t *testing.T) {
	ok := rung{target: 1000, batch: 1, duration: 10 * time.Second, txs: 10_000, rows: 10_000,
		wall: 10100 * time.Millisecond, drain: 100 * time.Millisecond, clients: 100, insts: 1,
		delivered: 1_000_000, want: 1_000_000, probeWant: 10_000,
		walcastCPU: []time.Duration{5 * time.Second}, redisCPU: 2020 * time.Millisecond,
		walsenderCPU: 1010 * time.Millisecond, walsenderPID: 42, machineBusy: 0.5, loadBefore: "1.0", loadAfter: "1.2"}
	ok.lags = make([]time.Duration, 10_000)
	for i := range ok.lags {
		ok.lags[i] = time.Duration(i) * time.Microsecond // p50 5 ms, p99 9.9 ms
	}
	if !ok.keptUp() {
		t.Fatalf("rung that delivered everything promptly: keptUp false (%s)", ok.limits())
	}
	if got := ok.lag(0.5); got != 4999*time.Microsecond {
		t.Errorf("p50 = %v, want 4.999ms", got)
	}
	if !strings.Contains(ok.limits(), "nearest ceiling: machine 50%") {
		t.Errorf("limits = %q, want the machine at 50%% as the nearest ceiling (redis 20%%, walsender 10%%)", ok.limits())
	}

	behind := ok
	behind.target, behind.delivered, behind.drain = 4000, 900_000, 15*time.Second
	behind.redisCPU = 9595 * time.Millisecond // 95% of one core
	if behind.keptUp() {
		t.Fatal("rung short of its offer and not drained: keptUp true")
	}
	for _, want := range []string{"writer short of offer", "NOT DRAINED", "nearest ceiling: redis 95%"} {
		if !strings.Contains(behind.limits(), want) {
			t.Errorf("limits = %q, want %q", behind.limits(), want)
		}
	}
	if !strings.Contains(behind.limits(), "backlog after Redis") {
		t.Errorf("limits = %q: everything was in the stream at once (no publish drain), want the fan-out named", behind.limits())
	}
	behind.pubDrain = 14 * time.Second
	if !strings.Contains(behind.limits(), "backlog before Redis") {
		t.Errorf("limits = %q: the stream got the last event 14 s after the commit, want the reader named", behind.limits())
	}
	late := ok
	late.lags = []time.Duration{time.Millisecond, 2 * time.Second}
	late.probeWant = 2
	if late.keptUp() || !strings.Contains(late.limits(), "backlog") {
		t.Errorf("p99 of 2 s: keptUp %v, limits %q; want a backlog", late.keptUp(), late.limits())
	}

	var out bytes.Buffer
	reportLadder(&out, options{writers: 8, batch: 1, duration: 10 * time.Second}, []rung{ok, behind})
	for _, want := range []string{
		"C=100 clients on 1 instance(s)",
		"offered 1000 ev/s: kept up",
		"offered 4000 ev/s: FELL BEHIND",
		// 2.02 s of Redis CPU over 10,000 events = 202 µs/event, one core full at ~4950/s.
		"202.0",
		"4950",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestWriterPacesAndCommits runs the writer against a real PostgreSQL: it
// must commit about the offered rate over several connections, one commit
// time per transaction, and the rows must be there with their tags.
func TestWriterPacesAndCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	ctx := context.Background()
	if err := pg.CreateDatabase(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "w", sql.GraceGiverSchema+`; INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'Bench', 'Donor')`); err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 3} {
		w, err := dialWriter(ctx, pg.ConnString("w"), 3, batch)
		if err != nil {
			t.Fatal(err)
		}
		tag := "t" + string(rune('0'+batch))
		res, err := w.write(ctx, tag, 100, 2*time.Second)
		w.close()
		if err != nil {
			t.Fatal(err)
		}
		// 200 are offered; a loaded machine may slip a few past the window.
		if res.txs < 150 || res.txs > 200 || int64(len(res.commits)) != res.txs {
			t.Fatalf("batch %d: %d transactions, %d commit times; want 150..200 of 200 offered, one time each", batch, res.txs, len(res.commits))
		}
		for i, c := range res.commits {
			if c.Before(res.start) || c.After(res.last) {
				t.Fatalf("batch %d: commit %d at %v outside [%v, %v]", batch, i, c, res.start, res.last)
			}
		}
		conn, err := pgx.Connect(ctx, pg.ConnString("w"))
		if err != nil {
			t.Fatal(err)
		}
		var rows, distinct int64
		err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT notes) FROM donations WHERE notes LIKE $1`, tag+":%").Scan(&rows, &distinct)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rows != res.rows(batch) || distinct != res.txs {
			t.Fatalf("batch %d: %d rows with %d distinct tags in the table; the writer says %d rows in %d transactions", batch, rows, distinct, res.rows(batch), res.txs)
		}
	}
}
