package cdc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/logbuf"
	"github.com/walcast/walcast/internal/pgtest"
)

// writer inserts rows into items(id) in transactions of perTx rows from
// its own connection, reconnecting through PostgreSQL restarts. It records
// which ids surely committed (COMMIT returned) and which may have (the
// connection died before the answer).
type writer struct {
	mu        sync.Mutex
	committed map[int]bool
	uncertain map[int]bool
	next      int
}

func newWriter() *writer {
	return &writer{committed: map[int]bool{}, uncertain: map[int]bool{}, next: 1}
}

// write inserts nTx transactions, sleeping pause between them.
func (w *writer) write(ctx context.Context, dsn string, nTx, perTx int, pause time.Duration) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for i := 0; i < nTx; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if conn == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			conn = c
		}
		w.mu.Lock()
		first := w.next
		w.next += perTx
		w.mu.Unlock()
		_, err := conn.Exec(ctx, "INSERT INTO items SELECT generate_series($1::int, $2::int)", first, first+perTx-1)
		w.mu.Lock()
		for id := first; id < first+perTx; id++ {
			if err == nil {
				w.committed[id] = true
			} else {
				w.uncertain[id] = true
			}
		}
		w.mu.Unlock()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			continue
		}
		i++
		time.Sleep(pause)
	}
	return nil
}

func (w *writer) committedIDs() map[int]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int]bool, len(w.committed))
	for id := range w.committed {
		out[id] = true
	}
	return out
}

// coverage counts, among the committed ids, those seen and missing, and
// how many deliveries were repeats.
func coverage(committed map[int]bool, seen []string) (missing []int, dups int) {
	count := map[int]int{}
	for _, s := range seen {
		id, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		count[id]++
		if count[id] > 1 {
			dups++
		}
	}
	for id := range committed {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	return missing, dups
}

func TestLargeTransactionBoundedMemory(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY, filler text)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	const rows, width = 100_000, 2000 // 200 MB of row data in one transaction
	cnt := &counter{}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	startReader(t, cfg, cnt)
	mustExec(t, conn, fmt.Sprintf("INSERT INTO items SELECT g, repeat('x', %d) FROM generate_series(1, %d) g", width, rows))
	eventually(t, 3*time.Minute, "the 100,000-row transaction", func() bool {
		_, txs, _ := cnt.counts()
		return txs == 1
	})
	close(stopSampling)
	<-sampled
	changes, _, badPos := cnt.counts()
	if changes != rows || badPos != 0 {
		t.Fatalf("delivered %d changes (%d out of position), want %d", changes, badPos, rows)
	}
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("row data %d MB; heap in use at start %d MB, peak %d MB", rows*width>>20, base.HeapInuse>>20, peak>>20)
	// The reader holds a bounded queue of decoded changes, never the
	// transaction: growth must stay far below the transaction's size.
	if limit := int64(64 << 20); grew > limit {
		t.Errorf("heap grew %d MB while streaming a %d MB transaction (limit %d MB)", grew>>20, rows*width>>20, limit>>20)
	}
}

// refuser accepts the first n transactions, then blocks every Commit until
// the reader stops (a consumer that never acknowledges).
type refuser struct {
	recorder
	n       int
	blocked chan TxInfo
}

func newRefuser(n int) *refuser {
	r := &refuser{n: n, blocked: make(chan TxInfo, 1)}
	r.commitHook = func(ctx context.Context, tx TxInfo) error {
		if r.numTx() < r.n {
			return nil
		}
		select {
		case r.blocked <- tx:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return r
}

func TestStopWithoutAckRedelivers(t *testing.T) {
	dsn, _ := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	w := newWriter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.write(ctx, dsn, 200, 10, 5*time.Millisecond) }()

	first := newRefuser(50)
	rr := startReader(t, cfg, first)
	var blocked TxInfo
	select {
	case blocked = <-first.blocked:
	case <-time.After(60 * time.Second):
		t.Fatal("reader did not reach transaction 51")
	}
	if err := rr.stop(); err != nil {
		t.Fatal(err)
	}

	second := &recorder{}
	startReader(t, cfg, second)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	committed := w.committedIDs()
	eventually(t, 60*time.Second, "every committed row", func() bool {
		missing, _ := coverage(committed, append(first.ids(), second.ids()...))
		return len(missing) == 0
	})
	txs := second.txs()
	if txs[0].tx.CommitLSN != blocked.CommitLSN {
		t.Errorf("restart began at commit %s, want the unaccepted %s (accepted ones must not be re-sent after a clean stop)", txs[0].tx.CommitLSN, blocked.CommitLSN)
	}
	checkTxShape(t, txs)
	_, dups := coverage(committed, append(first.ids(), second.ids()...))
	t.Logf("%d rows committed, %d delivered twice", len(committed), dups)
}

// buildReaderProc compiles the test-only reader process.
func buildReaderProc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "readerproc")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/readerproc").CombinedOutput()
	if err != nil {
		t.Fatalf("build readerproc: %v\n%s", err, out)
	}
	return bin
}

