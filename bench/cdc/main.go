// Command cdc measures walcast's change decoding on a throwaway PostgreSQL:
// one 100,000-row transaction of mixed column types is streamed
//
//   - through cdc.Reader (decode, then the consumer builds each event's
//     final JSON payload), with the reader's CPU per row beside its
//     walsender's;
//   - through pg_recvlogical writing the same publication's output to
//     /dev/null, with its CPU and its walsender's, as the reference;
//
// and the captured pgoutput messages are then decoded and encoded in memory
// to give the decoder's and the encoder's own rows/s, beside
// pglogrepl.Parse and a map + encoding/json payload as references.
//
//	go run ./bench/cdc [-rows 100000]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walcast/walcast/bench/internal/procstat"
	"github.com/walcast/walcast/bench/internal/walcastproc"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/pgtest"
)

const schema = `CREATE TABLE mixed (
	id int4 PRIMARY KEY, big int8, amount numeric(12,2), name text, tags text[],
	at timestamptz, active bool, doc jsonb, uid uuid)`

// insertRows fills one transaction with realistic, varied values: names
// needing escapes, arrays with quoted elements and NULLs, nested jsonb.
const insertRows = `INSERT INTO mixed
	SELECT i, i::int8 * 1000003, (i % 100000) / 100.0, 'Member "' || i || '" O''Neil',
		ARRAY['donor', 'tag ' || (i % 7), CASE WHEN i % 5 = 0 THEN NULL ELSE 'x,y' END],
		'2024-03-01 00:00:00+00'::timestamptz + i * interval '1 second', i % 2 = 0,
		jsonb_build_object('n', i, 'note', 'café', 'list', jsonb_build_array(1, 2.5, 'three')),
		md5(i::text)::uuid
	FROM generate_series(1, $1) AS i`

func main() {
	rows := flag.Int("rows", 100000, "rows in the transaction")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the cdc.Reader run to this file")
	flag.Parse()
	if err := run(*rows, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cdc:", err)
		os.Exit(1)
	}
}

type result struct {
	name      string
	rows      int
	wall      time.Duration
	cpu       time.Duration // the client's own CPU
	walsender time.Duration // -1: not applicable
	note      string
}

