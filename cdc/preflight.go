package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Problem is one preflight failure and the SQL that fixes it.
type Problem struct {
	Message string
	Fix     string // SQL to run (by an administrator), may be empty
}

// PreflightError lists every problem found, so one run shows them all.
type PreflightError struct {
	Problems []Problem
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	b.WriteString("preflight: PostgreSQL is not ready for walcast:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Message)
		if p.Fix != "" {
			b.WriteString("\n    fix: ")
			b.WriteString(p.Fix)
		}
	}
	return b.String()
}

// Preflight checks, over an ordinary connection, that the server and the
// configured tables can be streamed without harming the application.
// Problems come back as a *PreflightError; warnings do not stop walcast.
func Preflight(ctx context.Context, conn *pgx.Conn, cfg Config) (warnings []string, err error) {
	findings, err := preflight(ctx, conn, cfg.withDefaults())
	var problems []Problem
	for _, f := range findings {
		switch f.Severity {
		case SeverityWarning:
			warnings = append(warnings, f.Message+" Consider: "+f.Fix)
		case SeverityProblem:
			problems = append(problems, Problem{Message: f.Message, Fix: f.Fix})
		}
	}
	if err != nil {
		return warnings, err
	}
	if len(problems) > 0 {
		return warnings, &PreflightError{Problems: problems}
	}
	return warnings, nil
}

