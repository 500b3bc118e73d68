package cdc

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walcast/walcast/internal/pgtest"
)

// liveStream is a bare pgoutput stream read with pglogrepl, so the decoder
// is tested against what PostgreSQL really sends, independently of the
// Reader.
type liveStream struct {
	sql   *pgx.Conn
	repl  *pgconn.PgConn
	dec   *Decoder
	acked pglogrepl.LSN
	n     int // messages seen, for naming corpus files
}

// sessionOptions are the settings the Reader uses; the decoder relies on
// them for fixed text formats.
const sessionOptions = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3"

func replicationConnString(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", dsn, err)
	}
	q := u.Query()
	q.Set("replication", "database")
	q.Set("options", sessionOptions)
	// pgx reads '+' in a URL query literally: spaces must be %20.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String(), nil
}

// startLive creates the publication (all tables) and a temporary slot in a
// fresh database after running schema, and starts streaming.
func startLive(t *testing.T, srv *pgtest.Server, schema string) *liveStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := srv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, schema+"; CREATE PUBLICATION decode_test FOR ALL TABLES"); err != nil {
		t.Fatalf("schema: %v", err)
	}
	rdsn, err := replicationConnString(dsn)
	if err != nil {
		t.Fatal(err)
	}
	repl, err := pgconn.Connect(ctx, rdsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repl.Close(context.Background()) })
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, "decode_test", "pgoutput", pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		t.Fatalf("create slot: %v", err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, repl, "decode_test", start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'decode_test'", "messages 'true'"},
	})
	if err != nil {
		t.Fatalf("start replication: %v", err)
	}
	return &liveStream{sql: conn, repl: repl, dec: NewDecoder(), acked: start}
}

func (s *liveStream) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := s.sql.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// nextTx returns the changes of the next committed transaction.
func (s *liveStream) nextTx(t *testing.T) []*Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var changes []*Change
	for {
		raw, err := s.repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok {
			t.Fatalf("unexpected %T", raw)
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				t.Fatal(err)
			}
			if ka.ReplyRequested {
				s.ack(t, ctx)
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				t.Fatal(err)
			}
			s.n++
			writeFuzzSeed(t, fmt.Sprintf("pg15-%s-%02d", strings.ReplaceAll(t.Name(), "/", "-"), s.n), xld.WALData)
			m, err := s.dec.Decode(xld.WALData)
			if err != nil {
				t.Fatalf("decode %q: %v", xld.WALData, err)
			}
			switch m.Kind {
			case MsgChange:
				checkChange(t, m.Change)
				changes = append(changes, m.Change)
			case MsgCommit:
				if m.Tx.EndLSN == 0 || m.Tx.CommitLSN == 0 || m.Tx.CommitTime.IsZero() {
					t.Fatalf("commit %+v", m.Tx)
				}
				for i, c := range changes {
					if c.Position != i || c.Tx.XID != m.Tx.XID || c.Tx.CommitLSN != m.Tx.CommitLSN {
						t.Fatalf("change %d: position %d tx %+v, commit %+v", i, c.Position, c.Tx, m.Tx)
					}
				}
				s.acked = m.Tx.EndLSN
				s.ack(t, ctx)
				return changes
			}
		}
	}
}

func (s *liveStream) ack(t *testing.T, ctx context.Context) {
	t.Helper()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.acked})
	if err != nil {
		t.Fatalf("standby status: %v", err)
	}
}

func colMap(cols []Column) map[string]Column {
	m := make(map[string]Column, len(cols))
	for _, c := range cols {
		m[c.Name] = c
	}
	return m
}

