package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults for Config.
const (
	DefaultPublication    = "walcast"
	DefaultSlot           = "walcast"
	DefaultStatusInterval = 10 * time.Second
	DefaultStandbyRetry   = 5 * time.Second
	DefaultMaxBackoff     = 10 * time.Second
)

// TableSpec is one table to tail and, optionally, the columns to publish.
type TableSpec struct {
	Table Table
	// Columns is the publication column list (PostgreSQL 15+). Empty means
	// every column. Listing columns keeps the others (password hashes...)
	// inside the database: PostgreSQL never sends them.
	Columns []string
}

func (s TableSpec) String() string {
	if len(s.Columns) == 0 {
		return s.Table.String()
	}
	return s.Table.String() + "(" + strings.Join(s.Columns, ",") + ")"
}

// ParseTableSpec parses "schema.table" or "table" (schema public), with an
// optional column list: "public.users(id,email,role)". Names are taken as
// written (no case folding, no quotes).
func ParseTableSpec(s string) (TableSpec, error) {
	s = strings.TrimSpace(s)
	var spec TableSpec
	name := s
	if i := strings.IndexByte(s, '('); i >= 0 {
		if !strings.HasSuffix(s, ")") {
			return spec, fmt.Errorf("table %q: column list must end with ')'", s)
		}
		name = strings.TrimSpace(s[:i])
		for _, c := range strings.Split(s[i+1:len(s)-1], ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				return spec, fmt.Errorf("table %q: empty column name", s)
			}
			spec.Columns = append(spec.Columns, c)
		}
	}
	schema, table, ok := strings.Cut(name, ".")
	if !ok {
		schema, table = "public", name
	}
	if schema == "" || table == "" || strings.ContainsAny(table, ".()") {
		return spec, fmt.Errorf("table %q: want schema.table or table, optionally followed by (col,...)", s)
	}
	spec.Table = Table{Schema: schema, Name: table}
	return spec, nil
}

// Config configures setup and the reader.
type Config struct {
	// ConnString is the DATABASE_URL (pgx syntax; sslmode and the other TLS
	// parameters apply to the replication connection too).
	ConnString string
	// Publication and Slot name walcast's publication and logical slot
	// (defaults "walcast").
	Publication string
	Slot        string
	Tables      []TableSpec
	// RecreateSlot accepts that changes were lost when walcast streamed
	// from this database before and its slot is gone: a new slot is
	// created and the reader first delivers an OpResync change telling
	// clients to refetch.
	RecreateSlot bool
	// StartLSN, when later than the slot's confirmed position, is where
	// streaming starts (transactions committed before it are skipped): a
	// caller that already published up to a position resumes from there.
	StartLSN pglogrepl.LSN
	// StatusInterval is the longest time between standby status updates
	// (default 10 s; PostgreSQL's wal_sender_timeout is 60 s by default).
	StatusInterval time.Duration
	// StandbyRetry is how often a standby (another reader holds the slot)
	// tries to take over (default 5 s).
	StandbyRetry time.Duration
	// MaxBackoff caps the reconnect backoff after a connection loss
	// (default 10 s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// Observer, when set, hears of the reader's state changes and failed
	// sessions (metrics).
	Observer Observer
}

