package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/pgtest"
)

// srv is the PostgreSQL shared by this package's tests (TLS enabled so the
// TLS test can use it; plain connections use sslmode=disable). Tests that
// restart or reconfigure PostgreSQL start their own.
var srv *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{TLS: true}, &srv) }

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// newDB creates a database with schema and returns its DSN and a
// connection for the test's writes.
func newDB(t *testing.T, s *pgtest.Server, schema string) (string, *pgx.Conn) {
	t.Helper()
	dsn := s.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if schema != "" {
		if _, err := conn.Exec(ctx, schema); err != nil {
			t.Fatalf("schema: %v", err)
		}
	}
	return dsn, conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func currentLSN(t *testing.T, conn *pgx.Conn) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func testConfig(t *testing.T, dsn string, tables ...string) Config {
	t.Helper()
	// Slot names are cluster-wide: one per test database.
	name := pgtest.DatabaseName(dsn)
	cfg := Config{
		ConnString:     dsn,
		Slot:           name,
		Publication:    "walcast",
		StatusInterval: 200 * time.Millisecond,
		StandbyRetry:   300 * time.Millisecond,
		MaxBackoff:     time.Second,
		Logger:         testLogger(t),
	}
	for _, s := range tables {
		spec, err := ParseTableSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Tables = append(cfg.Tables, spec)
	}
	return cfg
}

// cleanupSlot drops the test's slot at the end so that it does not pin WAL
// on the shared server.
func cleanupSlot(t *testing.T, cfg Config) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := Teardown(ctx, cfg, true); err != nil {
			t.Logf("teardown: %v", err)
		}
	})
}

func mustSetup(t *testing.T, cfg Config) SetupResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	cleanupSlot(t, cfg)
	return res
}

// running is a Reader.Run in the background.
type running struct {
	r      *Reader
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

func startReader(t *testing.T, cfg Config, c Consumer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{r: NewReader(cfg), cancel: cancel, errc: make(chan error, 1)}
	go func() { rr.errc <- rr.r.Run(ctx, c) }()
	t.Cleanup(func() { rr.stop() })
	return rr
}

// stop cancels Run and returns its result.
func (rr *running) stop() error {
	rr.once.Do(func() {
		rr.cancel()
		select {
		case rr.err = <-rr.errc:
		case <-time.After(30 * time.Second):
			rr.err = errors.New("reader did not stop within 30s")
		}
	})
	return rr.err
}

// waitErr waits for Run to return by itself.
func (rr *running) waitErr(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-rr.errc:
		rr.once.Do(func() { rr.err = err })
		return err
	case <-time.After(timeout):
		t.Fatalf("reader still running after %s", timeout)
		return nil
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type txRecord struct {
	tx      TxInfo
	changes []*Change
}

// recorder is a Consumer keeping every committed transaction. commitHook,
// when set, runs before a Commit is accepted; its error refuses it.
type recorder struct {
	mu         sync.Mutex
	committed  []txRecord
	open       *txRecord
	partials   int // Begins that replaced an uncommitted transaction
	commitHook func(ctx context.Context, tx TxInfo) error
}

func (r *recorder) Begin(_ context.Context, tx TxInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open != nil {
		r.partials++
	}
	r.open = &txRecord{tx: tx}
	return nil
}

func (r *recorder) Change(_ context.Context, c *Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		return errors.New("change outside a transaction")
	}
	r.open.changes = append(r.open.changes, c)
	return nil
}

func (r *recorder) Commit(ctx context.Context, tx TxInfo) error {
	if r.commitHook != nil {
		if err := r.commitHook(ctx, tx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		return errors.New("commit outside a transaction")
	}
	r.open.tx = tx
	r.committed = append(r.committed, *r.open)
	r.open = nil
	return nil
}

func (r *recorder) txs() []txRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]txRecord(nil), r.committed...)
}

func (r *recorder) numTx() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.committed)
}