type procLine struct {
	CommitLSN string `json:"commit_lsn"`
	Position  int    `json:"pos"`
	Op        string `json:"op"`
	ID        string `json:"id"`
}

// readerProc runs the reader process and collects its lines.
type readerProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	ids   []string
	done  chan struct{}
	stErr logbuf.Buffer
}

func startReaderProc(t *testing.T, bin string, cfg Config) *readerProc {
	t.Helper()
	cmd := exec.Command(bin, "-dsn", cfg.ConnString, "-slot", cfg.Slot, "-publication", cfg.Publication, "-tables", "items")
	p := &readerProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.stErr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l procLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				continue
			}
			p.mu.Lock()
			p.ids = append(p.ids, l.ID)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		_ = cmd.Wait()
	})
	return p
}

func (p *readerProc) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

func TestSIGKILLReaderProcess(t *testing.T) {
	bin := buildReaderProc(t)
	dsn, _ := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	w := newWriter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.write(ctx, dsn, 300, 5, 5*time.Millisecond) }()

	p1 := startReaderProc(t, bin, cfg)
	eventually(t, 60*time.Second, "the first reader to print 200 rows", func() bool { return len(p1.seen()) >= 200 })
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.done
	_ = p1.cmd.Wait()
	killedAt := len(p1.seen())

	p2 := startReaderProc(t, bin, cfg)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	committed := w.committedIDs()
	all := func() []string { return append(p1.seen(), p2.seen()...) }
	eventually(t, 60*time.Second, "every committed row after the SIGKILL", func() bool {
		missing, _ := coverage(committed, all())
		return len(missing) == 0
	})
	_, dups := coverage(committed, all())
	t.Logf("%d rows committed; killed after %d printed; %d delivered twice", len(committed), killedAt, dups)
	if strings.Contains(p2.stErr.String(), "level=ERROR") {
		t.Errorf("second reader logged errors:\n%s", p2.stErr.String())
	}
}

func TestTwoReadersFailover(t *testing.T) {
	dsn, _ := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	a, b := &recorder{}, &recorder{}
	ra := startReader(t, cfg, a)
	eventually(t, 30*time.Second, "reader A to lead", func() bool { return ra.r.State() == StateLeader })
	obsB := &observed{}
	cfgB := cfg
	cfgB.Observer = obsB
	rb := startReader(t, cfgB, b)
	eventually(t, 30*time.Second, "reader B to stand by", func() bool { return rb.r.State() == StateStandby })

	w := newWriter()
	if err := w.write(context.Background(), dsn, 50, 2, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "A to deliver the first 100 rows", func() bool { return len(a.ids()) >= 100 })
	if n := b.numTx(); n != 0 || rb.r.State() != StateStandby {
		t.Fatalf("standby delivered %d transactions, state %s", n, rb.r.State())
	}

	if err := ra.stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.write(ctx, dsn, 50, 2, 10*time.Millisecond) }()
	eventually(t, 30*time.Second, "reader B to take over", func() bool { return rb.r.State() == StateLeader })
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	committed := w.committedIDs()
	eventually(t, 30*time.Second, "every row across the failover", func() bool {
		missing, _ := coverage(committed, append(a.ids(), b.ids()...))
		return len(missing) == 0
	})
	_, dups := coverage(committed, append(a.ids(), b.ids()...))
	if dups != 0 {
		t.Errorf("%d rows delivered twice after a clean handover (A confirmed before leaving)", dups)
	}
	checkTxShape(t, b.txs())
	// B's observer saw it stand by, then lead: a takeover, with no failed
	// session (finding the slot held is standing by, not failing).
	states, kinds := obsB.snapshot()
	if i := slices.Index(states, StateStandby); i < 0 || !slices.Contains(states[i:], StateLeader) {
		t.Errorf("B's observed states %v: want standby, then leader", states)
	}
	if len(kinds) != 0 {
		t.Errorf("B's observer heard of failed sessions %v while it stood by", kinds)
	}
}

