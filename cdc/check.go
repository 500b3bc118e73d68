package cdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Severity says whether a Finding stops walcast.
type Severity int

const (
	SeverityOK      Severity = iota
	SeverityWarning          // walcast starts, but should not be left so
	SeverityProblem          // walcast refuses to start
)

func (s Severity) String() string {
	switch s {
	case SeverityWarning:
		return "warning"
	case SeverityProblem:
		return "problem"
	}
	return "ok"
}

// MarshalText writes the severity's name (JSON reports).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one result of Check: what was looked at, what was found and
// the SQL or setting that fixes it.
type Finding struct {
	Check    string // one of the Check* names
	Subject  string // the table or slot, when it is about one
	Severity Severity
	Message  string
	Fix      string // empty when nothing is to be done
	// Err is the condition behind a problem that has an error of its own
	// (ErrSlotLost, ErrSlotInvalidated), for callers that add advice.
	Err error `json:"-"`
}

// What Check looks at.
const (
	CheckConnection            = "connection"
	CheckWALLevel              = "wal_level"
	CheckKeepSize              = "max_slot_wal_keep_size"
	CheckReplicationRole       = "replication_role"
	CheckReplicationConnection = "replication_connection"
	CheckTable                 = "table"
	CheckSelect                = "select"
	CheckPublication           = "publication"
	CheckSlot                  = "slot"
)

// Check inspects the database for cfg as Setup and the reader would use
// it, and changes nothing: the connection, wal_level and
// max_slot_wal_keep_size, the role's replication and SELECT rights, a
// replication connection, each table's replica identity against its
// column list, the publication, and the slot's state and lag. Without
// Tables the tables and the publication are not checked. A connection
// that fails ends the list.
func Check(ctx context.Context, cfg Config) []Finding {
	cfg = cfg.withDefaults()
	conn, err := pgx.Connect(ctx, cfg.ConnString)
	if err != nil {
		return []Finding{{Check: CheckConnection, Severity: SeverityProblem,
			Message: "cannot connect to PostgreSQL: " + err.Error(),
			Fix:     "check the URL (host, port, database, user, password, sslmode) and that pg_hba.conf admits this client"}}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	fail := func(out []Finding, check string, err error) []Finding {
		return append(out, Finding{Check: check, Severity: SeverityProblem, Message: err.Error()})
	}
	var version int
	var who string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, format('PostgreSQL %s, database %s, role %s', current_setting('server_version'), current_database(), current_user)").Scan(&version, &who); err != nil {
		return fail(nil, CheckConnection, fmt.Errorf("read the server version: %w", err))
	}
	out := []Finding{{Check: CheckConnection, Message: "connected: " + who}}
	if version < 150000 {
		out = append(out, Finding{Check: CheckConnection, Severity: SeverityWarning,
			Message: "PostgreSQL before 15 cannot publish column lists: every column of the published tables enters the replication stream (walcast's allow-lists still keep the others out of events)",
			Fix:     "upgrade to PostgreSQL 15 or later"})
	}
	pre, err := preflight(ctx, conn, cfg)
	out = append(out, pre...)
	if err != nil {
		return fail(out, CheckTable, err)
	}
	replicates := true
	for _, f := range pre {
		if f.Check == CheckReplicationRole && f.Severity == SeverityProblem {
			replicates = false
		}
	}
	if replicates {
		out = append(out, checkReplicationConnection(ctx, cfg))
	}
	if len(cfg.Tables) > 0 {
		sel, err := checkSelect(ctx, conn, cfg.Tables)
		if err != nil {
			return fail(out, CheckSelect, err)
		}
		out = append(out, sel...)
		pub, err := checkPublication(ctx, conn, cfg, version)
		if err != nil {
			return fail(out, CheckPublication, err)
		}
		out = append(out, pub...)
	}
	slot, err := checkSlot(ctx, conn, cfg)
	if err != nil {
		return fail(out, CheckSlot, err)
	}
	return append(out, slot...)
}

