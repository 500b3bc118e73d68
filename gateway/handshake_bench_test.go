package gateway

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

// BenchmarkHandshake is the cost of a whole handshake (WebSocket upgrade,
// Engine.IO open, Socket.IO CONNECT with a token, the CONNECT reply) over
// loopback, without the users check (the reference: the handshake before
// the check existed) and with it, against a users table of 10,000 rows.
// The "storm" variants run handshakes from every core at once, as
// browsers reconnecting after a restart would, and report how many
// queries reached PostgreSQL per handshake: the directory's own count and
// the database's committed transactions meanwhile (pg_stat_database). A
// last variant checks each handshake with a query instead (a pooled
// SELECT of the user's row), the design the directory avoids.
//
//	go test -run '^$' -bench BenchmarkHandshake ./gateway/
func BenchmarkHandshake(b *testing.B) {
	dsn, dir := benchUsers(b, 10_000)
	tok := token(b, map[string]any{"id": 4242, "role": "viewer", "exp": time.Now().Add(time.Hour).Unix()})
	// The check by itself, for scale beside a whole handshake.
	b.Run("users check alone", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for range b.N {
			if !dir.Admits("4242", "viewer", "", now) {
				b.Fatal("refused")
			}
		}
	})
	for _, bc := range []struct {
		name  string
		dir   *accounts.Directory
		storm bool
		query bool
	}{
		{"without users check", nil, false, false},
		{"with users check", dir, false, false},
		{"storm/without users check", nil, true, false},
		{"storm/with users check", dir, true, false},
		{"storm/with a query per handshake instead", nil, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hub, addr := startWith(b, Config{Accounts: bc.dir})
			var queries atomic.Int64
			var pool chan *pgx.Conn
			if bc.query {
				pool = connPool(b, dsn)
				hub.Namespace("/").Use(func(*socketio.Socket) error {
					conn := <-pool
					defer func() { pool <- conn }()
					queries.Add(1)
					var role string
					return conn.QueryRow(context.Background(), `SELECT role FROM users WHERE id = $1`, 4242).Scan(&role)
				})
			}
			handshake := func() error {
				c, err := siotest.Dial(addr, nil, nil)
				if err != nil {
					return err
				}
				defer c.Close()
				got, err := c.Connect("/", authOf(tok))
				if err != nil {
					return err
				}
				if !connected(got) {
					return fmt.Errorf("refused: %s", got)
				}
				return nil
			}
			queriesBefore := dir.Queries()
			xactBefore := committed(b, dsn)
			b.ReportAllocs()
			b.ResetTimer()
			if bc.storm {
				var failed atomic.Value
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := handshake(); err != nil {
							failed.Store(err)
						}
					}
				})
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
			} else {
				for range b.N {
					if err := handshake(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(dir.Queries()-queriesBefore+queries.Load())/float64(b.N), "queries/handshake")
			// A backend reports its statistics when it ends (an idle one
			// only every 10 s): close the pool's, then give the stats a
			// moment. committed's own query is one transaction.
			closePool(pool)
			time.Sleep(1500 * time.Millisecond)
			b.ReportMetric(float64(committed(b, dsn)-xactBefore-1)/float64(b.N), "db-xacts/handshake")
		})
	}
}

// connPool opens one connection per core: what a query per handshake
// would run on.
func connPool(b *testing.B, dsn string) chan *pgx.Conn {
	b.Helper()
	pool := make(chan *pgx.Conn, runtime.GOMAXPROCS(0))
	for range cap(pool) {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		pool <- conn
	}
	return pool
}

func closePool(pool chan *pgx.Conn) {
	for range cap(pool) {
		conn := <-pool
		_ = conn.Close(context.Background())
	}
}

// benchUsers makes a database with n users (ids 1..n, user 4242 a viewer)
// and a directory loaded from it.
func benchUsers(b *testing.B, n int) (string, *accounts.Directory) {
	b.Helper()
	dsn := pg.NewDatabase(b)
	pgtest.Exec(b, dsn, sql.GraceGiverSchema,
		fmt.Sprintf(`INSERT INTO users (id, username, password_hash, role) SELECT i, 'u' || i, 'x', 'viewer' FROM generate_series(1, %d) i`, n))
	ctx := context.Background()
	dir := accounts.New(accounts.Columns{Table: "public.users", ID: "id", Role: "role", MemberID: "member_id"})
	if err := dir.Load(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	return dsn, dir
}

// committed is the database's committed transactions so far.
func committed(b *testing.B, dsn string) int64 {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
