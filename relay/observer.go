package relay

import (
	"strings"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/route"
)

// Observer hears what the relay does, for metrics. Calls are made on the
// reader's goroutine and must be quick. Without one the relay counts
// nothing.
type Observer interface {
	// TransactionDecoded: the hub accepted one committed transaction
	// (counted once, however often it was read: a refused transaction is
	// read again).
	TransactionDecoded()
	// RowsDecoded: it carried n row changes of table (schema-qualified) by
	// op (insert, update, delete, truncate).
	RowsDecoded(table, op string, n int)
	// Published: the hub took took to accept transactions, or refused
	// them with err (they come again).
	Published(took time.Duration, err error)
	// EventEmitted: the hub accepted n events named event. A transaction
	// whose publish failed but reached Redis all the same is found
	// published when it comes again, and counted then; after a takeover,
	// the few the previous reader published but had not yet confirmed
	// are counted by both.
	EventEmitted(event string, n int)
	// ResyncSent: one of those events was a RESYNC notice for table, sent
	// for reason (route.ResyncTruncate, ...).
	ResyncSent(table, reason string)
}

// rowKey is a table and operation whose row changes are counted.
type rowKey struct {
	table string
	op    cdc.Op
}

// tally is what one routed transaction will count once accepted.
type tally struct {
	rows    []rowCount
	events  []eventCount
	resyncs []route.Emit // Table and Resync only
}

type rowCount struct {
	table, op string
	n         int
}

type eventCount struct {
	name string
	n    int
}

// countRow counts a change of the open transaction.
func (r *relay) countRow(c *cdc.Change) {
	switch c.Op {
	case cdc.OpResync:
		return
	case cdc.OpTruncate:
		for _, t := range c.Truncated {
			r.rows[rowKey{t.String(), c.Op}]++
		}
		return
	}
	r.rows[rowKey{c.Table.String(), c.Op}]++
}

// tallyRows moves the committed transaction's row counts into t.
func (r *relay) tallyRows(t *tally) {
	t.rows = t.rows[:0]
	for k, n := range r.rows {
		t.rows = append(t.rows, rowCount{k.table, strings.ToLower(k.op.String()), n})
	}
	clear(r.rows)
}

// tallyOf counts a staged transaction's events by name and notes its
// RESYNCs.
func tallyOf(emits []route.Emit, t *tally) {
	t.events, t.resyncs = t.events[:0], t.resyncs[:0]
next:
	for _, e := range emits {
		if !e.All && len(e.Rooms) == 0 {
			continue
		}
		if e.Resync != "" {
			t.resyncs = append(t.resyncs, route.Emit{Table: e.Table, Resync: e.Resync})
		}
		for i := range t.events {
			if t.events[i].name == e.Event {
				t.events[i].n++
				continue next
			}
		}
		t.events = append(t.events, eventCount{e.Event, 1})
	}
}

// reportAccepted reports the transactions the hub accepted, whether it
// delivered them or its fence found them published already.
func (r *relay) reportAccepted(accepted int) {
	for i := range min(accepted, len(r.tallies)) {
		r.obs.TransactionDecoded()
		for _, c := range r.tallies[i].rows {
			r.obs.RowsDecoded(c.table, c.op, c.n)
		}
		for _, e := range r.tallies[i].events {
			r.obs.EventEmitted(e.name, e.n)
		}
		for _, e := range r.tallies[i].resyncs {
			r.obs.ResyncSent(e.Table, e.Resync)
		}
	}
}