func TestPostgresRestartMidStream(t *testing.T) {
	s, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "'3s'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() }) // after the tests' own cleanups
	dsn, _ := newDB(t, s, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)

	rec := &recorder{}
	rr := startReader(t, cfg, rec)
	w := newWriter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.write(ctx, dsn, 600, 3, 5*time.Millisecond) }()

	for _, mode := range []string{"fast", "immediate"} {
		before := len(rec.ids())
		eventually(t, 60*time.Second, "rows to flow before the "+mode+" restart", func() bool { return len(rec.ids()) > before+50 })
		if err := s.Restart(mode); err != nil {
			t.Fatal(err)
		}
		after := len(rec.ids())
		eventually(t, 60*time.Second, "rows to flow after the "+mode+" restart", func() bool { return len(rec.ids()) > after+50 })
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	committed := w.committedIDs()
	eventually(t, 60*time.Second, "every committed row", func() bool {
		missing, _ := coverage(committed, rec.ids())
		return len(missing) == 0
	})
	_, dups := coverage(committed, rec.ids())
	t.Logf("%d rows committed, %d uncertain (connection lost at COMMIT), %d delivered twice, %d interrupted transactions discarded",
		len(committed), len(w.uncertain), dups, rec.partials)
	if st := rr.r.Status(); st.State != StateLeader {
		t.Errorf("state %s after restarts", st.State)
	}

	// A consumer blocked far longer than wal_sender_timeout (3 s here)
	// must not cost the connection: the reader keeps sending status.
	t.Run("blocked consumer keeps the connection", func(t *testing.T) {
		_ = rr.stop()
		release := make(chan struct{})
		blocking := &recorder{commitHook: func(ctx context.Context, tx TxInfo) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		// A status interval far above wal_sender_timeout: the reader must
		// shorten it, since with the queue full (the second transaction
		// below is larger than the queue) it cannot answer keepalives.
		slow := cfg
		slow.StatusInterval = time.Minute
		rb := startReader(t, slow, blocking)
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		mustExec(t, conn, "INSERT INTO items VALUES (-1)")
		mustExec(t, conn, "INSERT INTO items SELECT -g FROM generate_series(2, 2000) g")
		pid := func() int {
			var p int
			_ = conn.QueryRow(context.Background(), "SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&p)
			return p
		}
		eventually(t, 30*time.Second, "the reader to stream", func() bool { return rb.r.State() == StateLeader && pid() != 0 })
		p1 := pid()
		time.Sleep(8 * time.Second)
		if p2 := pid(); p2 != p1 || rb.r.State() != StateLeader {
			t.Fatalf("walsender changed from %d to %d (state %s) while the consumer blocked", p1, p2, rb.r.State())
		}
		close(release)
		eventually(t, 30*time.Second, "the blocked transactions", func() bool { return blocking.numTx() >= 2 })
	})
}

func TestTLSConnection(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, srv.TLSConnString(pgtest.DatabaseName(dsn)), "items")
	mustSetup(t, cfg)
	rec := &recorder{}
	startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (7)")
	eventually(t, 30*time.Second, "the row over TLS", func() bool { return len(rec.ids()) == 1 })
	var ssl bool
	err := conn.QueryRow(context.Background(), `SELECT s.ssl FROM pg_stat_ssl s
		JOIN pg_replication_slots r ON r.active_pid = s.pid WHERE r.slot_name = $1`, cfg.Slot).Scan(&ssl)
	if err != nil || !ssl {
		t.Fatalf("replication connection ssl=%v (%v)", ssl, err)
	}
}

func TestFatalErrors(t *testing.T) {
	t.Run("publication dropped", func(t *testing.T) {
		dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
		cfg := testConfig(t, dsn, "items")
		mustSetup(t, cfg)
		rr := startReader(t, cfg, &recorder{})
		eventually(t, 30*time.Second, "streaming", func() bool { return rr.r.State() == StateLeader })
		mustExec(t, conn, "DROP PUBLICATION walcast")
		mustExec(t, conn, "INSERT INTO items VALUES (1)")
		if err := rr.waitErr(t, 30*time.Second); !errors.Is(err, ErrPublicationMissing) {
			t.Fatalf("run: %v, want ErrPublicationMissing", err)
		}
	})

	t.Run("slot invalidated", func(t *testing.T) {
		s, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "'1MB'", "max_wal_size": "'32MB'", "min_wal_size": "'32MB'"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() }) // after the tests' own cleanups
		dsn, conn := newDB(t, s, "CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE junk (filler text)")
		cfg := testConfig(t, dsn, "items")
		mustSetup(t, cfg)
		for range 3 {
			mustExec(t, conn, "INSERT INTO junk SELECT repeat('x', 1000) FROM generate_series(1, 5000)")
			mustExec(t, conn, "SELECT pg_switch_wal(); CHECKPOINT")
		}
		if h := slotHealth(t, conn, cfg.Slot); h.WALStatus != "lost" {
			t.Fatalf("test setup: slot not invalidated (wal_status %q)", h.WALStatus)
		}
		err = NewReader(cfg).Run(context.Background(), &recorder{})
		if !errors.Is(err, ErrSlotInvalidated) || !strings.Contains(err.Error(), "changes were lost") ||
			!strings.Contains(err.Error(), "dropped and made again") || strings.Contains(err.Error(), "--") {
			t.Fatalf("run: %v, want ErrSlotInvalidated saying what was lost and what must happen, naming no flag", err)
		}
	})
}