func run(nRows int, profile string) error {
	ctx := context.Background()
	srv, err := walcastproc.Postgres(ctx, schema, "bench")
	if err != nil {
		return err
	}
	defer srv.Close()
	dsn := srv.ConnString("bench")
	cfg := cdc.Config{
		ConnString: dsn,
		Tables:     []cdc.TableSpec{{Table: cdc.Table{Schema: "public", Name: "mixed"}}},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if _, err := cdc.Setup(ctx, cfg); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	// Every consumer gets its own slot, all created before the transaction.
	for _, slot := range []string{"capture", "recvlogical", "inline"} {
		if err := srv.Exec(ctx, "bench", fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", slot)); err != nil {
			return err
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	t0 := time.Now()
	if _, err := conn.Exec(ctx, insertRows, nRows); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	var endLSN string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endLSN); err != nil {
		return err
	}
	fmt.Printf("inserted %d rows in one transaction in %v; %d CPUs; %s\n\n", nRows, time.Since(t0).Round(time.Millisecond), runtime.NumCPU(), runtime.Version())

	// The Reader runs first, on a small heap: the captured messages kept
	// for the in-memory runs would otherwise add GC marking to its CPU.
	readerRes, err := streamReader(ctx, conn, cfg, nRows, profile)
	if err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	recvRes, err := recvlogical(ctx, conn, srv, endLSN, nRows)
	if err != nil {
		return fmt.Errorf("pg_recvlogical: %w", err)
	}
	inlineRes, _, err := stream(ctx, conn, dsn, "inline", nRows)
	if err != nil {
		return fmt.Errorf("inline: %w", err)
	}
	capRes, msgs, err := stream(ctx, conn, dsn, "capture", nRows)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	results := []result{readerRes, inlineRes, recvRes, capRes}
	results = append(results, inMemory(msgs, nRows)...)

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\trows\twall\trows/s\tclient CPU/row\trows/client CPU-s\twalsender CPU/row\t\tnote")
	for _, r := range results {
		ws := "-"
		if r.walsender >= 0 {
			ws = perRow(r.walsender, r.rows)
		}
		fmt.Fprintf(w, "%s\t%d\t%v\t%.0f\t%s\t%.0f\t%s\t\t%s\n", r.name, r.rows, r.wall.Round(time.Millisecond),
			float64(r.rows)/r.wall.Seconds(), perRow(r.cpu, r.rows), float64(r.rows)/r.cpu.Seconds(), ws, r.note)
	}
	w.Flush()
	fmt.Printf("\nload average at the end: %s", loadavg())
	fmt.Println("CPU is utime+stime (getrusage for this process and pg_recvlogical, /proc/PID/stat at 10 ms resolution for walsenders).")
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown\n"
	}
	return string(b)
}

func perRow(d time.Duration, rows int) string {
	return fmt.Sprintf("%.2fµs", float64(d.Nanoseconds())/float64(rows)/1000)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// walsenderOf waits for the slot to become active and returns its walsender's pid.
func walsenderOf(ctx context.Context, conn *pgx.Conn, slot string) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var pid *int32
		if err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid); err != nil {
			return 0, fmt.Errorf("find walsender of %s: %w", slot, err)
		}
		if pid != nil {
			return int(*pid), nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("slot %s never became active", slot)
}

// stream reads the transaction from slot with bare pglogrepl on one
// goroutine. Slot "capture" keeps copies of the pgoutput messages for the
// in-memory runs; slot "inline" decodes and builds each payload right
// there: the cost of a reader without a hand-off between goroutines.
func stream(ctx context.Context, sqlConn *pgx.Conn, dsn, slot string, nRows int) (result, [][]byte, error) {
	res := result{name: "pglogrepl receive only (captures messages)", rows: nRows}
	inline := slot == "inline"
	if inline {
		res.name = "pglogrepl + Decoder + payload, one goroutine"
	}
	rconn, err := pgconn.Connect(ctx, dsn+"&replication=database&options=-c%20TimeZone%3DUTC%20-c%20DateStyle%3DISO%20-c%20IntervalStyle%3Dpostgres%20-c%20extra_float_digits%3D3")
	if err != nil {
		return res, nil, err
	}
	defer rconn.Close(ctx)
	runtime.GC()
	start, cpu0 := time.Now(), selfCPU()
	err = pglogrepl.StartReplication(ctx, rconn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'walcast'"},
	})
	if err != nil {
		return res, nil, err
	}
	pid, err := walsenderOf(ctx, sqlConn, slot)
	if err != nil {
		return res, nil, err
	}
	var msgs [][]byte
	if !inline {
		msgs = make([][]byte, 0, nRows+8)
	}
	dec := cdc.NewDecoder()
	proj := cdc.NewProjection(nil, nil)
	var buf []byte
	for {
		raw, err := rconn.ReceiveMessage(ctx)
		if err != nil {
			return res, nil, err
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			return res, nil, err
		}
		if inline {
			m, err := dec.Decode(xld.WALData)
			if err != nil {
				return res, nil, err
			}
			if m.Kind == cdc.MsgChange {
				buf = appendEvent(buf[:0], proj, m.Change)
			}
		} else {
			msgs = append(msgs, append([]byte(nil), xld.WALData...))
		}
		if xld.WALData[0] == 'C' {
			break
		}
	}
	res.wall, res.cpu = time.Since(start), selfCPU()-cpu0
	if res.walsender, err = procstat.CPU(pid); err != nil {
		return res, nil, err
	}
	return res, msgs, nil
}

// payloadConsumer builds each change's final event payload, the way the
// broadcast side will: Socket.IO event packet with a projected row.
type payloadConsumer struct {
	proj    *cdc.Projection
	buf     []byte
	changes int
	count   atomic.Int64 // changes, readable from other goroutines
	bytes   int
	want    int
	done    chan struct{}
}

func (p *payloadConsumer) Begin(context.Context, cdc.TxInfo) error { return nil }

func (p *payloadConsumer) Change(_ context.Context, c *cdc.Change) error {
	p.buf = appendEvent(p.buf[:0], p.proj, c)
	p.bytes += len(p.buf)
	p.changes++
	p.count.Add(1)
	return nil
}

func (p *payloadConsumer) Commit(context.Context, cdc.TxInfo) error {
	if p.changes >= p.want {
		close(p.done)
	}
	return nil
}

// appendEvent is 42["mixed:update",{"type":"CREATE","data":{...}}].
func appendEvent(dst []byte, proj *cdc.Projection, c *cdc.Change) []byte {
	dst = append(dst, `42["`...)
	dst = append(dst, c.Table.Name...)
	dst = append(dst, `:update",{"type":"CREATE","data":`...)
	dst = proj.AppendJSON(dst, c.New)
	return append(dst, "}]"...)
}