func rowNames(cols []Column) string {
	var n []string
	for _, c := range cols {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

// TestDecodeLive runs the decoder on a real PostgreSQL's pgoutput stream.
// One server, one database per subtest.
func TestDecodeLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})

	t.Run("every type", func(t *testing.T) {
		s := startLive(t, srv, `
			CREATE TYPE mood AS ENUM ('happy', 'sad');
			CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
			CREATE TABLE every (
				id int4 PRIMARY KEY, i2 int2, i8 int8, num numeric(10,2), numbig numeric,
				f4 float4, f8 float8, f8nan float8, f8inf float8, numinf numeric,
				b bool, t text, vc varchar(10), bp char(5), nm name, u uuid,
				tstz timestamptz, ts timestamp, tsinf timestamptz, d date, tm time, iv interval, mn money,
				by bytea, j json, jb jsonb, ta text[], i2d int4[][], na numeric[], ba bool[], jba jsonb[],
				bya bytea[], tsa timestamptz[], md mood, mda mood[], pi posint, ip inet, nul text)`)
		s.exec(t, `INSERT INTO every VALUES (
			1, -32768, 9223372036854775807, 100.00, 12345678901234567890.000000000000000001,
			1.5, 0.1, 'NaN', '-Infinity', 'Infinity',
			true, E'say "hi"\n\\ok', 'vär', 'ab', 'pg_class', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
			'2024-03-01 05:30:00.123456+05:30', '2024-03-01 00:00:00.5', 'infinity', '2024-03-01', '04:05:06.789',
			'1 year 2 mons 3 days 04:05:06.5', 1000, '\x48656c6c6f', '{"b": 1,  "a" : [1, 2.50]}', '{"b": 1, "a": [1, 2.50]}',
			ARRAY['a b', NULL, 'NULL', 'q"uote', 'back\slash', '', 'x,y', '{z}'], '{{1,2},{3,NULL}}', '{1.50,NaN}', '{t,f}',
			ARRAY['{"k": "v"}'::jsonb, '[1]'], ARRAY['\x00ff'::bytea], ARRAY['2024-03-01 00:00:00+00'::timestamptz, '-infinity'],
			'happy', '{sad,NULL,happy}', 42, '192.168.0.1/24', NULL)`)
		changes := s.nextTx(t)
		if len(changes) != 1 || changes[0].Op != OpInsert || changes[0].Table != (Table{"public", "every"}) {
			t.Fatalf("changes: %+v", changes)
		}
		got := colMap(changes[0].New)
		want := map[string]string{
			"id": `1`, "i2": `-32768`, "i8": `"9223372036854775807"`, "num": `"100.00"`,
			"numbig": `"12345678901234567890.000000000000000001"`,
			"f4":     `1.5`, "f8": `0.1`, "f8nan": `"NaN"`, "f8inf": `"-Infinity"`, "numinf": `"Infinity"`,
			"b": `true`, "t": `"say \"hi\"\n\\ok"`, "vc": `"vär"`, "bp": `"ab   "`, "nm": `"pg_class"`,
			"u":    `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`,
			"tstz": `"2024-03-01T00:00:00.123Z"`, "ts": `"2024-03-01T00:00:00.500Z"`, "tsinf": `"infinity"`,
			"d": `"2024-03-01"`, "tm": `"04:05:06.789"`, "iv": `"1 year 2 mons 3 days 04:05:06.5"`, "mn": `"$1,000.00"`,
			"by": `"SGVsbG8="`, "j": `{"b": 1,  "a" : [1, 2.50]}`, "jb": `{"a": [1, 2.50], "b": 1}`,
			"ta":  `["a b",null,"NULL","q\"uote","back\\slash","","x,y","{z}"]`,
			"i2d": `[[1,2],[3,null]]`, "na": `["1.50","NaN"]`, "ba": `[true,false]`, "jba": `[{"k": "v"},[1]]`,
			"bya": `["AP8="]`, "tsa": `["2024-03-01T00:00:00.000Z","-infinity"]`,
			"md": `"happy"`, "mda": `["sad",null,"happy"]`, "pi": `"42"`, "ip": `"192.168.0.1/24"`, "nul": `null`,
		}
		if len(got) != len(want) {
			t.Errorf("got %d columns (%s), want %d", len(got), rowNames(changes[0].New), len(want))
		}
		for name, w := range want {
			if g := string(got[name].JSON); g != w {
				t.Errorf("%s: got %s, want %s", name, g, w)
			}
		}
		if !got["id"].IsKey || got["t"].IsKey || !got["nul"].Null || string(got["i8"].Text) != "9223372036854775807" {
			t.Errorf("flags: id %+v t %+v nul %+v", got["id"], got["t"], got["nul"])
		}
	})

	t.Run("primary key change, delete, truncate", func(t *testing.T) {
		s := startLive(t, srv, `CREATE TABLE m (a int4, b text, c text, PRIMARY KEY (a, b))`)
		s.exec(t, `INSERT INTO m VALUES (1, 'x', 'keep')`)
		s.nextTx(t)
		s.exec(t, `UPDATE m SET c = 'new' WHERE a = 1`)
		up := s.nextTx(t)[0]
		if up.Old != nil || rowString(up.New) != `a=1 b="x" c="new"` {
			t.Errorf("update without key change: Old %s New %s", rowString(up.Old), rowString(up.New))
		}
		s.exec(t, `UPDATE m SET a = 2 WHERE a = 1`)
		pk := s.nextTx(t)[0]
		if rowString(pk.Old) != `a=1 b="x"` || pk.OldIsFull || rowString(pk.New) != `a=2 b="x" c="new"` {
			t.Errorf("key change: Old %s New %s", rowString(pk.Old), rowString(pk.New))
		}
		s.exec(t, `DELETE FROM m`)
		del := s.nextTx(t)[0]
		if del.Op != OpDelete || rowString(del.Old) != `a=2 b="x"` || del.New != nil {
			t.Errorf("delete: %+v", del)
		}
		s.exec(t, `CREATE TABLE n (id int PRIMARY KEY); TRUNCATE m, n`)
		tr := s.nextTx(t)
		if len(tr) != 1 || tr[0].Op != OpTruncate || len(tr[0].Truncated) != 2 {
			t.Fatalf("truncate: %+v", tr)
		}
	})

	t.Run("alter table mid-stream", func(t *testing.T) {
		s := startLive(t, srv, `CREATE TABLE a (id int4 PRIMARY KEY, x text)`)
		s.exec(t, `BEGIN;
			INSERT INTO a VALUES (1, 'one');
			ALTER TABLE a ADD COLUMN y int8 DEFAULT 7;
			INSERT INTO a VALUES (2, 'two', 8);
			ALTER TABLE a DROP COLUMN x;
			INSERT INTO a VALUES (3, 9);
			COMMIT`)
		tx := s.nextTx(t)
		var rows []string
		for _, c := range tx {
			rows = append(rows, rowString(c.New))
		}
		want := []string{`id=1 x="one"`, `id=2 x="two" y="8"`, `id=3 y="9"`}
		if strings.Join(rows, " | ") != strings.Join(want, " | ") {
			t.Errorf("rows %q, want %q", rows, want)
		}
		s.exec(t, `ALTER TABLE a ADD COLUMN z jsonb`)
		s.exec(t, `UPDATE a SET z = '{"k": 1}' WHERE id = 3`)
		if got := rowString(s.nextTx(t)[0].New); got != `id=3 y="9" z={"k": 1}` {
			t.Errorf("after a DDL transaction: %s", got)
		}
	})

	t.Run("unchanged toast", func(t *testing.T) {
		s := startLive(t, srv, `
			CREATE TABLE d (id int4 PRIMARY KEY, n int4, body text, tags text[]);
			ALTER TABLE d ALTER COLUMN body SET STORAGE EXTERNAL;
			CREATE TABLE f (id int4 PRIMARY KEY, n int4, body text);
			ALTER TABLE f ALTER COLUMN body SET STORAGE EXTERNAL;
			ALTER TABLE f REPLICA IDENTITY FULL`)
		// One implicit transaction: several statements in one simple query.
		s.exec(t, `INSERT INTO d VALUES (1, 0, repeat('x', 10000), '{a}'); INSERT INTO f VALUES (1, 0, repeat('y', 10000))`)
		if ins := s.nextTx(t); len(ins) != 2 {
			t.Fatalf("%d inserts", len(ins))
		}

		s.exec(t, `UPDATE d SET n = 1`)
		c := s.nextTx(t)[0]
		if rowNames(c.New) != "id,n,tags" || strings.Join(c.Unchanged, ",") != "body" || c.Old != nil {
			t.Errorf("default identity: New %s Unchanged %q Old %s", rowNames(c.New), c.Unchanged, rowString(c.Old))
		}

		s.exec(t, `UPDATE f SET n = 1`)
		c = s.nextTx(t)[0]
		body := colMap(c.New)["body"]
		if rowNames(c.New) != "id,n,body" || len(c.Unchanged) != 0 || !c.OldIsFull || len(body.Text) != 10000 || string(body.JSON) != `"`+strings.Repeat("y", 10000)+`"` {
			t.Errorf("identity full: New %s Unchanged %q OldIsFull %v body %d bytes", rowNames(c.New), c.Unchanged, c.OldIsFull, len(body.Text))
		}
		if rowString(c.Old[:2]) != `id=1 n=0` || rowNames(c.Old) != "id,n,body" {
			t.Errorf("identity full old row: %s", rowNames(c.Old))
		}
	})
}

func TestReplicationConnString(t *testing.T) {
	got, err := replicationConnString("postgres://u@127.0.0.1:5/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["replication"] != "database" || cfg.RuntimeParams["options"] != sessionOptions {
		t.Errorf("runtime params %v", cfg.RuntimeParams)
	}
}