// ids returns the "id" column text of every committed change, in order.
func (r *recorder) ids() []string {
	var out []string
	for _, tx := range r.txs() {
		for _, c := range tx.changes {
			if v, ok := colText(c.New, "id"); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func colText(cols []Column, name string) (string, bool) {
	for _, c := range cols {
		if c.Name == name {
			return string(c.Text), true
		}
	}
	return "", false
}

func colNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ",")
}

// checkTxShape asserts what every delivered transaction must satisfy.
func checkTxShape(t *testing.T, txs []txRecord) {
	t.Helper()
	var prev pglogrepl.LSN
	for i, rec := range txs {
		tx := rec.tx
		if tx.CommitLSN == 0 || tx.EndLSN <= tx.CommitLSN || tx.XID == 0 {
			t.Errorf("tx %d: bad TxInfo %+v", i, tx)
		}
		if tx.CommitLSN <= prev {
			t.Errorf("tx %d: commit LSN %s not after previous %s", i, tx.CommitLSN, prev)
		}
		prev = tx.CommitLSN
		if d := time.Since(tx.CommitTime); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("tx %d: commit time %s", i, tx.CommitTime)
		}
		for j, c := range rec.changes {
			if c.Position != j {
				t.Errorf("tx %d change %d: position %d", i, j, c.Position)
			}
			if c.Tx.XID != tx.XID || c.Tx.CommitLSN != tx.CommitLSN || !c.Tx.CommitTime.Equal(tx.CommitTime) {
				t.Errorf("tx %d change %d: Tx %+v, transaction %+v", i, j, c.Tx, tx)
			}
		}
	}
}