func (c Config) withDefaults() Config {
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.StandbyRetry <= 0 {
		c.StandbyRetry = DefaultStandbyRetry
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	return c
}

// SetupResult describes what Setup found and did.
type SetupResult struct {
	SystemID           string
	Timeline           int32
	ServerVersion      int // server_version_num, e.g. 150004
	PublicationCreated bool
	SlotCreated        bool
	// ResyncPending: the slot was recreated (RecreateSlot) and the reader
	// will deliver an OpResync before any change.
	ResyncPending bool
	// Warnings are preflight findings that do not stop walcast (for
	// example max_slot_wal_keep_size unlimited).
	Warnings []string
}

// ErrSlotLost reports that walcast streamed from this database before and
// its replication slot is gone, so changes made meanwhile were lost.
var ErrSlotLost = errors.New("replication slot lost")

// Setup prepares the database for streaming, idempotently: preflight
// checks, the publication (created when absent, verified when present) and
// the permanent logical slot (created on first run only). Run it before
// Reader.Run on every start.
func Setup(ctx context.Context, cfg Config) (SetupResult, error) {
	cfg = cfg.withDefaults()
	var res SetupResult
	if len(cfg.Tables) == 0 {
		return res, errors.New("setup: no tables configured")
	}
	conn, err := pgx.Connect(ctx, cfg.ConnString)
	if err != nil {
		return res, fmt.Errorf("setup: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if v, err := strconv.Atoi(conn.PgConn().ParameterStatus("server_version_num")); err == nil {
		res.ServerVersion = v
	} else if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&res.ServerVersion); err != nil {
		return res, fmt.Errorf("setup: server version: %w", err)
	}

	warnings, err := Preflight(ctx, conn, cfg)
	res.Warnings = warnings
	for _, w := range warnings {
		cfg.Logger.Warn("preflight", "warning", w)
	}
	if err != nil {
		return res, err
	}

	created, err := ensurePublication(ctx, conn, cfg, res.ServerVersion)
	if err != nil {
		return res, err
	}
	res.PublicationCreated = created

	mark, err := readMarker(ctx, conn, cfg.Publication)
	if err != nil {
		return res, err
	}

	rconn, err := connectReplication(ctx, cfg.ConnString)
	if err != nil {
		return res, fmt.Errorf("setup: %w", err)
	}
	defer rconn.Close(context.WithoutCancel(ctx))
	ident, err := pglogrepl.IdentifySystem(ctx, rconn)
	if err != nil {
		return res, fmt.Errorf("setup: identify system: %w", err)
	}
	res.SystemID, res.Timeline = ident.SystemID, ident.Timeline

	var slotExists bool
	var plugin, slotDB string
	err = conn.QueryRow(ctx, "SELECT coalesce(plugin, ''), coalesce(database::text, '') FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&plugin, &slotDB)
	switch {
	case err == nil:
		slotExists = true
	case errors.Is(err, pgx.ErrNoRows):
	default:
		return res, fmt.Errorf("setup: look up slot %q: %w", cfg.Slot, err)
	}
	if slotExists {
		if plugin != "pgoutput" || slotDB != conn.Config().Database {
			return res, fmt.Errorf("setup: replication slot %q exists but is not a pgoutput slot of database %q (plugin %q, database %q): choose another slot name or drop it: SELECT pg_drop_replication_slot('%s');",
				cfg.Slot, conn.Config().Database, plugin, slotDB, cfg.Slot)
		}
		res.ResyncPending = mark.Resync
		return res, nil
	}

	lost := mark.Slot == cfg.Slot
	if lost && !cfg.RecreateSlot {
		return res, fmt.Errorf("setup: %w: walcast streamed from this database through slot %q (recorded on publication %q) and the slot no longer exists (dropped by hand or lost in a failover): changes committed since are lost and walcast refuses to continue silently; Config.RecreateSlot accepts the gap and tells clients to refetch",
			ErrSlotLost, cfg.Slot, cfg.Publication)
	}
	if err := createSlot(ctx, rconn, cfg.Slot, res.ServerVersion); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" {
			// Another walcast instance created it a moment ago.
			return res, nil
		}
		return res, err
	}
	res.SlotCreated = true
	cfg.Logger.Info("created replication slot", "slot", cfg.Slot)

	mark = marker{
		Slot:     cfg.Slot,
		SystemID: ident.SystemID,
		Created:  time.Now().UTC().Format(time.RFC3339),
		Resync:   lost,
	}
	res.ResyncPending = mark.Resync
	if err := writeMarker(ctx, conn, cfg.Publication, mark); err != nil {
		// Without the marker a later loss of the slot goes unnoticed:
		// say so, but streaming itself works.
		msg := fmt.Sprintf("cannot record walcast's slot on publication %q (%v): if the slot is ever lost, walcast will not notice the gap. Grant ownership of the publication to walcast's role", cfg.Publication, err)
		res.Warnings = append(res.Warnings, msg)
		cfg.Logger.Warn(msg)
	}
	return res, nil
}

