package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestServerLifecycle(t *testing.T) {
	srv, err := Start(Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()

	dsn := srv.NewDatabase(t)
	if got := query(t, dsn, "SHOW wal_level"); got != "logical" {
		t.Errorf("wal_level = %q, want logical", got)
	}
	if got := query(t, dsn, "SELECT current_user::text"); got != Superuser {
		t.Errorf("current_user = %q", got)
	}
	if got := query(t, dsn, "SELECT current_database()::text"); got != DatabaseName(dsn) {
		t.Errorf("database = %q, want %q", got, DatabaseName(dsn))
	}

	// TLS with the self-signed certificate verified.
	tlsDSN := srv.TLSConnString(DatabaseName(dsn))
	if got := query(t, tlsDSN, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "true" {
		t.Errorf("ssl = %q over %s", got, tlsDSN)
	}

	ctx := context.Background()
	if err := srv.CreateRole(ctx, "norepl", false); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateRole(ctx, "repl", true); err != nil {
		t.Fatal(err)
	}
	if got := query(t, srv.ConnStringAs("repl", DatabaseName(dsn)), "SELECT rolreplication::text FROM pg_roles WHERE rolname = current_user"); got != "true" {
		t.Errorf("repl rolreplication = %q", got)
	}
	if got := query(t, srv.ConnStringAs("norepl", DatabaseName(dsn)), "SELECT (rolreplication OR rolsuper)::text FROM pg_roles WHERE rolname = current_user"); got != "false" {
		t.Errorf("norepl rolreplication = %q", got)
	}

	// Data survives a crash and a clean restart on the same port.
	if err := srv.Exec(ctx, DatabaseName(dsn), "CREATE TABLE t (id int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"immediate", "fast"} {
		if err := srv.Restart(mode); err != nil {
			t.Fatalf("restart %s: %v", mode, err)
		}
		if got := query(t, dsn, "SELECT id::text FROM t"); got != "42" {
			t.Errorf("after %s restart: %q", mode, got)
		}
	}
	if !strings.Contains(srv.ConnString("x"), "127.0.0.1") {
		t.Errorf("conn string %q not on loopback", srv.ConnString("x"))
	}
}
