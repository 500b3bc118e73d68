package cdc

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestDescribe: the catalog lists every user table with its columns (in
// order, dropped ones left out), primary key (in index order) and replica
// identity, and nothing of the system schemas.
func TestDescribe(t *testing.T) {
	dsn, _ := newDB(t, srv, `
		CREATE TABLE members (id text PRIMARY KEY, first_name text, dropped int);
		ALTER TABLE members DROP COLUMN dropped;
		CREATE TABLE donations (id bigint PRIMARY KEY, member_id text, amount numeric);
		ALTER TABLE donations REPLICA IDENTITY FULL;
		CREATE TABLE pairs (b int NOT NULL, a int NOT NULL, note text, PRIMARY KEY (b, a));
		CREATE TABLE codes (code text NOT NULL, label text);
		CREATE UNIQUE INDEX codes_code ON codes (code);
		ALTER TABLE codes REPLICA IDENTITY USING INDEX codes_code;
		CREATE TABLE logs (line text);
		CREATE TABLE quiet (id int PRIMARY KEY);
		ALTER TABLE quiet REPLICA IDENTITY NOTHING;
		CREATE SCHEMA audit;
		CREATE TABLE audit."Events" (id int PRIMARY KEY);
		CREATE TABLE parts (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
		CREATE VIEW member_names AS SELECT first_name FROM members;`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, err := DescribeDatabase(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	want := Catalog{
		"public.members":   {Columns: []string{"id", "first_name"}, PrimaryKey: []string{"id"}, Identity: IdentityDefault, IdentityColumns: []string{"id"}},
		"public.donations": {Columns: []string{"id", "member_id", "amount"}, PrimaryKey: []string{"id"}, Identity: IdentityFull, IdentityColumns: []string{}},
		"public.pairs":     {Columns: []string{"b", "a", "note"}, PrimaryKey: []string{"b", "a"}, Identity: IdentityDefault, IdentityColumns: []string{"b", "a"}},
		"public.codes":     {Columns: []string{"code", "label"}, PrimaryKey: []string{}, Identity: IdentityIndex, IdentityColumns: []string{"code"}},
		"public.logs":      {Columns: []string{"line"}, PrimaryKey: []string{}, Identity: IdentityDefault, IdentityColumns: []string{}},
		"public.quiet":     {Columns: []string{"id"}, PrimaryKey: []string{"id"}, Identity: IdentityNothing, IdentityColumns: []string{}},
		"audit.Events":     {Columns: []string{"id"}, PrimaryKey: []string{"id"}, Identity: IdentityDefault, IdentityColumns: []string{"id"}},
		"public.parts":     {Columns: []string{"id", "day"}, PrimaryKey: []string{"id", "day"}, Identity: IdentityDefault, IdentityColumns: []string{"id", "day"}},
	}
	if !reflect.DeepEqual(cat, want) {
		t.Errorf("catalog:\n got %+v\nwant %+v", cat, want)
	}
	if cols := cat.Columns(); !reflect.DeepEqual(cols["public.pairs"], []string{"b", "a", "note"}) || len(cols) != len(want) {
		t.Errorf("Columns() = %v", cols)
	}
}