// preflight is Preflight's checks as findings, those that pass included.
func preflight(ctx context.Context, conn *pgx.Conn, cfg Config) ([]Finding, error) {
	var out []Finding
	var walLevel, keepSize string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), coalesce(current_setting('max_slot_wal_keep_size', true), '')").Scan(&walLevel, &keepSize); err != nil {
		return nil, fmt.Errorf("preflight: read settings: %w", err)
	}
	if walLevel != "logical" {
		out = append(out, Finding{Check: CheckWALLevel, Severity: SeverityProblem,
			Message: fmt.Sprintf("wal_level is %q, logical replication needs \"logical\" (takes effect after a PostgreSQL restart; on managed services set it in the parameter group, e.g. rds.logical_replication=1)", walLevel),
			Fix:     "ALTER SYSTEM SET wal_level = logical;  -- then restart PostgreSQL",
		})
	} else {
		out = append(out, Finding{Check: CheckWALLevel, Message: "wal_level is logical"})
	}
	switch keepSize {
	case "-1":
		out = append(out, Finding{Check: CheckKeepSize, Severity: SeverityWarning,
			Message: "max_slot_wal_keep_size is unlimited (-1): if walcast is abandoned without its slot being dropped, the slot keeps WAL forever and can fill the disk.",
			Fix:     "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf();",
		})
	case "":
		out = append(out, Finding{Check: CheckKeepSize, Message: "this server has no max_slot_wal_keep_size (before PostgreSQL 13): a slot nobody reads keeps WAL until it is dropped"})
	default:
		out = append(out, Finding{Check: CheckKeepSize, Message: "max_slot_wal_keep_size is " + keepSize + ": a slot left behind cannot keep more WAL than that"})
	}

	var role string
	var canReplicate bool
	err := conn.QueryRow(ctx, `SELECT current_user::text,
		r.rolsuper OR r.rolreplication OR EXISTS (
			SELECT 1 FROM pg_roles m
			WHERE m.rolname IN ('rds_replication', 'rds_superuser')
			  AND pg_has_role(current_user, m.oid, 'member'))
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&role, &canReplicate)
	if err != nil {
		return out, fmt.Errorf("preflight: read role: %w", err)
	}
	if !canReplicate {
		out = append(out, Finding{Check: CheckReplicationRole, Severity: SeverityProblem,
			Message: fmt.Sprintf("role %q may not use replication (needs the REPLICATION attribute; on Amazon RDS/Aurora membership in rds_replication)", role),
			Fix:     fmt.Sprintf("ALTER ROLE %s REPLICATION;  -- on RDS: GRANT rds_replication TO %s;", quoteIdent(role), quoteIdent(role)),
		})
	} else {
		out = append(out, Finding{Check: CheckReplicationRole, Message: fmt.Sprintf("role %q may use replication", role)})
	}

	for _, spec := range cfg.Tables {
		p, err := checkTable(ctx, conn, spec)
		if err != nil {
			return out, err
		}
		out = append(out, p...)
	}
	return out, nil
}

// checkTable refuses tables whose UPDATE and DELETE would start failing in
// the application once published: PostgreSQL rejects those statements on
// a published table without a usable replica identity, and (15+) when a
// column list does not cover the replica identity, which REPLICA IDENTITY
// FULL makes every column.
func checkTable(ctx context.Context, conn *pgx.Conn, spec TableSpec) ([]Finding, error) {
	name := quoteTable(spec.Table)
	var ident string
	var kind string
	var hasPK, hasIdentIndex bool
	var keyCols, allCols []string
	err := conn.QueryRow(ctx, `SELECT c.relreplident::text, c.relkind::text,
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),
		coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
			FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = c.oid AND (i.indisreplident OR (c.relreplident = 'd' AND i.indisprimary))), '{}'),
		coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}')
		FROM pg_class c WHERE c.oid = to_regclass($1)`, name).
		Scan(&ident, &kind, &hasPK, &hasIdentIndex, &keyCols, &allCols)
	table := spec.Table.String()
	problem := func(msg, fix string) Finding {
		return Finding{Check: CheckTable, Subject: table, Severity: SeverityProblem, Message: msg, Fix: fix}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return []Finding{problem(fmt.Sprintf("table %s does not exist (names are case-sensitive as configured)", spec.Table), "")}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("preflight: inspect table %s: %w", spec.Table, err)
	}
	if kind != "r" && kind != "p" {
		return []Finding{problem(fmt.Sprintf("%s is not a table (relkind %q): only tables can be published", spec.Table, kind), "")}, nil
	}
	var problems []Finding
	for _, c := range spec.Columns {
		if !slices.Contains(allCols, c) {
			problems = append(problems, problem(fmt.Sprintf("table %s has no column %q (configured column list)", spec.Table, c), ""))
		}
	}
	noIdentity := problem(
		fmt.Sprintf("table %s has no replica identity: once published, the application's own UPDATE and DELETE on it would fail (\"cannot update table because it does not have a replica identity\"). Give it a primary key, or choose a unique index or FULL", spec.Table),
		fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (id);  -- or: ALTER TABLE %s REPLICA IDENTITY FULL;", name, name))
	switch ident {
	case "n":
		problems = append(problems, noIdentity)
	case "d":
		if !hasPK {
			problems = append(problems, noIdentity)
		}
	case "i":
		if !hasIdentIndex {
			problems = append(problems, noIdentity)
		}
	case "f":
		if len(spec.Columns) > 0 && !sameSet(spec.Columns, allCols) {
			problems = append(problems, problem(
				fmt.Sprintf("table %s has REPLICA IDENTITY FULL and a publication column list: PostgreSQL then rejects the application's UPDATE and DELETE (the column list must cover the replica identity, which FULL makes every column). Use a key identity, or publish every column", spec.Table),
				fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT;  -- or drop the column list for %s", name, spec.Table)))
		}
	}
	if ident != "f" && len(spec.Columns) > 0 {
		var missing []string
		for _, k := range keyCols {
			if !slices.Contains(spec.Columns, k) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, problem(
				fmt.Sprintf("the column list for %s leaves out replica identity column(s) %s: PostgreSQL would then reject the application's UPDATE and DELETE on it", spec.Table, strings.Join(missing, ", ")),
				fmt.Sprintf("add %s to the configured columns of %s", strings.Join(missing, ", "), spec.Table)))
		}
	}
	if len(problems) == 0 {
		identity := map[string]string{"d": "its primary key", "f": "FULL (the whole old row)", "i": "a unique index"}[ident]
		if len(keyCols) > 0 {
			identity += " (" + strings.Join(keyCols, ", ") + ")"
		}
		return []Finding{{Check: CheckTable, Subject: table, Message: fmt.Sprintf("table %s can be published: replica identity %s", table, identity)}}, nil
	}
	return problems, nil
}
