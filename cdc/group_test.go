package cdc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// grouper is a GroupCommitter: CommitDeferred keeps a transaction pending,
// Flush makes the pending ones durable (or, while failFlushes > 0, refuses
// them and drops them, as the interface asks). The first Flush waits for
// gate to close when gate is set, so transactions pile up behind it.
type grouper struct {
	recorder
	gate        chan struct{}
	gateOnce    sync.Once
	held        chan TxInfo // the first transaction of the gated Flush
	failFlushes int

	gmu     sync.Mutex
	pending []txRecord
	durable []txRecord
	groups  []int // size of each successful Flush
	refused int
	resets  int
}

func newGrouper() *grouper {
	return &grouper{held: make(chan TxInfo, 1)}
}

func (g *grouper) CommitDeferred(_ context.Context, tx TxInfo) error {
	g.mu.Lock()
	open := g.open
	g.open = nil
	g.mu.Unlock()
	if open == nil {
		return errors.New("commit outside a transaction")
	}
	open.tx = tx
	g.gmu.Lock()
	g.pending = append(g.pending, *open)
	g.gmu.Unlock()
	return nil
}

func (g *grouper) Flush(ctx context.Context) error {
	if g.gate != nil {
		var wait bool
		g.gateOnce.Do(func() { wait = true })
		if wait {
			g.gmu.Lock()
			g.held <- g.pending[0].tx
			g.gmu.Unlock()
			select {
			case <-g.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	g.gmu.Lock()
	defer g.gmu.Unlock()
	if g.failFlushes > 0 && len(g.pending) > 1 {
		g.failFlushes--
		g.refused += len(g.pending)
		g.pending = nil
		return errors.New("store refused the group")
	}
	g.durable = append(g.durable, g.pending...)
	g.groups = append(g.groups, len(g.pending))
	g.pending = nil
	return nil
}

func (g *grouper) Reset() {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	g.pending = nil
	g.resets++
}

func (g *grouper) durableIDs() []string {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	var out []string
	for _, tx := range g.durable {
		for _, c := range tx.changes {
			if v, ok := colText(c.New, "id"); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func (g *grouper) lastDurable() pglogrepl.LSN {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	if len(g.durable) == 0 {
		return 0
	}
	return g.durable[len(g.durable)-1].tx.EndLSN
}

// TestGroupCommit: while a GroupCommitter's Flush is slow, the transactions
// committed meanwhile reach it as groups, one Flush each; nothing deferred
// is confirmed to PostgreSQL before its Flush returned; every transaction
// is made durable once, in order.
func TestGroupCommit(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	g := newGrouper()
	g.gate = make(chan struct{})
	startReader(t, cfg, g)

	w := newWriter()
	const nTx = 300
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first TxInfo
	werr := make(chan error, 1)
	go func() { werr <- w.write(ctx, dsn, nTx, 1, 0) }()
	select {
	case first = <-g.held:
	case <-time.After(60 * time.Second):
		t.Fatal("no Flush within 60s")
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	// Everything is committed and the first group is still unflushed: the
	// slot must not be confirmed at or past it, keepalives included.
	time.Sleep(2 * time.Second)
	if c := slotHealth(t, conn, cfg.Slot).Confirmed; c >= first.EndLSN {
		t.Fatalf("confirmed_flush_lsn %s while the transaction ending at %s waits in an unflushed group", c, first.EndLSN)
	}
	close(g.gate)

	committed := w.committedIDs()
	eventually(t, 60*time.Second, "every committed row made durable", func() bool {
		missing, _ := coverage(committed, g.durableIDs())
		return len(missing) == 0
	})
	ids := g.durableIDs()
	if _, dups := coverage(committed, ids); dups != 0 {
		t.Errorf("%d rows made durable twice", dups)
	}
	for i := 1; i < len(ids); i++ {
		a, _ := strconv.Atoi(ids[i-1])
		b, _ := strconv.Atoi(ids[i])
		if a >= b {
			t.Fatalf("out of order: %s before %s", ids[i-1], ids[i])
		}
	}
	g.gmu.Lock()
	groups := append([]int(nil), g.groups...)
	g.gmu.Unlock()
	biggest := 0
	for _, n := range groups {
		biggest = max(biggest, n)
		if n > maxGroup {
			t.Errorf("a group of %d transactions, over maxGroup %d", n, maxGroup)
		}
	}
	if biggest < 2 || len(groups) >= nTx {
		t.Errorf("%d transactions in %d flushes (largest %d): the ones read behind a slow Flush were not grouped", nTx, len(groups), biggest)
	}
	last := g.lastDurable()
	eventually(t, 30*time.Second, "confirmed_flush_lsn to reach the last flushed transaction", func() bool {
		return slotHealth(t, conn, cfg.Slot).Confirmed >= last
	})
	t.Logf("%d transactions in %d flushes, largest group %d", nTx, len(groups), biggest)
}

// TestGroupFlushErrorRedelivers: a refused Flush drops its whole group; the
// reader reconnects and the group's transactions come again, while those
// flushed before are not repeated.
func TestGroupFlushErrorRedelivers(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	g := newGrouper()
	g.gate = make(chan struct{})
	g.failFlushes = 1
	rr := startReader(t, cfg, g)

	w := newWriter()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.write(ctx, dsn, 1, 1, 0); err != nil { // a group of one: flushed
		t.Fatal(err)
	}
	select {
	case <-g.held:
	case <-time.After(60 * time.Second):
		t.Fatal("no Flush within 60s")
	}
	// The gated Flush holds transaction 1; 2..100 queue up behind it and
	// reach the next Flush together, which is refused.
	if err := w.write(ctx, dsn, 99, 1, 0); err != nil {
		t.Fatal(err)
	}
	// Only transactions the reader has already received are grouped: the
	// gate opens once the walsender has sent them all (on a loaded
	// machine it may still be sending when the last commit returns).
	var end pglogrepl.LSN
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&end); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the walsender to send every transaction", func() bool {
		var sent pglogrepl.LSN
		err := conn.QueryRow(ctx, `SELECT coalesce(r.sent_lsn, '0/0')::text FROM pg_replication_slots s
			LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, cfg.Slot).Scan(&sent)
		return err == nil && sent >= end
	})
	time.Sleep(100 * time.Millisecond) // and the reader's receiver has read them off the socket
	close(g.gate)

	committed := w.committedIDs()
	eventually(t, 90*time.Second, "every committed row made durable", func() bool {
		missing, _ := coverage(committed, g.durableIDs())
		return len(missing) == 0
	})
	g.gmu.Lock()
	refused, resets := g.refused, g.resets
	g.gmu.Unlock()
	if refused < 2 {
		t.Fatalf("the refused Flush held %d transactions, want a group", refused)
	}
	if _, dups := coverage(committed, g.durableIDs()); dups != 0 {
		t.Errorf("%d rows made durable twice: only the refused group may come again", dups)
	}
	if resets != 1 {
		t.Errorf("Reset called %d times, want once (the session that ended with a refused group)", resets)
	}
	if st := rr.r.Status(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "store refused the group") {
		t.Errorf("last error %v, want the refused flush", st.LastError)
	}
}
