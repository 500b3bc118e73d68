package walcastproc

import (
	"context"
	"fmt"

	"github.com/walcast/walcast/internal/pgtest"
	"github.com/walcast/walcast/sql"
)

// BenchSchema is the example schema with the one member the benchmarks'
// donations are made by and the admin user (id 1) their tokens name:
// walcast refuses tokens of users it does not know.
var BenchSchema = sql.GraceGiverSchema + `; INSERT INTO members (id, first_name, last_name) VALUES ('m-1', 'Bench', 'Donor');
	INSERT INTO users (id, username, password_hash, role) VALUES (1, 'bench', 'x', 'admin')`

// Postgres starts a throwaway PostgreSQL (internal/pgtest) with one
// database per name in dbs, each loaded with schema. The caller closes it.
func Postgres(ctx context.Context, schema string, dbs ...string) (*pgtest.Server, error) {
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	for _, db := range dbs {
		if err := pg.CreateDatabase(ctx, db); err != nil {
			pg.Close()
			return nil, fmt.Errorf("create database %s: %w", db, err)
		}
		if err := pg.Exec(ctx, db, schema); err != nil {
			pg.Close()
			return nil, fmt.Errorf("load the schema into %s: %w", db, err)
		}
	}
	return pg, nil
}

// Bench is what a benchmark that runs walcast against a database starts
// with: the binary built from this tree, and a throwaway PostgreSQL whose
// database "bench" holds BenchSchema.
type Bench struct {
	Bin       string
	PG        *pgtest.Server
	DSN       string // of database "bench"
	removeBin func()
}

// StartBench builds walcast and starts PostgreSQL; Close undoes both.
func StartBench(ctx context.Context) (*Bench, error) {
	bin, remove, err := Build()
	if err != nil {
		return nil, err
	}
	pg, err := Postgres(ctx, BenchSchema, "bench")
	if err != nil {
		remove()
		return nil, err
	}
	return &Bench{Bin: bin, PG: pg, DSN: pg.ConnString("bench"), removeBin: remove}, nil
}

// Close stops PostgreSQL and removes the binary.
func (b *Bench) Close() {
	b.PG.Close()
	b.removeBin()
}
