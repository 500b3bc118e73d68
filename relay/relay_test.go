package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/route"
)

// fakeHub records what it is given; fail makes the next Publish fail, and
// fenced lists positions it answers as published already.
type fakeHub struct {
	groups bool
	fail   error
	fenced map[uint64]bool
	calls  [][]broadcast.Transaction
}

func (h *fakeHub) GroupsTransactions() bool { return h.groups }

func (h *fakeHub) Publish(_ context.Context, txs []broadcast.Transaction) ([]bool, error) {
	if err := h.fail; err != nil {
		h.fail = nil
		return nil, err
	}
	// Keep a copy: the relay reuses its slices once a call returned.
	h.calls = append(h.calls, slices.Clone(txs))
	delivered := make([]bool, len(txs))
	for i, tx := range txs {
		delivered[i] = !h.fenced[tx.Position]
	}
	return delivered, nil
}

// events lists the event names and payloads of every published transaction.
func (h *fakeHub) events() []string {
	var out []string
	for _, call := range h.calls {
		for _, tx := range call {
			for _, e := range tx.Events {
				out = append(out, e.Name+" "+string(e.Payload))
			}
		}
	}
	return out
}

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func newRelay(t *testing.T, hub *fakeHub, cfg route.Config) cdc.Consumer {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	router, err := route.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Hub: hub, Router: router, Logger: log, Now: func() time.Time { return now }})
}

// col renders a column the way cdc does: its JSON token and its text.
func col(name, jsonTok string) cdc.Column {
	c := cdc.Column{Name: name, JSON: []byte(jsonTok)}
	var s string
	switch {
	case jsonTok == "null":
		c.Null = true
	case json.Unmarshal([]byte(jsonTok), &s) == nil:
		c.Text = []byte(s)
	default:
		c.Text = []byte(jsonTok)
	}
	return c
}

func change(table string, op cdc.Op, row ...cdc.Column) *cdc.Change {
	c := &cdc.Change{Table: cdc.Table{Schema: "public", Name: table}, Op: op}
	if op == cdc.OpDelete {
		c.Old = row
	} else {
		c.New = row
	}
	return c
}

func member(id, name string) *cdc.Change {
	return change("members", cdc.OpUpdate, col("id", `"`+id+`"`), col("first_name", `"`+name+`"`))
}

