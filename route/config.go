// Package route decides, for every committed row change, which Socket.IO
// event goes out, with what payload, to which rooms; and which users' sockets
// must be cut because the WAL says their account changed.
//
// It sits between cdc (which hands out Change values) and the broadcast hub
// (which delivers encoded payloads); it imports neither sockets nor pgoutput.
package route

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/walcast/walcast/cdc"
)

// Style is the payload shape of a table's events.
type Style string

const (
	// StyleEnvelope: {type: CREATE|UPDATE|DELETE|RESYNC, data, id?}.
	StyleEnvelope Style = "envelope"
	// StyleFlat: the projected row itself, on INSERT and UPDATE only.
	StyleFlat Style = "flat"
)

// AudienceAll is the audience keyword for "every connected socket".
const AudienceAll = "all"

// TableConfig routes one table.
type TableConfig struct {
	// Event is the Socket.IO event name, e.g. "member:update".
	Event string `yaml:"event"`
	// Style is envelope (default) or flat.
	Style Style `yaml:"style"`
	// Columns is the allow-list of columns sent; empty sends every column.
	// A column not listed never leaves walcast.
	Columns []string `yaml:"columns"`
	// Rename maps a column to the name it has in payloads.
	Rename map[string]string `yaml:"rename"`
	// Key lists the key columns (DELETE ids, de-duplication). Empty uses
	// the table's replica identity as PostgreSQL reports it.
	Key []string `yaml:"key"`
	// Audience is the list of rooms an event goes to. "{column}" in a room is
	// filled from the row ("member:{member_id}"); a NULL leaves that room
	// out. The single entry "all" sends to every socket.
	Audience []string `yaml:"audience"`
}

// UsersConfig names the table whose rows are the accounts tokens speak for:
// a handshake is accepted only for a token whose user row exists and
// carries the token's role (and member id, when MemberIDColumn names one),
// and the sockets of a user whose row stops matching are cut.
type UsersConfig struct {
	Table      string `yaml:"table"`       // default public.users; disabled: true turns the check off
	IDColumn   string `yaml:"id_column"`   // default id
	RoleColumn string `yaml:"role_column"` // default role
	// MemberIDColumn is compared with the token's memberId (null matches
	// NULL); empty or "-": not compared. The built-in profile: member_id.
	MemberIDColumn string `yaml:"member_id_column"`
	// LockedUntilColumn, when set, is an administrator's lock-out: while it
	// is in the future the user's sockets are cut and refused. Empty or
	// "-": none, the default. GraceGiver's locked_until is a login throttle
	// anyone can trigger with wrong passwords, so the built-in profile does
	// not use it.
	LockedUntilColumn string `yaml:"locked_until_column"`
	Disabled          bool   `yaml:"disabled"`
}

// Columns lists the columns the account check reads, id first.
func (u UsersConfig) Columns() []string {
	cols := []string{u.IDColumn, u.RoleColumn}
	if u.MemberIDColumn != "" {
		cols = append(cols, u.MemberIDColumn)
	}
	if u.LockedUntilColumn != "" {
		cols = append(cols, u.LockedUntilColumn)
	}
	return cols
}

// DefaultFloodRows is flood_rows when the routing file does not set it.
const DefaultFloodRows = 1000

// Config is the whole routing configuration (the YAML file's content).
type Config struct {
	// Tables maps schema-qualified (or bare, meaning public) table names to
	// their routes.
	Tables map[string]*TableConfig `yaml:"tables"`
	// FloodRows: a transaction changing more rows than this in one table
	// sends one RESYNC for that table instead. Default DefaultFloodRows.
	FloodRows int `yaml:"flood_rows"`
	// RecentPayloads bounds the per-table memory of last-sent payloads used
	// to drop UPDATEs that change nothing a client sees. Default 10000.
	RecentPayloads int         `yaml:"recent_payloads"`
	Users          UsersConfig `yaml:"users"`
}

// staffRooms are the rooms of the GraceGiver roles that see every member,
// donation and (for the admins) user.
func staffRooms() []string {
	return []string{RoleRoom("super_admin"), RoleRoom("admin"), RoleRoom("manager"), RoleRoom("data_entry")}
}