func streamReader(ctx context.Context, sqlConn *pgx.Conn, cfg cdc.Config, nRows int, profile string) (result, error) {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
		defer pprof.StopCPUProfile()
	}
	res := result{name: "cdc.Reader: decode + final payload", rows: nRows}
	cons := &payloadConsumer{proj: cdc.NewProjection(nil, nil), want: nRows, done: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := cdc.NewReader(cfg)
	errc := make(chan error, 1)
	runtime.GC()
	start, cpu0 := time.Now(), selfCPU()
	go func() { errc <- r.Run(rctx, cons) }()
	pid, err := walsenderOf(ctx, sqlConn, "walcast")
	if err != nil {
		return res, err
	}
	select {
	case <-cons.done:
	case err := <-errc:
		return res, fmt.Errorf("reader stopped early: %v", err)
	case <-time.After(5 * time.Minute):
		return res, fmt.Errorf("timed out after %d of %d changes, reader %s", cons.count.Load(), nRows, r.State())
	}
	res.wall, res.cpu = time.Since(start), selfCPU()-cpu0
	if res.walsender, err = procstat.CPU(pid); err != nil {
		return res, err
	}
	res.note = fmt.Sprintf("%d payload bytes", cons.bytes)
	cancel()
	return res, <-errc
}

func recvlogical(ctx context.Context, sqlConn *pgx.Conn, srv *pgtest.Server, endLSN string, nRows int) (result, error) {
	res := result{name: "pg_recvlogical -f /dev/null (reference)", rows: nRows}
	cmd := exec.CommandContext(ctx, filepath.Join(srv.BinDir(), "pg_recvlogical"),
		"-d", srv.ConnString("bench"), "--slot", "recvlogical", "--start", "--no-loop",
		"-E", endLSN, "-f", "/dev/null",
		"-o", "proto_version=1", "-o", "publication_names=walcast")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The walsender exits with its client: find it, then sample its CPU
	// until then.
	pid := 0
	var werr error
	res.walsender = -1
	for waiting := true; waiting; {
		if pid == 0 {
			var active *int32
			if err := sqlConn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'recvlogical'").Scan(&active); err != nil {
				return res, err
			}
			if active != nil {
				pid = int(*active)
			}
		}
		if pid != 0 {
			if c, err := procstat.CPU(pid); err == nil {
				res.walsender = c
			}
		}
		select {
		case werr = <-exited:
			waiting = false
		case <-time.After(2 * time.Millisecond):
		}
	}
	res.wall = time.Since(start)
	if werr != nil {
		return res, fmt.Errorf("%w: %s", werr, stderr.String())
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	res.note = "walsender CPU sampled every 2 ms"
	return res, nil
}

// inMemory times decoding and encoding on the captured messages, one core,
// beside the references, each pass over the whole transaction.
func inMemory(msgs [][]byte, nRows int) []result {
	var out []result
	measure := func(name, note string, f func()) {
		runtime.GC()
		start, cpu0 := time.Now(), selfCPU()
		f()
		out = append(out, result{name: name, rows: nRows, wall: time.Since(start), cpu: selfCPU() - cpu0, walsender: -1, note: note})
	}
	decodeAll := func(keep bool) []*cdc.Change {
		var changes []*cdc.Change
		d := cdc.NewDecoder()
		for _, m := range msgs {
			msg, err := d.Decode(m)
			if err != nil {
				panic(err)
			}
			if keep && msg.Kind == cdc.MsgChange {
				changes = append(changes, msg.Change)
			}
		}
		return changes
	}
	measure("in memory: Decoder -> Change", "", func() { decodeAll(false) })
	measure("  reference: pglogrepl.Parse", "tuples only, no value conversion", func() {
		for _, m := range msgs {
			if _, err := pglogrepl.Parse(m); err != nil {
				panic(err)
			}
		}
	})
	proj := cdc.NewProjection(nil, nil)
	var buf []byte
	changes := decodeAll(true)
	measure("in memory: Change -> final payload", "Projection.AppendJSON", func() {
		for _, c := range changes {
			buf = appendEvent(buf[:0], proj, c)
		}
	})
	measure("  reference: map + encoding/json", "the prototype's way", func() {
		for _, c := range changes {
			data := make(map[string]any, len(c.New))
			for _, col := range c.New {
				data[col.Name] = json.RawMessage(col.JSON)
			}
			b, err := json.Marshal([]any{c.Table.Name + ":update", map[string]any{"type": "CREATE", "data": data}})
			if err != nil {
				panic(err)
			}
			buf = append(buf[:0], "42"...)
			buf = append(buf, b...)
		}
	})
	measure("in memory: decode + payload", "", func() {
		d := cdc.NewDecoder()
		for _, m := range msgs {
			msg, err := d.Decode(m)
			if err != nil {
				panic(err)
			}
			if msg.Kind == cdc.MsgChange {
				buf = appendEvent(buf[:0], proj, msg.Change)
			}
		}
	})
	return out
}