// createSlot creates the permanent logical slot without exporting a
// snapshot (walcast streams changes, it does not copy tables); with
// failover enabled where the server supports it (PostgreSQL 17+), so the
// slot survives a promotion of a synchronized standby.
func createSlot(ctx context.Context, rconn *pgconn.PgConn, slot string, serverVersion int) error {
	sql := "CREATE_REPLICATION_SLOT " + quoteIdent(slot) + " LOGICAL pgoutput NOEXPORT_SNAPSHOT"
	if serverVersion >= 170000 {
		sql = "CREATE_REPLICATION_SLOT " + quoteIdent(slot) + " LOGICAL pgoutput (SNAPSHOT 'nothing', FAILOVER true)"
	}
	if _, err := pglogrepl.ParseCreateReplicationSlot(rconn.Exec(ctx, sql)); err != nil {
		return fmt.Errorf("setup: create replication slot %q: %w", slot, err)
	}
	return nil
}

// connectReplication opens a replication=database connection. The session
// parameters fix the text formats pgoutput uses for values (the decoder
// relies on them).
func connectReplication(ctx context.Context, connString string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	cfg.RuntimeParams["application_name"] = "walcast"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	return conn, nil
}

// marker is what walcast records in its publication's comment: that it
// created a slot here (so a missing slot later means lost changes), and
// whether a resync notice is still to be delivered.
type marker struct {
	Slot     string `json:"slot,omitempty"`
	SystemID string `json:"system_id,omitempty"`
	Created  string `json:"created,omitempty"`
	Resync   bool   `json:"resync,omitempty"`
}

const markerPrefix = "walcast:"

func readMarker(ctx context.Context, conn *pgx.Conn, publication string) (marker, error) {
	var m marker
	var comment *string
	err := conn.QueryRow(ctx, "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1", publication).Scan(&comment)
	if err != nil {
		return m, fmt.Errorf("read publication %q comment: %w", publication, err)
	}
	if comment == nil || !strings.HasPrefix(*comment, markerPrefix) {
		return m, nil
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(*comment, markerPrefix)), &m); err != nil {
		return marker{}, fmt.Errorf("publication %q comment %q is not walcast's record: %w", publication, *comment, err)
	}
	return m, nil
}

func writeMarker(ctx context.Context, conn *pgx.Conn, publication string, m marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode marker: %w", err)
	}
	sql := "COMMENT ON PUBLICATION " + quoteIdent(publication) + " IS " + quoteLiteral(markerPrefix+string(b))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("comment on publication %q: %w", publication, err)
	}
	return nil
}

// ensurePublication creates the publication when absent, or checks that
// the existing one publishes exactly the configured tables and columns.
func ensurePublication(ctx context.Context, conn *pgx.Conn, cfg Config, serverVersion int) (created bool, err error) {
	pub, err := inspectPublication(ctx, conn, cfg, serverVersion)
	if err != nil {
		return false, fmt.Errorf("setup: %w", err)
	}
	if !pub.exists {
		sql := createPublicationSQL(cfg)
		if _, err := conn.Exec(ctx, sql); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42710" {
				// Another walcast instance created it a moment ago.
				return ensurePublication(ctx, conn, cfg, serverVersion)
			}
			if errors.As(err, &pgErr) && pgErr.Code == "42501" {
				return false, fmt.Errorf("setup: walcast's role may not create publication %q (%s). Have the tables' owner or a superuser run:\n  %s;", cfg.Publication, pgErr.Message, sql)
			}
			return false, fmt.Errorf("setup: create publication: %s: %w", sql, err)
		}
		cfg.Logger.Info("created publication", "publication", cfg.Publication, "sql", sql)
		return true, nil
	}
	if len(pub.diffs) == 0 {
		return false, nil
	}
	return false, fmt.Errorf("setup: publication %q differs from walcast's configuration: %s. To make it match, run:\n  %s;",
		cfg.Publication, strings.Join(pub.diffs, "; "), alterPublicationSQL(cfg, pub.allTables))
}

// publicationState is how an existing publication differs from the
// configuration.
type publicationState struct {
	exists, allTables bool
	diffs             []string
}