func TestTeardown(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	rr := startReader(t, cfg, &recorder{})
	eventually(t, 30*time.Second, "streaming", func() bool { return rr.r.State() == StateLeader })

	ctx := context.Background()
	if _, err := Teardown(ctx, cfg, false); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("teardown of an active slot: %v, want refusal", err)
	}
	res, err := Teardown(ctx, cfg, true)
	if err != nil || !res.SlotDropped || !res.PublicationDropped {
		t.Fatalf("teardown: %+v, %v", res, err)
	}
	if err := rr.waitErr(t, 30*time.Second); !errors.Is(err, ErrSlotMissing) {
		t.Errorf("reader after teardown: %v, want ErrSlotMissing", err)
	}
	var slots, pubs int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1), (SELECT count(*) FROM pg_publication)", cfg.Slot).Scan(&slots, &pubs); err != nil {
		t.Fatal(err)
	}
	if slots != 0 || pubs != 0 {
		t.Errorf("left behind %d slots, %d publications", slots, pubs)
	}
	if res, err := Teardown(ctx, cfg, false); err != nil || res.SlotDropped || res.PublicationDropped {
		t.Errorf("second teardown: %+v, %v", res, err)
	}
}

func TestStartLSNSkipsEarlierTransactions(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	mustExec(t, conn, "INSERT INTO items VALUES (1)")
	cfg.StartLSN = currentLSN(t, conn) // a caller already published up to here
	mustExec(t, conn, "INSERT INTO items VALUES (2)")
	rec := &recorder{}
	startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (3)")
	eventually(t, 30*time.Second, "two transactions", func() bool { return rec.numTx() >= 2 })
	if ids := strings.Join(rec.ids(), ","); ids != "2,3" {
		t.Fatalf("delivered ids %s, want 2,3 (1 committed before StartLSN)", ids)
	}
}

func TestConsumerErrorRedelivers(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	var mu sync.Mutex
	failed := 0
	rec := &recorder{}
	rec.commitHook = func(ctx context.Context, tx TxInfo) error {
		mu.Lock()
		defer mu.Unlock()
		if rec.numTx() == 1 && failed < 2 { // refuse the second transaction twice
			failed++
			return errors.New("redis is down")
		}
		return nil
	}
	obs := &observed{}
	cfg.Observer = obs
	rr := startReader(t, cfg, rec)
	mustExec(t, conn, "INSERT INTO items VALUES (1)")
	mustExec(t, conn, "INSERT INTO items VALUES (2)")
	mustExec(t, conn, "INSERT INTO items VALUES (3)")
	eventually(t, 30*time.Second, "three transactions", func() bool { return rec.numTx() == 3 })
	if ids := strings.Join(rec.ids(), ","); ids != "1,2,3" {
		t.Fatalf("ids %s, want 1,2,3 (the refused transaction redelivered, the accepted one not)", ids)
	}
	if rec.partials != 2 {
		t.Errorf("%d discarded partial transactions, want 2 (one per refusal)", rec.partials)
	}
	if st := rr.r.Status(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "redis is down") {
		t.Errorf("last error %v", st.LastError)
	}
	if _, kinds := obs.snapshot(); !slices.Equal(kinds, []string{ErrorDelivery, ErrorDelivery}) {
		t.Errorf("observed failed sessions %v, want two refusals by the consumer (%s)", kinds, ErrorDelivery)
	}
}