// commit feeds one transaction ending at end; the plain Commit, or
// CommitDeferred for a group when deferred.
func commit(t *testing.T, c cdc.Consumer, end uint64, deferred bool, changes ...*cdc.Change) error {
	t.Helper()
	ctx := context.Background()
	tx := cdc.TxInfo{CommitLSN: pglogrepl.LSN(end - 1), EndLSN: pglogrepl.LSN(end)}
	if err := c.Begin(ctx, tx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range changes {
		if err := c.Change(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if deferred {
		return c.(cdc.GroupCommitter).CommitDeferred(ctx, tx)
	}
	return c.Commit(ctx, tx)
}

func TestOneTransactionOnePublish(t *testing.T) {
	hub := &fakeHub{}
	c := newRelay(t, hub, route.GraceGiver())
	if _, ok := c.(cdc.GroupCommitter); ok {
		t.Fatal("a hub that does not group got a group committer")
	}
	err := commit(t, c, 0x10, false,
		change("members", cdc.OpInsert, col("id", `"m1"`), col("first_name", `"Ann"`)),
		change("users", cdc.OpUpdate, col("id", "3"), col("role", `"viewer"`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(hub.calls) != 1 || len(hub.calls[0]) != 1 {
		t.Fatalf("publish calls %v, want one with one transaction", hub.calls)
	}
	tx := hub.calls[0][0]
	if tx.Position != 0x10 {
		t.Errorf("position %X, want the END LSN 10", tx.Position)
	}
	wantRooms := []string{"role:super_admin", "role:admin", "role:manager", "role:data_entry", "member:m1"}
	if len(tx.Events) != 2 || tx.Events[0].Name != "member:update" || !slices.Equal(tx.Events[0].Rooms, wantRooms) ||
		string(tx.Events[0].Payload) != `{"type":"CREATE","data":{"id":"m1","first_name":"Ann"}}` ||
		tx.Events[1].Name != "user:update" || string(tx.Events[1].Payload) != `{"type":"UPDATE","data":{"id":3,"role":"viewer"}}` {
		t.Errorf("events %s", hub.events())
	}
	// The users row also cuts the user's sockets of other roles.
	if len(tx.Revocations) != 1 || !slices.Equal(tx.Revocations[0].Rooms, []string{"user:3"}) || !slices.Equal(tx.Revocations[0].Except, []string{"role:viewer"}) {
		t.Errorf("revocations %+v", tx.Revocations)
	}
}

// TestEventsWithoutAudienceAreDropped: a row whose audience rooms all come
// out empty (a NULL column) reaches nobody, and is not published.
func TestEventsWithoutAudienceAreDropped(t *testing.T) {
	cfg, err := route.Parse([]byte("tables:\n  notes:\n    event: note:update\n    key: [id]\n    audience: [\"member:{member_id}\"]\nusers:\n  disabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	hub := &fakeHub{}
	c := newRelay(t, hub, cfg)
	if err := commit(t, c, 0x10, false, change("notes", cdc.OpInsert, col("id", "1"), col("member_id", "null")), change("notes", cdc.OpInsert, col("id", "2"), col("member_id", `"m2"`))); err != nil {
		t.Fatal(err)
	}
	if got := hub.events(); len(got) != 1 || got[0] != `note:update {"type":"CREATE","data":{"id":2,"member_id":"m2"}}` {
		t.Fatalf("events %q, want only the row with a member", got)
	}
}

// TestRevocationRooms: which sockets a revocation names for each kind of
// account change.
func TestRevocationRooms(t *testing.T) {
	cases := []struct {
		name   string
		change route.UserChange
		ok     bool
		why    string
		except []string
	}{
		{"deleted", route.UserChange{ID: "7", Deleted: true, Role: "admin", RoleKnown: true}, true, "user deleted", nil},
		{"locked out", route.UserChange{ID: "7", Role: "admin", RoleKnown: true, LockedUntil: now.Add(time.Minute)}, true, "user locked out", nil},
		{"lock expired, role known", route.UserChange{ID: "7", Role: "admin", RoleKnown: true, LockedUntil: now.Add(-time.Minute)}, true, "role changed", []string{"role:admin"}},
		{"role emptied: every socket", route.UserChange{ID: "7", RoleKnown: true}, true, "role changed", nil},
		{"nothing known", route.UserChange{ID: "7"}, false, "", nil},
	}
	for _, tc := range cases {
		rev, why, ok := revocation(tc.change, now)
		if ok != tc.ok || why != tc.why || !slices.Equal(rev.Except, tc.except) {
			t.Errorf("%s: %+v %q %v, want except %v %q %v", tc.name, rev, why, ok, tc.except, tc.why, tc.ok)
		}
		if ok && (!slices.Equal(rev.Rooms, []string{"user:7"}) || !rev.Close) {
			t.Errorf("%s: rooms %v close %v, want [user:7] closing the connections", tc.name, rev.Rooms, rev.Close)
		}
	}
}

// TestFailedPublishIsForgotten: a transaction the hub did not accept comes
// again, and is then routed as new (its UPDATE is not taken for
// unchanged); an accepted one is remembered.
func TestFailedPublishIsForgotten(t *testing.T) {
	hub := &fakeHub{fail: errors.New("redis down")}
	c := newRelay(t, hub, route.GraceGiver())
	if err := commit(t, c, 0x10, false, member("m1", "Ann")); err == nil {
		t.Fatal("Commit succeeded while the hub failed")
	}
	if err := commit(t, c, 0x10, false, member("m1", "Ann")); err != nil {
		t.Fatal(err)
	}
	if err := commit(t, c, 0x20, false, member("m1", "Ann")); err != nil {
		t.Fatal(err)
	}
	want := []string{`member:update {"type":"UPDATE","data":{"id":"m1","first_name":"Ann"}}`}
	if got := hub.events(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want the redelivered UPDATE once and the unchanged one dropped", got)
	}
}

// TestBeginWhileOpenForgets: a Begin before the open transaction
// committed (the connection dropped) forgets what that transaction
// remembered.
func TestBeginWhileOpenForgets(t *testing.T) {
	hub := &fakeHub{}
	c := newRelay(t, hub, route.GraceGiver())
	ctx := context.Background()
	_ = c.Begin(ctx, cdc.TxInfo{EndLSN: 0x10})
	_ = c.Change(ctx, member("m1", "Ann"))
	if err := commit(t, c, 0x10, false, member("m1", "Ann")); err != nil {
		t.Fatal(err)
	}
	if got := hub.events(); len(got) != 1 {
		t.Fatalf("events %q, want the UPDATE sent", got)
	}
}

func TestGroupCommit(t *testing.T) {
	hub := &fakeHub{groups: true, fenced: map[uint64]bool{0x20: true}}
	c := newRelay(t, hub, route.GraceGiver())
	gc, ok := c.(cdc.GroupCommitter)
	if !ok {
		t.Fatal("a grouping hub got no group committer")
	}
	for i, end := range []uint64{0x10, 0x20, 0x30} {
		if err := commit(t, c, end, true, member(fmt.Sprint("m", i), "Ann")); err != nil {
			t.Fatal(err)
		}
	}
	if len(hub.calls) != 0 {
		t.Fatalf("published before Flush: %v", hub.calls)
	}
	if err := gc.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(hub.calls) != 1 || len(hub.calls[0]) != 3 {
		t.Fatalf("publish calls %v, want one with three transactions", hub.calls)
	}
	for i, tx := range hub.calls[0] {
		if want := uint64(0x10 * (i + 1)); tx.Position != want {
			t.Errorf("transaction %d at %X, want %X", i, tx.Position, want)
		}
	}

	// Reset drops what was deferred, and what it remembered.
	if err := commit(t, c, 0x40, true, member("m9", "Zoe")); err != nil {
		t.Fatal(err)
	}
	gc.Reset()
	if err := gc.Flush(context.Background()); err != nil || len(hub.calls) != 1 {
		t.Fatalf("Flush after Reset published %v (%v)", hub.calls[1:], err)
	}
	if err := commit(t, c, 0x40, false, member("m9", "Zoe")); err != nil || len(hub.calls) != 2 || len(hub.events()) != 4 {
		t.Fatalf("the reset transaction's UPDATE did not come through again: %q (%v)", hub.events(), err)
	}
}

// TestGroupFlushesPastMaxEntries: a backlog is published in calls of about
// MaxGroupEntries entries, never one call for all of it.
func TestGroupFlushesPastMaxEntries(t *testing.T) {
	hub := &fakeHub{groups: true}
	c := newRelay(t, hub, route.GraceGiver())
	const rows = 300 // under flood_rows: every row is an event
	for tx := range 10 {
		var changes []*cdc.Change
		for i := range rows {
			changes = append(changes, change("members", cdc.OpInsert, col("id", fmt.Sprintf(`"m%d-%d"`, tx, i))))
		}
		if err := commit(t, c, uint64(tx+1)*0x10, true, changes...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.(cdc.GroupCommitter).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, call := range hub.calls {
		entries := 0
		for _, tx := range call {
			entries += len(tx.Events) + len(tx.Revocations)
		}
		total += entries
		if entries > MaxGroupEntries+rows {
			t.Errorf("call %d carried %d entries, over %d plus one transaction", i, entries, MaxGroupEntries)
		}
	}
	if total != 10*rows || len(hub.calls) < 3 {
		t.Errorf("%d entries in %d calls, want %d in at least 3", total, len(hub.calls), 10*rows)
	}
}

// countingObserver records what a relay reports.
type countingObserver struct {
	transactions int
	rows         map[string]int // "table op"
	events       map[string]int
	resyncs      []string // "table reason"
	published    int
	refused      int
}

func newCountingObserver() *countingObserver {
	return &countingObserver{rows: map[string]int{}, events: map[string]int{}}
}

func (o *countingObserver) TransactionDecoded()                 { o.transactions++ }
func (o *countingObserver) RowsDecoded(table, op string, n int) { o.rows[table+" "+op] += n }
func (o *countingObserver) EventEmitted(event string, n int)    { o.events[event] += n }
func (o *countingObserver) ResyncSent(table, reason string) {
	o.resyncs = append(o.resyncs, table+" "+reason)
}
func (o *countingObserver) Published(took time.Duration, err error) {
	if took < 0 {
		panic("negative publish time")
	}
	if err != nil {
		o.refused++
	} else {
		o.published++
	}
}

// TestObserverCounts: transactions, rows by table and operation, events
// and RESYNCs are counted once the hub accepted them (a refused
// transaction once, when it came again and was accepted; one the fence
// found published already too: its first publish may have failed only
// on the way back).
func TestObserverCounts(t *testing.T) {
	for _, groups := range []bool{false, true} {
		t.Run(fmt.Sprint("groups=", groups), func(t *testing.T) {
			cfg := route.GraceGiver()
			cfg.FloodRows = 3
			hub := &fakeHub{groups: groups, fenced: map[uint64]bool{0x30: true}}
			log := slog.New(slog.DiscardHandler)
			router, err := route.New(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			obs := newCountingObserver()
			c := New(Config{Hub: hub, Router: router, Logger: log, Now: func() time.Time { return now }, Observer: obs})
			flush := func(err error) {
				t.Helper()
				if groups && err == nil {
					err = c.(cdc.GroupCommitter).Flush(context.Background())
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			flush(commit(t, c, 0x10, groups,
				change("members", cdc.OpInsert, col("id", `"m1"`)),
				change("members", cdc.OpInsert, col("id", `"m2"`)),
				change("users", cdc.OpUpdate, col("id", "3"), col("role", `"viewer"`)),
			))
			// Four donations: over flood_rows, one RESYNC.
			var donations []*cdc.Change
			for i := range 4 {
				donations = append(donations, change("donations", cdc.OpUpdate, col("id", fmt.Sprint(i)), col("member_id", `"m1"`)))
			}
			flush(commit(t, c, 0x20, groups, donations...))
			// Fenced: published already, accepted all the same.
			flush(commit(t, c, 0x30, groups, change("members", cdc.OpDelete, col("id", `"m1"`))))
			// Refused, then delivered when it comes again.
			hub.fail = errors.New("redis down")
			if err := commit(t, c, 0x40, false, change("members", cdc.OpUpdate, col("id", `"m2"`), col("first_name", `"Bo"`))); err == nil {
				t.Fatal("Commit succeeded while the hub failed")
			}
			flush(commit(t, c, 0x40, groups, change("members", cdc.OpUpdate, col("id", `"m2"`), col("first_name", `"Bo"`))))
			truncate := &cdc.Change{Op: cdc.OpTruncate, Truncated: []cdc.Table{{Schema: "public", Name: "members"}}}
			flush(commit(t, c, 0x50, groups, truncate))

			if obs.transactions != 5 {
				t.Errorf("%d transactions counted, want 5 (the refused one once)", obs.transactions)
			}
			wantRows := map[string]int{"public.members insert": 2, "public.users update": 1, "public.donations update": 4,
				"public.members delete": 1, "public.members update": 1, "public.members truncate": 1}
			if !maps.Equal(obs.rows, wantRows) {
				t.Errorf("rows %v, want %v", obs.rows, wantRows)
			}
			wantEvents := map[string]int{"member:update": 5, "user:update": 1, "donation:update": 1}
			if !maps.Equal(obs.events, wantEvents) {
				t.Errorf("events %v, want %v (two creates, the fenced delete, the redelivered update once and the truncate's RESYNC)", obs.events, wantEvents)
			}
			if want := []string{"public.donations bulk", "public.members truncate"}; !slices.Equal(obs.resyncs, want) {
				t.Errorf("resyncs %v, want %v", obs.resyncs, want)
			}
			if obs.refused != 1 || obs.published == 0 {
				t.Errorf("publishes: %d accepted, %d refused; want some and one", obs.published, obs.refused)
			}
		})
	}
}

// TestAccountState: each transaction's account changes travel as its
// State, exactly what the rows carried, for every instance's handshake
// check.
func TestAccountState(t *testing.T) {
	hub := &fakeHub{}
	c := newRelay(t, hub, route.GraceGiver())
	if err := commit(t, c, 0x10, false,
		change("users", cdc.OpUpdate, col("id", "3"), col("role", `"viewer"`), col("member_id", `"m-3"`), col("locked_until", `"2099-01-01T00:00:00.000Z"`)),
		change("users", cdc.OpDelete, col("id", "4")),
		member("m1", "Ann"),
	); err != nil {
		t.Fatal(err)
	}
	if err := commit(t, c, 0x20, false, member("m1", "Bea")); err != nil {
		t.Fatal(err)
	}
	if len(hub.calls) != 2 || hub.calls[1][0].State != nil {
		t.Fatalf("calls %+v: want the second transaction without state", hub.calls)
	}
	tx := hub.calls[0][0]
	got, err := accounts.Decode(tx.State)
	if err != nil {
		t.Fatalf("state %s: %v", tx.State, err)
	}
	// The built-in profile reads no lock-out column: locked_until is not sent.
	if len(got) != 2 || got[0].ID != "3" || *got[0].Role != "viewer" || *got[0].MemberID != "m-3" || got[0].LockedUntil != nil ||
		got[1].ID != "4" || !got[1].Deleted {
		t.Fatalf("state %s", tx.State)
	}
	if len(tx.Revocations) != 2 || !tx.Revocations[0].Close {
		t.Fatalf("revocations %+v, want user 3's other roles and user 4, closing connections", tx.Revocations)
	}
}