// inspectPublication compares the publication with cfg.
func inspectPublication(ctx context.Context, conn *pgx.Conn, cfg Config, serverVersion int) (publicationState, error) {
	var st publicationState
	var ins, upd, del, trunc bool
	err := conn.QueryRow(ctx, "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
		cfg.Publication).Scan(&st.allTables, &ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("look up publication %q: %w", cfg.Publication, err)
	}
	st.exists = true
	if st.allTables {
		st.diffs = append(st.diffs, "it is FOR ALL TABLES (walcast would receive every table's changes, secret columns included)")
	}
	var missingOps []string
	for _, op := range []struct {
		on   bool
		name string
	}{{ins, "insert"}, {upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
		if !op.on {
			missingOps = append(missingOps, op.name)
		}
	}
	if len(missingOps) > 0 {
		st.diffs = append(st.diffs, "it does not publish "+strings.Join(missingOps, ", "))
	}
	if st.allTables {
		return st, nil
	}
	published := map[Table][]string{}
	q := "SELECT schemaname::text, tablename::text, NULL::text[] FROM pg_publication_tables WHERE pubname = $1"
	if serverVersion >= 150000 {
		q = "SELECT schemaname::text, tablename::text, attnames::text[] FROM pg_publication_tables WHERE pubname = $1"
	}
	rows, err := conn.Query(ctx, q, cfg.Publication)
	if err != nil {
		return st, fmt.Errorf("list tables of publication %q: %w", cfg.Publication, err)
	}
	for rows.Next() {
		var t Table
		var cols []string
		if err := rows.Scan(&t.Schema, &t.Name, &cols); err != nil {
			rows.Close()
			return st, fmt.Errorf("list tables of publication %q: %w", cfg.Publication, err)
		}
		published[t] = cols
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("list tables of publication %q: %w", cfg.Publication, err)
	}
	for _, spec := range cfg.Tables {
		cols, ok := published[spec.Table]
		if !ok {
			st.diffs = append(st.diffs, "table "+spec.Table.String()+" is not published")
			continue
		}
		delete(published, spec.Table)
		if serverVersion < 150000 || cols == nil {
			continue
		}
		want := spec.Columns
		if len(want) == 0 {
			if want, err = tableColumns(ctx, conn, spec.Table); err != nil {
				return st, err
			}
		}
		if !sameSet(cols, want) {
			st.diffs = append(st.diffs, fmt.Sprintf("table %s publishes columns (%s), configured (%s)",
				spec.Table, strings.Join(cols, ","), strings.Join(want, ",")))
		}
	}
	extra := make([]string, 0, len(published))
	for t := range published {
		extra = append(extra, t.String())
	}
	slices.Sort(extra)
	for _, t := range extra {
		st.diffs = append(st.diffs, "table "+t+" is published but not configured")
	}
	return st, nil
}

func tableColumns(ctx context.Context, conn *pgx.Conn, t Table) ([]string, error) {
	var cols []string
	err := conn.QueryRow(ctx, "SELECT coalesce(array_agg(attname::text ORDER BY attnum), '{}') FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
		quoteTable(t)).Scan(&cols)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	return cols, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func publicationTableList(cfg Config) string {
	parts := make([]string, len(cfg.Tables))
	for i, spec := range cfg.Tables {
		parts[i] = quoteTable(spec.Table)
		if len(spec.Columns) > 0 {
			cols := make([]string, len(spec.Columns))
			for j, c := range spec.Columns {
				cols[j] = quoteIdent(c)
			}
			parts[i] += " (" + strings.Join(cols, ", ") + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func createPublicationSQL(cfg Config) string {
	return "CREATE PUBLICATION " + quoteIdent(cfg.Publication) + " FOR TABLE " + publicationTableList(cfg)
}

func alterPublicationSQL(cfg Config, allTables bool) string {
	if allTables {
		return "DROP PUBLICATION " + quoteIdent(cfg.Publication) + "; " + createPublicationSQL(cfg)
	}
	return "ALTER PUBLICATION " + quoteIdent(cfg.Publication) + " SET TABLE " + publicationTableList(cfg) +
		"; ALTER PUBLICATION " + quoteIdent(cfg.Publication) + " SET (publish = 'insert, update, delete, truncate')"
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteTable(t Table) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// quoteLiteral quotes a string for the simple query protocol (replication
// connections have no parameters); standard_conforming_strings is on since
// PostgreSQL 9.1.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