// checkReplicationConnection opens a replication connection as the
// reader does: pg_hba.conf and the role's rights both decide.
func checkReplicationConnection(ctx context.Context, cfg Config) Finding {
	rconn, err := connectReplication(ctx, cfg.ConnString)
	if err == nil {
		defer rconn.Close(context.WithoutCancel(ctx))
		var ident pglogrepl.IdentifySystemResult
		if ident, err = pglogrepl.IdentifySystem(ctx, rconn); err == nil {
			return Finding{Check: CheckReplicationConnection, Message: fmt.Sprintf("a replication connection works (system %s, timeline %d)", ident.SystemID, ident.Timeline)}
		}
	}
	return Finding{Check: CheckReplicationConnection, Severity: SeverityProblem,
		Message: "a replication connection fails: " + err.Error(),
		Fix:     "the role needs REPLICATION (on RDS: rds_replication), and pg_hba.conf must admit its connections to this database"}
}

// checkSelect finds the tables the role may not read. Tables that do not
// exist are checkTable's to report.
func checkSelect(ctx context.Context, conn *pgx.Conn, tables []TableSpec) ([]Finding, error) {
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user::text").Scan(&role); err != nil {
		return nil, fmt.Errorf("read role: %w", err)
	}
	var denied []string
	for _, spec := range tables {
		var exists, ok bool
		err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL, to_regclass($1) IS NOT NULL AND has_table_privilege(to_regclass($1), 'SELECT')",
			quoteTable(spec.Table)).Scan(&exists, &ok)
		if err != nil {
			return nil, fmt.Errorf("SELECT right on %s: %w", spec.Table, err)
		}
		if exists && !ok {
			denied = append(denied, quoteTable(spec.Table))
		}
	}
	if len(denied) == 0 {
		return []Finding{{Check: CheckSelect, Message: fmt.Sprintf("role %q may SELECT every table", role)}}, nil
	}
	return []Finding{{Check: CheckSelect, Severity: SeverityProblem,
		Message: fmt.Sprintf("role %q may not SELECT %s", role, strings.Join(denied, ", ")),
		Fix:     fmt.Sprintf("GRANT SELECT ON %s TO %s;", strings.Join(denied, ", "), quoteIdent(role))}}, nil
}

// checkPublication compares the publication with the configuration, or
// says whether walcast may create it.
func checkPublication(ctx context.Context, conn *pgx.Conn, cfg Config, version int) ([]Finding, error) {
	pub, err := inspectPublication(ctx, conn, cfg, version)
	if err != nil {
		return nil, err
	}
	if pub.exists {
		if len(pub.diffs) > 0 {
			return []Finding{{Check: CheckPublication, Subject: cfg.Publication, Severity: SeverityProblem,
				Message: fmt.Sprintf("publication %q differs from walcast's configuration: %s", cfg.Publication, strings.Join(pub.diffs, "; ")),
				Fix:     alterPublicationSQL(cfg, pub.allTables) + ";"}}, nil
		}
		return []Finding{{Check: CheckPublication, Subject: cfg.Publication, Message: fmt.Sprintf("publication %q publishes the configured tables and columns", cfg.Publication)}}, nil
	}
	names := make([]string, len(cfg.Tables))
	for i, spec := range cfg.Tables {
		names[i] = quoteTable(spec.Table)
	}
	var mayCreate bool
	err = conn.QueryRow(ctx, `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		OR (has_database_privilege(current_database(), 'CREATE')
		    AND coalesce((SELECT bool_and(pg_has_role(current_user, c.relowner, 'USAGE'))
		                  FROM pg_class c WHERE c.oid IN (SELECT to_regclass(n) FROM unnest($1::text[]) n)), true))`, names).Scan(&mayCreate)
	if err != nil {
		return nil, fmt.Errorf("publication %q: may the role create it: %w", cfg.Publication, err)
	}
	if mayCreate {
		return []Finding{{Check: CheckPublication, Subject: cfg.Publication, Message: fmt.Sprintf("publication %q does not exist yet; walcast creates it at start", cfg.Publication)}}, nil
	}
	return []Finding{{Check: CheckPublication, Subject: cfg.Publication, Severity: SeverityProblem,
		Message: fmt.Sprintf("publication %q does not exist and walcast's role may not create it (that takes CREATE on the database and owning the tables)", cfg.Publication),
		Fix:     createPublicationSQL(cfg) + ";  -- as the tables' owner"}}, nil
}