// GraceGiver returns the built-in profile: the contract's four events with
// the audiences of DESIGN.md decision 6.
func GraceGiver() Config {
	return Config{
		Tables: map[string]*TableConfig{
			"public.members": {
				Event:    "member:update",
				Key:      []string{"id"},
				Audience: append(staffRooms(), MemberRoomPrefix+"{id}"),
			},
			"public.donations": {
				Event:    "donation:update",
				Key:      []string{"id"},
				Audience: append(staffRooms(), MemberRoomPrefix+"{member_id}"),
			},
			"public.users": {
				Event:    "user:update",
				Key:      []string{"id"},
				Columns:  []string{"id", "username", "role", "email", "created_at", "must_change_password", "member_id"},
				Audience: []string{RoleRoom("super_admin"), RoleRoom("admin"), UserRoomPrefix + "{id}"},
			},
			"public.settings": {
				Event:    "settings:update",
				Style:    StyleFlat,
				Columns:  []string{"name", "address", "phone", "email", "tax_id"},
				Rename:   map[string]string{"tax_id": "taxId"},
				Audience: []string{AudienceAll},
			},
		},
		Users: UsersConfig{MemberIDColumn: "member_id"},
	}
}

// LoadFile reads a YAML routing file. Unknown fields are errors.
func LoadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read routing config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a YAML routing configuration. Unknown fields are errors.
func Parse(b []byte) (Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("parse routing config: %w", err)
	}
	return cfg, nil
}

// QualifiedName turns "members" into "public.members".
func QualifiedName(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return "public." + name
}

func (c *Config) applyDefaults() {
	if c.FloodRows == 0 {
		c.FloodRows = DefaultFloodRows
	}
	if c.RecentPayloads == 0 {
		c.RecentPayloads = 10000
	}
	u := &c.Users
	if !u.Disabled {
		if u.Table == "" {
			u.Table = "public.users"
		}
		if u.IDColumn == "" {
			u.IDColumn = "id"
		}
		if u.RoleColumn == "" {
			u.RoleColumn = "role"
		}
		if u.MemberIDColumn == "-" {
			u.MemberIDColumn = ""
		}
		if u.LockedUntilColumn == "-" {
			u.LockedUntilColumn = ""
		}
		u.Table = QualifiedName(u.Table)
	}
	tables := make(map[string]*TableConfig, len(c.Tables))
	for name, t := range c.Tables {
		if t == nil {
			t = &TableConfig{}
		}
		if t.Style == "" {
			// A copy: the caller's configuration stays as it was given.
			tc := *t
			tc.Style = StyleEnvelope
			t = &tc
		}
		tables[QualifiedName(name)] = t
	}
	c.Tables = tables
}

