// Package pgtest gives tests a throwaway PostgreSQL server (package
// pgtemp) and a fresh database per test.
//
// Typical use, one server per test package and one database per test
// (replication slots and publications are per database):
//
//	var srv *pgtest.Server
//
//	func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &srv) }
//
//	func TestX(t *testing.T) {
//		dsn := srv.NewDatabase(t) // connection string of a fresh database
//		...
//	}
package pgtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/pgtemp"
)

// SystemUser is the unprivileged account the server runs as when the test
// process is root.
const SystemUser = pgtemp.SystemUser

// Superuser is the database superuser role initdb creates.
const Superuser = pgtemp.Superuser

// Options configure a server.
type Options = pgtemp.Options

// Server is a running (or stopped) throwaway PostgreSQL.
type Server struct {
	*pgtemp.Server
}

// Start initialises a new cluster in a temporary directory and starts it.
func Start(opts Options) (*Server, error) {
	s, err := pgtemp.Start(opts)
	if err != nil {
		return nil, err
	}
	return &Server{s}, nil
}

// DatabaseName returns the database name of a connection string made by
// this package.
func DatabaseName(connString string) string { return pgtemp.DatabaseName(connString) }

// Main runs a test package with one shared server: it starts the server,
// stores it in *out, runs the tests, closes the server and exits.
//
// Fuzzing worker processes (go test -fuzz) run only the fuzz target: they
// get no server (*out stays nil), so fuzzing does not start one PostgreSQL
// per worker.
func Main(m *testing.M, opts Options, out **Server) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	srv, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	*out = srv
	// An interrupted test run (Ctrl-C, go test's own SIGTERM... not a
	// SIGKILL) still stops the server, which pg_ctl has detached from us.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = srv.Close()
		os.Exit(1)
	}()
	code := m.Run()
	signal.Stop(sigs)
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	os.Exit(code)
}

// NewDatabase creates a database named after the test and returns the
// superuser connection string to it. Names are unique per server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.Server.NewDatabase(ctx, t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Exec runs each statement as its own transaction, in order, on one
// connection to dsn, within a minute; the test fails on the first error.
func Exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("pgtest: exec %q: %v", s, err)
		}
	}
}