// checkSlot reports the slot's state and lag, or whether walcast can
// create it.
func checkSlot(ctx context.Context, conn *pgx.Conn, cfg Config) ([]Finding, error) {
	h, err := QuerySlotHealth(ctx, conn, cfg.Slot)
	if err != nil {
		return nil, err
	}
	finding := func(sev Severity, msg, fix string) Finding {
		return Finding{Check: CheckSlot, Subject: cfg.Slot, Severity: sev, Message: msg, Fix: fix}
	}
	drop := fmt.Sprintf("SELECT pg_drop_replication_slot(%s);", quoteLiteral(cfg.Slot))
	if h.Exists {
		var plugin, database, holder string
		err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database::text, ''), coalesce(active_pid::text, '')
			FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&plugin, &database, &holder)
		if err != nil {
			return nil, fmt.Errorf("slot %q: %w", cfg.Slot, err)
		}
		if plugin != "pgoutput" || database != conn.Config().Database {
			return []Finding{finding(SeverityProblem,
				fmt.Sprintf("replication slot %q is not a pgoutput slot of database %q (plugin %q, database %q)", cfg.Slot, conn.Config().Database, plugin, database),
				"choose another slot name, or drop it: "+drop)}, nil
		}
		state := fmt.Sprintf("replication slot %q: %s behind, keeps %s of WAL, wal_status %s", cfg.Slot, bytesText(h.LagBytes), bytesText(h.RetainedBytes), h.WALStatus)
		if h.SafeWALSize != nil {
			state += fmt.Sprintf(", %s more before max_slot_wal_keep_size", bytesText(*h.SafeWALSize))
		}
		if holder != "" {
			state += "; read now by process " + holder + " (a walcast instance: another one stands by)"
		}
		switch h.WALStatus {
		case "lost":
			f := finding(SeverityProblem, state+": PostgreSQL removed WAL it still needed, so changes were lost", drop+"  -- then let walcast create it again; raise max_slot_wal_keep_size")
			f.Err = ErrSlotInvalidated
			return []Finding{f}, nil
		case "unreserved":
			return []Finding{finding(SeverityWarning, state+": past max_slot_wal_keep_size, the next checkpoint may invalidate it",
				"start walcast so that it reads the slot, or raise max_slot_wal_keep_size")}, nil
		}
		return []Finding{finding(SeverityOK, state, "")}, nil
	}

	mark, err := readMarker(ctx, conn, cfg.Publication)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if mark.Slot == cfg.Slot {
		if cfg.RecreateSlot {
			return []Finding{finding(SeverityWarning,
				fmt.Sprintf("replication slot %q, which walcast streamed through, is gone: changes were lost; walcast creates it again and tells clients to refetch", cfg.Slot), "")}, nil
		}
		f := finding(SeverityProblem, fmt.Sprintf("replication slot %q, which walcast streamed through (as recorded on publication %q), is gone: changes made since were lost", cfg.Slot, cfg.Publication), "")
		f.Err = ErrSlotLost
		return []Finding{f}, nil
	}
	var slots, maxSlots, senders, maxSenders int
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots)::int, current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_stat_replication)::int, current_setting('max_wal_senders')::int`).Scan(&slots, &maxSlots, &senders, &maxSenders)
	if err != nil {
		return nil, fmt.Errorf("count replication slots: %w", err)
	}
	var out []Finding
	if slots >= maxSlots {
		out = append(out, finding(SeverityProblem,
			fmt.Sprintf("replication slot %q does not exist and all %d replication slots (max_replication_slots) are taken", cfg.Slot, maxSlots),
			fmt.Sprintf("drop a slot nobody reads (SELECT slot_name, active FROM pg_replication_slots;), or ALTER SYSTEM SET max_replication_slots = %d;  -- then restart PostgreSQL", maxSlots+1)))
	} else {
		out = append(out, finding(SeverityOK, fmt.Sprintf("replication slot %q does not exist yet; walcast creates it at start (%d of %d slots taken)", cfg.Slot, slots, maxSlots), ""))
	}
	if senders >= maxSenders {
		out = append(out, finding(SeverityProblem,
			fmt.Sprintf("all %d WAL senders (max_wal_senders) are busy: walcast's replication connection would be refused", maxSenders),
			fmt.Sprintf("ALTER SYSTEM SET max_wal_senders = %d;  -- then restart PostgreSQL", maxSenders+1)))
	}
	return out, nil
}

// bytesText writes a byte count the way an operator reads it.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
