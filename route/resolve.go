package route

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/walcast/walcast/cdc"
)

// Resolution is a routing configuration resolved against a database's
// catalog: what to publish and what the operator should know.
type Resolution struct {
	// Config is the configuration with defaults applied and each table's
	// key taken from its primary key where the file names none (and the
	// key is in the table's allow-list: a key outside it would leak in
	// DELETE payloads).
	Config Config
	// Tables are the tables to publish, with a column list where
	// PostgreSQL allows one (see Config.TableSpecs).
	Tables []cdc.TableSpec
	// Notes are findings that do not stop walcast, in table order.
	Notes []Note
}

// Note is a finding about the configuration against the database that
// does not stop walcast.
type Note struct {
	Warning bool // false: for information
	Table   string
	Message string
	Fix     string // SQL that resolves it; empty when none applies
}

// Resolve checks cfg against the catalog: every table and column it names
// must exist (the error lists what does). It returns the resolved
// configuration and notes on audiences that cannot be routed fully and on
// column lists PostgreSQL cannot apply.
func Resolve(cfg Config, cat cdc.Catalog) (Resolution, error) {
	if err := cfg.CheckSchema(cat.Columns()); err != nil {
		return Resolution{}, fmt.Errorf("routing config does not match the database: %w", err)
	}
	rc := cfg.clone()
	rc.applyDefaults()
	var notes []Note
	// identity maps each published table to the columns that identify its
	// old rows, nil for REPLICA IDENTITY FULL; TableSpecs publishes a table
	// missing from it whole.
	identity := map[string][]string{}
	for _, spec := range rc.TableSpecs(nil) {
		qname := spec.Table.String()
		desc := cat[qname]
		if desc.Identity == cdc.IdentityFull {
			identity[qname] = nil
		} else if len(desc.IdentityColumns) > 0 {
			identity[qname] = desc.IdentityColumns
		}
		t := rc.Tables[qname]
		if t == nil {
			continue // read only for the account changes
		}
		if len(t.Key) == 0 && allAllowed(t, desc.PrimaryKey) {
			t.Key = desc.PrimaryKey
		}
		if desc.Identity != cdc.IdentityFull && audienceNeedsOldRow(t) {
			notes = append(notes, Note{Warning: true, Table: qname,
				Message: "table's audience uses a non-key column but the table lacks REPLICA IDENTITY FULL: its DELETEs reach only the fixed rooms, and moves are not detected",
				Fix:     fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;", qname)})
		}
		if desc.Identity == cdc.IdentityFull && len(t.Columns) > 0 {
			notes = append(notes, Note{Table: qname,
				Message: "table has REPLICA IDENTITY FULL, so PostgreSQL 15 cannot publish it with a column list: every column enters the replication stream; the allow-list still keeps the others out of events"})
		}
	}
	if u := rc.Users; !u.Disabled && u.MemberIDColumn == "" && rc.usesMemberRooms() {
		notes = append(notes, Note{Warning: true, Table: u.Table,
			Message: "audiences send rows to member: rooms, which sockets join from their token's memberId, but users.member_id_column is not set: a token's memberId is trusted without checking the users table"})
	}
	return Resolution{Config: rc, Tables: rc.TableSpecs(identity), Notes: notes}, nil
}

// usesMemberRooms reports whether an audience names a member: room.
func (c Config) usesMemberRooms() bool {
	for _, t := range c.Tables {
		if t == nil {
			continue
		}
		for _, room := range t.Audience {
			if strings.HasPrefix(room, MemberRoomPrefix) {
				return true
			}
		}
	}
	return false
}

// clone copies c deeply enough that resolving it leaves c untouched.
func (c Config) clone() Config {
	out := c
	out.Tables = make(map[string]*TableConfig, len(c.Tables))
	for name, t := range c.Tables {
		if t != nil {
			tc := *t
			tc.Key = slices.Clone(t.Key)
			tc.Columns = slices.Clone(t.Columns)
			tc.Audience = slices.Clone(t.Audience)
			tc.Rename = maps.Clone(t.Rename)
			t = &tc
		}
		out.Tables[name] = t
	}
	return out
}

// audienceNeedsOldRow reports whether a room is built from a column outside
// the key: routing a DELETE there needs the whole old row.
func audienceNeedsOldRow(t *TableConfig) bool {
	for _, room := range t.Audience {
		tpl, _ := parseRoomTemplate(room)
		for _, col := range tpl.columns() {
			if !slices.Contains(t.Key, col) {
				return true
			}
		}
	}
	return false
}

// allAllowed reports whether every column is in the table's allow-list (an
// empty list allows all).
func allAllowed(t *TableConfig, cols []string) bool {
	if len(t.Columns) == 0 {
		return true
	}
	for _, c := range cols {
		if !slices.Contains(t.Columns, c) {
			return false
		}
	}
	return true
}