// validate checks the configuration on its own (without a database).
func (c *Config) validate() error {
	var errs []error
	if c.FloodRows < 1 {
		errs = append(errs, fmt.Errorf("flood_rows must be at least 1, got %d", c.FloodRows))
	}
	if c.RecentPayloads < 0 {
		errs = append(errs, fmt.Errorf("recent_payloads must not be negative, got %d", c.RecentPayloads))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("no tables configured"))
	}
	for _, name := range sortedKeys(c.Tables) {
		t := c.Tables[name]
		if t.Event == "" {
			errs = append(errs, fmt.Errorf("table %s: event is required", name))
		}
		if t.Style != StyleEnvelope && t.Style != StyleFlat {
			errs = append(errs, fmt.Errorf("table %s: style %q is not envelope or flat", name, t.Style))
		}
		if len(t.Audience) == 0 {
			errs = append(errs, fmt.Errorf("table %s: audience is required (a list of rooms, or [all])", name))
		}
		if slices.Contains(t.Audience, AudienceAll) && len(t.Audience) > 1 {
			errs = append(errs, fmt.Errorf("table %s: audience %q combines all with rooms", name, t.Audience))
		}
		for _, room := range t.Audience {
			tpl, err := parseRoomTemplate(room)
			if err != nil {
				errs = append(errs, fmt.Errorf("table %s: %w", name, err))
			} else if tpl.prefix() == "" {
				// Reserving rooms by prefix is what keeps clients out of
				// an audience (join_room): a room with no fixed start
				// could only be reserved by reserving every room.
				errs = append(errs, fmt.Errorf("table %s: audience room %q starts with a {column}: start it with a fixed prefix (such as \"family:{family_id}\") so that clients can be kept from joining it", name, room))
			}
		}
		for from := range t.Rename {
			if len(t.Columns) > 0 && !slices.Contains(t.Columns, from) {
				errs = append(errs, fmt.Errorf("table %s: rename of %s, which is not in columns", name, from))
			}
		}
		if len(t.Columns) > 0 {
			for _, k := range t.Key {
				if !slices.Contains(t.Columns, k) {
					errs = append(errs, fmt.Errorf("table %s: key column %s is not in columns", name, k))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// TableSpecs lists the tables to publish, for cdc. A table with a column
// allow-list is published with a column list, so columns nobody may see
// (password hashes...) never leave the database: the list is the allow-list
// plus what walcast itself reads (key, audience and revocation columns) plus
// the replica identity, without which PostgreSQL would refuse the
// application's UPDATEs. identity maps each schema-qualified table to its
// replica identity columns; a table missing from it, or mapped to nil
// (REPLICA IDENTITY FULL), cannot have a column list on PostgreSQL 15 and is
// published whole: the allow-list still keeps the other columns out of
// every event.
func (c Config) TableSpecs(identity map[string][]string) []cdc.TableSpec {
	cc := c
	cc.applyDefaults()
	names := sortedKeys(cc.Tables)
	usersOnly := !cc.Users.Disabled && cc.Tables[cc.Users.Table] == nil
	if usersOnly {
		names = append(names, cc.Users.Table)
	}
	specs := make([]cdc.TableSpec, 0, len(names))
	for _, n := range names {
		schema, table, _ := strings.Cut(n, ".")
		spec := cdc.TableSpec{Table: cdc.Table{Schema: schema, Name: table}}
		var cols []string
		if t := cc.Tables[n]; t != nil && len(t.Columns) > 0 {
			cols = append(cols, t.Columns...)
			cols = append(cols, t.Key...)
			for _, room := range t.Audience {
				tpl, _ := parseRoomTemplate(room)
				cols = append(cols, tpl.columns()...)
			}
		}
		if (len(cols) > 0 || usersOnly) && n == cc.Users.Table && !cc.Users.Disabled {
			cols = append(cols, cc.Users.Columns()...)
		}
		if ident, ok := identity[n]; ok && ident != nil && len(cols) > 0 {
			cols = append(cols, ident...)
			spec.Columns = uniqueStrings(cols)
		}
		specs = append(specs, spec)
	}
	return specs
}

func uniqueStrings(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// CheckSchema verifies every configured table and column against the
// database's (schema-qualified table -> columns), listing what exists when
// something does not.
func (c Config) CheckSchema(existing map[string][]string) error {
	cc := c
	cc.applyDefaults()
	var errs []error
	for _, name := range sortedKeys(cc.Tables) {
		t := cc.Tables[name]
		cols, ok := existing[name]
		if !ok {
			errs = append(errs, fmt.Errorf("table %s does not exist; tables: %s", name, strings.Join(sortedKeys(existing), ", ")))
			continue
		}
		var missing []string
		check := func(col string) {
			if !slices.Contains(cols, col) && !slices.Contains(missing, col) {
				missing = append(missing, col)
			}
		}
		for _, col := range t.Columns {
			check(col)
		}
		for _, col := range t.Key {
			check(col)
		}
		for _, room := range t.Audience {
			tpl, _ := parseRoomTemplate(room)
			for _, col := range tpl.columns() {
				check(col)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("table %s has no column %s; its columns: %s", name, strings.Join(missing, ", "), strings.Join(cols, ", ")))
		}
	}
	if u := cc.Users; !u.Disabled {
		cols, ok := existing[u.Table]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("users table %s does not exist (set users.disabled: true to turn off the account check); tables: %s", u.Table, strings.Join(sortedKeys(existing), ", ")))
		default:
			for _, col := range u.Columns() {
				if !slices.Contains(cols, col) {
					errs = append(errs, fmt.Errorf("users table %s has no column %s; its columns: %s", u.Table, col, strings.Join(cols, ", ")))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