// After a bulk transaction (where the receiver pauses between reads to
// take many messages at once) small transactions must still arrive whole,
// in commit order, and be acknowledged up to the last one.
func TestBulkThenSmallTransactions(t *testing.T) {
	dsn, conn := newDB(t, srv, "CREATE TABLE items (id int PRIMARY KEY)")
	cfg := testConfig(t, dsn, "items")
	mustSetup(t, cfg)
	rec := &recorder{}
	rr := startReader(t, cfg, rec)

	const bulk, small = 3000, 30
	mustExec(t, conn, fmt.Sprintf("INSERT INTO items SELECT g FROM generate_series(1, %d) g", bulk))
	for i := 1; i <= small; i++ {
		mustExec(t, conn, fmt.Sprintf("INSERT INTO items VALUES (%d)", -i))
	}
	eventually(t, time.Minute, "every transaction", func() bool { return rec.numTx() >= 1+small })

	txs := rec.txs()
	if len(txs) != 1+small {
		t.Fatalf("got %d transactions, want %d", len(txs), 1+small)
	}
	for i, tx := range txs {
		want := []string{strconv.Itoa(-i)}
		if i == 0 {
			want = make([]string, bulk)
			for j := range want {
				want[j] = strconv.Itoa(j + 1)
			}
		}
		if len(tx.changes) != len(want) {
			t.Fatalf("transaction %d has %d changes, want %d", i, len(tx.changes), len(want))
		}
		for j, c := range tx.changes {
			if id, _ := colText(c.New, "id"); id != want[j] || c.Position != j || c.Tx.CommitLSN != tx.tx.CommitLSN {
				t.Fatalf("transaction %d change %d: id %s position %d commit %s, want id %s position %d commit %s",
					i, j, id, c.Position, c.Tx.CommitLSN, want[j], j, tx.tx.CommitLSN)
			}
		}
		if i > 0 && tx.tx.CommitLSN <= txs[i-1].tx.CommitLSN {
			t.Fatalf("transaction %d commit %s not after %s", i, tx.tx.CommitLSN, txs[i-1].tx.CommitLSN)
		}
	}
	last := txs[small].tx.EndLSN
	eventually(t, 30*time.Second, "the last transaction to be confirmed", func() bool { return rr.r.Status().Confirmed >= last })
}

// The pause doubles while fewer than batchLen messages arrive per pause
// and halves once more do, within [minPause, maxPause]; with a read's
// worth of data waiting in the socket there is no pause at all.
func TestPacerAdapts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	p := pacer{pause: minPause, socket: newSocketProbe(client)}
	if n := p.socket.unread(); n != 0 {
		t.Fatalf("unread on an idle socket: %d, want 0", n)
	}
	steps := []struct {
		decoded int
		want    time.Duration
	}{
		{0, 2 * minPause},
		{batchLen - 1, 4 * minPause},
		{1, 8 * minPause},
		{1, 16 * minPause},
		{1, maxPause},
		{batchLen, maxPause / 2},
		{10 * batchLen, maxPause / 4},
		{batchLen, maxPause / 8},
		{batchLen, maxPause / 16},
		{batchLen, minPause},
	}
	if 16*minPause != maxPause {
		t.Fatalf("steps assume maxPause = 16*minPause, got %s and %s", maxPause, minPause)
	}
	for i, s := range steps {
		p.decoded = s.decoded
		p.wait()
		if p.pause != s.want || p.decoded != 0 {
			t.Fatalf("step %d (%d decoded): pause %s, decoded %d; want %s, 0", i, s.decoded, p.pause, p.decoded, s.want)
		}
	}

	if _, err := server.Write(make([]byte, pauseBelow)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the bytes to arrive", func() bool { return p.socket.unread() == pauseBelow })
	p.decoded = 1
	p.wait()
	if p.pause != minPause || p.decoded != 1 {
		t.Fatalf("with %d bytes unread: pause %s, decoded %d; want no pause (%s, 1)", pauseBelow, p.pause, p.decoded, minPause)
	}
}
