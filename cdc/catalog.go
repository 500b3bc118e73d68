package cdc

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ReplicaIdentity is what a table writes to the WAL to identify the old
// row of an UPDATE or DELETE (pg_class.relreplident).
type ReplicaIdentity byte

const (
	IdentityDefault ReplicaIdentity = 'd' // the primary key, if there is one
	IdentityFull    ReplicaIdentity = 'f' // the whole old row
	IdentityIndex   ReplicaIdentity = 'i' // the columns of a chosen unique index
	IdentityNothing ReplicaIdentity = 'n' // nothing
)

// TableDescription is what the catalog says about one table.
type TableDescription struct {
	Columns    []string // in column order
	PrimaryKey []string // in index order; empty without one
	Identity   ReplicaIdentity
	// IdentityColumns identify an old row: the primary key's or the
	// identity index's columns, in column order. Empty for FULL (every
	// column) and NOTHING, and when the index the identity names is gone.
	IdentityColumns []string
}

// Catalog describes a database's tables (ordinary and partitioned, outside
// the system schemas) by schema-qualified name, "public.members".
type Catalog map[string]TableDescription

// Describe reads the catalog of the database conn is connected to.
func Describe(ctx context.Context, conn *pgx.Conn) (Catalog, error) {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname || '.' || c.relname, c.relreplident::text,
		       array(SELECT a.attname::text FROM pg_attribute a
		             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		             ORDER BY a.attnum),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
		                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
		                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		                 WHERE i.indrelid = c.oid
		                   AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`)
	if err != nil {
		return nil, fmt.Errorf("describe tables: %w", err)
	}
	defer rows.Close()
	cat := Catalog{}
	for rows.Next() {
		var name, ident string
		var t TableDescription
		if err := rows.Scan(&name, &ident, &t.Columns, &t.PrimaryKey, &t.IdentityColumns); err != nil {
			return nil, fmt.Errorf("describe tables: %w", err)
		}
		if len(ident) == 1 {
			t.Identity = ReplicaIdentity(ident[0])
		}
		cat[name] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe tables: %w", err)
	}
	return cat, nil
}

// DescribeDatabase connects to connString and reads its catalog.
func DescribeDatabase(ctx context.Context, connString string) (Catalog, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Describe(ctx, conn)
}

// Columns maps each table to its columns, in column order.
func (c Catalog) Columns() map[string][]string {
	out := make(map[string][]string, len(c))
	for name, t := range c {
		out[name] = t.Columns
	}
	return out
}