func slotHealth(t *testing.T, conn *pgx.Conn, slot string) SlotHealth {
	t.Helper()
	h, err := QuerySlotHealth(context.Background(), conn, slot)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStreamChanges(t *testing.T) {
	dsn, conn := newDB(t, srv, `
		CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
		CREATE TABLE other (id int PRIMARY KEY);
		CREATE TABLE unpublished (id int PRIMARY KEY);`)
	cfg := testConfig(t, dsn, "items", "public.other")
	res := mustSetup(t, cfg)
	if !res.PublicationCreated || !res.SlotCreated || res.ResyncPending || res.SystemID == "" {
		t.Fatalf("first setup: %+v", res)
	}
	if res2 := mustSetup(t, cfg); res2.PublicationCreated || res2.SlotCreated {
		t.Fatalf("second setup is not idempotent: %+v", res2)
	}

	rec := &recorder{}
	rr := startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', 2); INSERT INTO other VALUES (1); INSERT INTO unpublished VALUES (1)")
	mustExec(t, conn, "UPDATE items SET name = 'a2' WHERE id = 1")
	mustExec(t, conn, "UPDATE items SET id = 10 WHERE id = 2")
	mustExec(t, conn, "DELETE FROM items WHERE id = 1")
	mustExec(t, conn, "TRUNCATE other")
	eventually(t, 30*time.Second, "5 transactions", func() bool { return rec.numTx() >= 5 })
	txs := rec.txs()
	if len(txs) != 5 {
		t.Fatalf("got %d transactions, want 5", len(txs))
	}
	checkTxShape(t, txs)

	type want struct {
		table, op, newID, oldID string
	}
	wants := [][]want{
		{{"public.items", "INSERT", "1", ""}, {"public.items", "INSERT", "2", ""}, {"public.other", "INSERT", "1", ""}},
		{{"public.items", "UPDATE", "1", ""}},
		{{"public.items", "UPDATE", "10", "2"}},
		{{"public.items", "DELETE", "", "1"}},
		{{"public.other", "TRUNCATE", "", ""}},
	}
	for i, w := range wants {
		if len(txs[i].changes) != len(w) {
			t.Errorf("tx %d: %d changes, want %d", i, len(txs[i].changes), len(w))
			continue
		}
		for j, wc := range w {
			c := txs[i].changes[j]
			newID, _ := colText(c.New, "id")
			oldID, _ := colText(c.Old, "id")
			if (c.Op != OpTruncate && c.Table.String() != wc.table) || c.Op.String() != wc.op || newID != wc.newID || oldID != wc.oldID {
				t.Errorf("tx %d change %d: %s %s new id %q old id %q, want %+v", i, j, c.Table, c.Op, newID, oldID, wc)
			}
			for _, col := range c.Old {
				if !col.IsKey {
					t.Errorf("tx %d change %d: old tuple has non-key column %s under the default identity", i, j, col.Name)
				}
			}
		}
	}
	if c := txs[1].changes[0]; c.Old != nil {
		t.Errorf("update without key change carried an old tuple: %+v", c.Old)
	}
	if name, _ := colText(txs[1].changes[0].New, "name"); name != "a2" {
		t.Errorf("updated name %q", name)
	}
	if tr := txs[4].changes[0].Truncated; len(tr) != 1 || tr[0] != (Table{"public", "other"}) {
		t.Errorf("truncated %v", tr)
	}

	// The last accepted transaction is confirmed to PostgreSQL.
	last := txs[4].tx.EndLSN
	eventually(t, 10*time.Second, "confirmed_flush_lsn to reach the last END LSN", func() bool {
		return slotHealth(t, conn, cfg.Slot).Confirmed >= last
	})
	h := slotHealth(t, conn, cfg.Slot)
	if !h.Exists || !h.Active || h.WALStatus != "reserved" || h.RetainedBytes <= 0 || h.SafeWALSize != nil {
		t.Errorf("slot health %+v", h)
	}
	st := rr.r.Status()
	if st.State != StateLeader || st.LastAccepted.IsZero() || st.Confirmed < last || st.LastStatusSent.IsZero() {
		t.Errorf("reader status %+v", st)
	}
	if err := rr.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := rr.r.State(); got != StateStopped {
		t.Errorf("state after stop: %s", got)
	}
}

func TestDDLAndToastEndToEnd(t *testing.T) {
	dsn, conn := newDB(t, srv, `
		CREATE TABLE docs (id int PRIMARY KEY, body text, n int);
		ALTER TABLE docs ALTER body SET STORAGE EXTERNAL;
		CREATE TABLE fdocs (id int PRIMARY KEY, body text, n int);
		ALTER TABLE fdocs ALTER body SET STORAGE EXTERNAL;
		ALTER TABLE fdocs REPLICA IDENTITY FULL;`)
	cfg := testConfig(t, dsn, "docs", "fdocs")
	mustSetup(t, cfg)
	rec := &recorder{}
	startReader(t, cfg, rec)

	big := strings.Repeat("x", 10000) // stored out of line (EXTERNAL, > 2 kB)
	mustExec(t, conn, "INSERT INTO docs VALUES (1, repeat('x', 10000), 1); INSERT INTO fdocs VALUES (1, repeat('x', 10000), 1)")
	mustExec(t, conn, "UPDATE docs SET n = 2; UPDATE fdocs SET n = 2")
	mustExec(t, conn, `BEGIN;
		INSERT INTO docs VALUES (3, 'a', 1);
		ALTER TABLE docs ADD COLUMN extra text DEFAULT 'e';
		INSERT INTO docs VALUES (4, 'b', 1, 'z');
		ALTER TABLE docs DROP COLUMN n;
		INSERT INTO docs VALUES (5, 'c', 'y');
		COMMIT`)
	eventually(t, 30*time.Second, "3 transactions", func() bool { return rec.numTx() >= 3 })
	txs := rec.txs()
	checkTxShape(t, txs)

	upd := txs[1].changes
	if len(upd) != 2 {
		t.Fatalf("update tx: %d changes", len(upd))
	}
	if _, ok := colText(upd[0].New, "body"); ok || len(upd[0].Unchanged) != 1 || upd[0].Unchanged[0] != "body" {
		t.Errorf("default identity: unchanged TOAST must be left out and listed: new %s unchanged %v", colNames(upd[0].New), upd[0].Unchanged)
	}
	if n, _ := colText(upd[0].New, "n"); n != "2" {
		t.Errorf("docs n = %q", n)
	}
	if body, ok := colText(upd[1].New, "body"); !ok || body != big || len(upd[1].Unchanged) != 0 || !upd[1].OldIsFull {
		t.Errorf("FULL identity: unchanged TOAST must be filled from the old row: body %d bytes, unchanged %v, full %v", len(body), upd[1].Unchanged, upd[1].OldIsFull)
	}

	ddl := txs[2].changes
	wantCols := []string{"id,body,n", "id,body,n,extra", "id,body,extra"}
	if len(ddl) != len(wantCols) {
		t.Fatalf("DDL tx: %d changes", len(ddl))
	}
	for i, w := range wantCols {
		if got := colNames(ddl[i].New); got != w {
			t.Errorf("DDL tx change %d columns %s, want %s", i, got, w)
		}
	}
	if extra, _ := colText(ddl[2].New, "extra"); extra != "y" {
		t.Errorf("extra = %q", extra)
	}
}

func TestColumnListAndPublicationMismatch(t *testing.T) {
	dsn, conn := newDB(t, srv, `
		CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text);
		CREATE TABLE other (id int PRIMARY KEY);`)
	cfg := testConfig(t, dsn, "users(id,email)")
	mustSetup(t, cfg)
	rec := &recorder{}
	startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO users VALUES (1, 'a@b', 'secret')")
	eventually(t, 30*time.Second, "the insert", func() bool { return rec.numTx() >= 1 })
	if got := colNames(rec.txs()[0].changes[0].New); got != "id,email" {
		t.Errorf("published columns %s, want id,email (password_hash stays in the database)", got)
	}

	cases := []struct {
		name   string
		tables []string
		want   string
	}{
		{"table not published", []string{"users(id,email)", "other"}, "table public.other is not published"},
		{"different columns", []string{"users"}, "publishes columns (id,email), configured (id,email,password_hash)"},
		{"extra table published", []string{"other"}, "table public.users is published but not configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Setup(context.Background(), testConfig(t, dsn, tc.tables...))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ALTER PUBLICATION") {
				t.Fatalf("setup error %v, want it to contain %q and the fix", err, tc.want)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	dsn, conn := newDB(t, srv, `
		CREATE TABLE ok (id int PRIMARY KEY, secret text);
		CREATE TABLE nokey (a int);
		CREATE TABLE full_t (id int PRIMARY KEY, x text, y text);
		ALTER TABLE full_t REPLICA IDENTITY FULL;
		CREATE TABLE nothing_t (id int PRIMARY KEY);
		ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
		CREATE TABLE uniq (id int NOT NULL, v text);
		CREATE UNIQUE INDEX uniq_id ON uniq (id);
		ALTER TABLE uniq REPLICA IDENTITY USING INDEX uniq_id;`)
	cases := []struct {
		name    string
		tables  []string
		want    string // substring of the error; "" = no error
		wantFix bool
	}{
		{"fine", []string{"ok(id,secret)", "full_t", "uniq"}, "", false},
		{"missing table", []string{"nope"}, "table public.nope does not exist", false},
		{"no primary key", []string{"nokey"}, "has no replica identity", true},
		{"identity nothing", []string{"nothing_t"}, "has no replica identity", true},
		{"full with column list", []string{"full_t(id,x)"}, "REPLICA IDENTITY FULL and a publication column list", true},
		{"column list without key", []string{"ok(secret)"}, "leaves out replica identity column(s) id", true},
		{"unknown column", []string{"ok(id,nope)"}, `has no column "nope"`, false},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			warnings, err := Preflight(ctx, conn, testConfig(t, dsn, tc.tables...))
			if len(warnings) != 1 || !strings.Contains(warnings[0], "max_slot_wal_keep_size") {
				t.Errorf("warnings %q, want the unlimited max_slot_wal_keep_size one", warnings)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var pe *PreflightError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a PreflightError containing %q", err, tc.want)
			}
			if tc.wantFix && pe.Problems[0].Fix == "" {
				t.Errorf("no fix SQL in %+v", pe.Problems[0])
			}
		})
	}

	// A refused table is left unpublished: the application keeps working.
	if _, err := Setup(ctx, testConfig(t, dsn, "nokey")); err == nil {
		t.Fatal("setup accepted a table without replica identity")
	}
	var pubs int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_publication").Scan(&pubs); err != nil || pubs != 0 {
		t.Fatalf("publications after refused setup: %d (%v)", pubs, err)
	}
	mustExec(t, conn, "INSERT INTO nokey VALUES (1); UPDATE nokey SET a = 2; DELETE FROM nokey")

	t.Run("role without replication", func(t *testing.T) {
		role := "norepl_" + pgtest.DatabaseName(dsn)
		if err := srv.CreateRole(ctx, role, false); err != nil {
			t.Fatal(err)
		}
		rconn, err := pgx.Connect(ctx, srv.ConnStringAs(role, pgtest.DatabaseName(dsn)))
		if err != nil {
			t.Fatal(err)
		}
		defer rconn.Close(ctx)
		_, err = Preflight(ctx, rconn, testConfig(t, dsn, "ok"))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("role %q may not use replication", role)) || !strings.Contains(err.Error(), "REPLICATION") {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("rds_replication membership counts", func(t *testing.T) {
		// Amazon RDS grants replication through this role instead of the
		// REPLICATION attribute.
		role := "rds_member_" + pgtest.DatabaseName(dsn)
		if err := srv.Exec(ctx, "postgres", `DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') THEN CREATE ROLE rds_replication NOLOGIN; END IF;
			END $$; CREATE ROLE `+role+` LOGIN NOREPLICATION IN ROLE rds_replication`); err != nil {
			t.Fatal(err)
		}
		rconn, err := pgx.Connect(ctx, srv.ConnStringAs(role, pgtest.DatabaseName(dsn)))
		if err != nil {
			t.Fatal(err)
		}
		defer rconn.Close(ctx)
		if _, err := Preflight(ctx, rconn, testConfig(t, dsn, "ok")); err != nil {
			t.Fatalf("member of rds_replication refused: %v", err)
		}
	})

	t.Run("wal_level replica", func(t *testing.T) {
		s, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"wal_level": "replica", "max_slot_wal_keep_size": "'1GB'"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dsn, _ := newDB(t, s, "CREATE TABLE ok (id int PRIMARY KEY)")
		_, err = Setup(ctx, testConfig(t, dsn, "ok"))
		var pe *PreflightError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), `wal_level is "replica"`) || !strings.Contains(err.Error(), "ALTER SYSTEM SET wal_level = logical") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSlotDroppedIsRefused(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	rec := &recorder{}
	rr := startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (1)")
	eventually(t, 30*time.Second, "first insert", func() bool { return rec.numTx() == 1 })
	if err := rr.stop(); err != nil {
		t.Fatal(err)
	}
	dropSlot(t, conn, cfg.Slot)
	mustExec(t, conn, "INSERT INTO items VALUES (2)") // lost: no slot

	if err := NewReader(cfg).Run(context.Background(), &recorder{}); !errors.Is(err, ErrSlotMissing) {
		t.Fatalf("reader without its slot: %v, want ErrSlotMissing", err)
	}
	_, err := Setup(context.Background(), cfg)
	// The error names the condition and the setting that accepts it, not a
	// command-line flag: the binary adds those (cmd/walcast's advice test).
	if !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "changes committed since are lost") ||
		!strings.Contains(err.Error(), "RecreateSlot") || strings.Contains(err.Error(), "--") {
		t.Fatalf("setup after the slot was dropped: %v, want ErrSlotLost saying changes were lost, naming RecreateSlot and no flag", err)
	}

	cfg.RecreateSlot = true
	if res := mustSetup(t, cfg); !res.SlotCreated || !res.ResyncPending {
		t.Fatalf("recreate: %+v", res)
	}
	rec2 := &recorder{}
	rr2 := startReader(t, cfg, rec2)
	mustExec(t, conn, "INSERT INTO items VALUES (3)")
	eventually(t, 30*time.Second, "resync and the next insert", func() bool { return rec2.numTx() >= 2 })
	txs := rec2.txs()
	if c := txs[0].changes; len(c) != 1 || c[0].Op != OpResync {
		t.Fatalf("first delivery after recreate: %+v, want one OpResync", c)
	}
	if ids := rec2.ids(); len(ids) != 1 || ids[0] != "3" {
		t.Errorf("ids after resync %v, want [3]", ids)
	}
	if err := rr2.stop(); err != nil {
		t.Fatal(err)
	}
	cfg.RecreateSlot = false
	if res := mustSetup(t, cfg); res.SlotCreated || res.ResyncPending {
		t.Fatalf("setup after the resync was delivered: %+v", res)
	}
}

func TestIdlePublicationAdvancesSlot(t *testing.T) {
	dsn, conn := newDB(t, srv, `
		CREATE TABLE items (id int PRIMARY KEY);
		CREATE TABLE junk (id int, filler text);
		ALTER TABLE junk ALTER filler SET STORAGE PLAIN;`)
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	// A transaction received but not accepted holds the confirmed
	// position back, keepalives or not.
	release := make(chan struct{})
	entered := make(chan TxInfo, 1)
	rec := &recorder{commitHook: func(ctx context.Context, tx TxInfo) error {
		select {
		case entered <- tx:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	rr := startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (1)")
	var held TxInfo
	select {
	case held = <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("commit not delivered")
	}
	mustExec(t, conn, "INSERT INTO junk SELECT g, repeat('x', 1000) FROM generate_series(1, 5000) g")
	time.Sleep(2 * time.Second) // ten status intervals of keepalives
	if h := slotHealth(t, conn, cfg.Slot); h.Confirmed >= held.EndLSN {
		t.Fatalf("confirmed %s jumped past the unaccepted transaction ending at %s", h.Confirmed, held.EndLSN)
	}
	if c := rr.r.Status().Confirmed; c >= held.EndLSN {
		t.Fatalf("reader confirmed %s past the unaccepted transaction ending at %s", c, held.EndLSN)
	}
	close(release)

	// 100 MB to an unpublished table: confirmed_flush_lsn follows.
	before := currentLSN(t, conn)
	mustExec(t, conn, "INSERT INTO junk SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g")
	after := currentLSN(t, conn)
	if after-before < 100<<20 {
		t.Fatalf("wrote only %d bytes of WAL", after-before)
	}
	eventually(t, 90*time.Second, "confirmed_flush_lsn past the 100 MB", func() bool {
		return slotHealth(t, conn, cfg.Slot).Confirmed >= after
	})
	t.Logf("WAL written %d MB; slot confirmed %s >= %s", (after-before)>>20, slotHealth(t, conn, cfg.Slot).Confirmed, after)
}

// counter is a Consumer that keeps nothing, to measure the reader's own
// memory.
type counter struct {
	mu      sync.Mutex
	changes int
	txs     int
	badPos  int
}

func (c *counter) Begin(context.Context, TxInfo) error { return nil }
func (c *counter) Change(_ context.Context, ch *Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.Position != c.changes {
		c.badPos++
	}
	c.changes++
	return nil
}
func (c *counter) Commit(context.Context, TxInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txs++
	return nil
}
func (c *counter) counts() (int, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes, c.txs, c.badPos
}

// dropSlot drops a slot, waiting for a just-stopped reader's walsender to
// release it.
func dropSlot(t *testing.T, conn *pgx.Conn, slot string) {
	t.Helper()
	var err error
	for range 100 {
		if _, err = conn.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", slot); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("drop slot %s: %v", slot, err)
}

func TestSetupAsNonOwnerRole(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	ctx := context.Background()
	db := pgtest.DatabaseName(dsn)
	role := "repl_" + db
	if err := srv.CreateRole(ctx, role, true); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "GRANT SELECT ON items TO "+role)
	cfg := testConfig(t, srv.ConnStringAs(role, db), "items")

	_, err := Setup(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "may not create publication") || !strings.Contains(err.Error(), `CREATE PUBLICATION "walcast" FOR TABLE "public"."items"`) {
		t.Fatalf("setup without the right to create the publication: %v", err)
	}

	// An administrator runs the SQL from the message; then walcast's
	// replication role sets up and streams, warning that it cannot record
	// its slot on a publication it does not own.
	mustExec(t, conn, `CREATE PUBLICATION "walcast" FOR TABLE "public"."items"`)
	res := mustSetup(t, cfg)
	if !res.SlotCreated || len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "cannot record") {
		t.Fatalf("setup as replication role: %+v", res)
	}
	rec := &recorder{}
	startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (1)")
	eventually(t, 30*time.Second, "the row", func() bool { return rec.numTx() == 1 })
}
