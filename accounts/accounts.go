// Package accounts keeps, on every instance, the users projection a token is
// checked against at the handshake: for each user id its role, member id and
// (when configured) lock-out deadline. A token is accepted only while its
// user's row exists and says what the token says, so a deleted or demoted
// user's old token stops working on every instance at once, not when it
// expires.
//
// The projection is read with one SELECT at start (Load) and kept current by
// the WAL: each committed transaction's account changes travel with its
// events (Change, Encode), and every instance applies them in the order the
// transactions committed (Apply). A reconnect storm therefore costs no
// query: the check is a map lookup.
//
//	dir := accounts.New(accounts.Columns{Table: "public.users", ID: "id", Role: "role", MemberID: "member_id"})
//	// open the hub, whose cluster hands every transaction's state to dir.ApplyEncoded
//	err := dir.Load(ctx, databaseURL)
//	ok := dir.Admits(userID, role, memberID, time.Now())
package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Columns names the users table and the columns the check reads. MemberID
// and LockedUntil are optional ("" when not read).
type Columns struct {
	Table       string // schema-qualified, e.g. public.users
	ID          string
	Role        string
	MemberID    string
	LockedUntil string
}

// Account is what the check knows of one user.
type Account struct {
	Role        string
	MemberID    string    // "" for NULL
	LockedUntil time.Time // zero when none
}

// Directory is the in-memory projection. Safe for concurrent use.
type Directory struct {
	cols Columns

	mu   sync.RWMutex
	byID map[string]Account
	// loaded is false until the first Load completed; reloading is true
	// while a Load runs. Changes applied meanwhile are queued and replayed
	// on top of what the SELECT saw, so a snapshot older than them never
	// wins.
	loaded    bool
	reloading bool
	queued    [][]Change
	watchers  []func(ids []string)

	queries atomic.Int64
}

// New returns an empty directory for cols; it admits nobody until Load.
func New(cols Columns) *Directory {
	return &Directory{cols: cols, byID: map[string]Account{}}
}

// Columns reports what the directory reads.
func (d *Directory) Columns() Columns { return d.cols }

// OnChange registers fn to run after changes or a reload, with the ids of
// the users whose account changed (or appeared, or went). It runs on the
// goroutine that applied them, after the directory was updated.
func (d *Directory) OnChange(fn func(ids []string)) {
	d.mu.Lock()
	d.watchers = append(d.watchers, fn)
	d.mu.Unlock()
}

// Queries counts the SELECTs the directory made (Load and reloads): the
// handshake check itself makes none.
func (d *Directory) Queries() int64 { return d.queries.Load() }

// Len is the number of users known.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byID)
}

// Lookup returns the account of user id.
func (d *Directory) Lookup(id string) (Account, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.byID[id]
	return a, ok
}

// Admits reports whether a token for user id carrying role and memberID
// is honoured at now: the user's row exists, has that role and (when the
// member id column is read) that member id, and is not locked out. Before
// the first Load it admits nobody.
func (d *Directory) Admits(id, role, memberID string, now time.Time) bool {
	return d.Refusal(id, role, memberID, now) == ""
}

// Refusal is why Admits would refuse, for logs; "" when it admits.
func (d *Directory) Refusal(id, role, memberID string, now time.Time) string {
	d.mu.RLock()
	a, ok := d.byID[id]
	loaded := d.loaded
	d.mu.RUnlock()
	switch {
	case !loaded:
		return "users not loaded yet"
	case !ok:
		return "no such user"
	case a.Role != role:
		return "role differs"
	case d.cols.MemberID != "" && a.MemberID != memberID:
		return "member id differs"
	case a.LockedUntil.After(now):
		return "locked out"
	}
	return ""
}

// Apply applies one transaction's account changes, in order. Before Load
// completes (and during a reload) they are queued and replayed after it.
func (d *Directory) Apply(changes []Change) {
	if len(changes) == 0 {
		return
	}
	d.mu.Lock()
	if !d.loaded || d.reloading {
		d.queued = append(d.queued, changes)
		d.mu.Unlock()
		return
	}
	ids := d.applyLocked(changes)
	watchers := d.watchers
	d.mu.Unlock()
	notify(watchers, ids)
}

// ApplyEncoded decodes what Encode wrote and applies it. Malformed input
// changes nothing.
func (d *Directory) ApplyEncoded(b []byte) error {
	changes, err := Decode(b)
	if err != nil {
		return err
	}
	d.Apply(changes)
	return nil
}

func (d *Directory) applyLocked(changes []Change) []string {
	ids := make([]string, 0, len(changes))
	for _, c := range changes {
		if c.Deleted {
			delete(d.byID, c.ID)
			ids = append(ids, c.ID)
			continue
		}
		a := d.byID[c.ID]
		if c.Role != nil {
			a.Role = *c.Role
		}
		if c.MemberID != nil {
			a.MemberID = *c.MemberID
		}
		if c.LockedUntil != nil {
			a.LockedUntil = *c.LockedUntil
		}
		d.byID[c.ID] = a
		ids = append(ids, c.ID)
	}
	return ids
}

func notify(watchers []func([]string), ids []string) {
	if len(ids) == 0 {
		return
	}
	for _, fn := range watchers {
		fn(ids)
	}
}

// Load reads the whole projection with one SELECT over a connection of its
// own and makes it current, then replays the changes applied meanwhile.
// Call it once the source of changes is subscribed (the hub opened), so
// that a transaction the SELECT missed arrives as a change. A later Load
// (a periodic reload, where changes may be lost) replaces the projection
// the same way and reports the users it found different.
func (d *Directory) Load(ctx context.Context, connString string) error {
	d.mu.Lock()
	d.reloading = true
	d.mu.Unlock()
	snapshot, err := d.query(ctx, connString)
	d.mu.Lock()
	d.reloading = false
	if err != nil {
		// What came meanwhile still applies to the old projection.
		var ids []string
		if d.loaded {
			ids = d.replayLocked()
		}
		watchers := d.watchers
		d.mu.Unlock()
		notify(watchers, ids)
		return err
	}
	var ids []string
	if d.loaded {
		ids = diff(d.byID, snapshot)
	}
	d.byID, d.loaded = snapshot, true
	ids = append(ids, d.replayLocked()...)
	watchers := d.watchers
	d.mu.Unlock()
	notify(watchers, ids)
	return nil
}

func (d *Directory) replayLocked() []string {
	var ids []string
	for _, changes := range d.queued {
		ids = append(ids, d.applyLocked(changes)...)
	}
	clear(d.queued)
	d.queued = d.queued[:0]
	return ids
}

// diff lists the ids whose account differs between old and new.
func diff(old, new map[string]Account) []string {
	var ids []string
	for id, a := range new {
		if b, ok := old[id]; !ok || a != b {
			ids = append(ids, id)
		}
	}
	for id := range old {
		if _, ok := new[id]; !ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func (d *Directory) query(ctx context.Context, connString string) (map[string]Account, error) {
	d.queries.Add(1)
	sql, err := d.selectSQL()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("load users: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("load users: %s: %w", sql, err)
	}
	defer rows.Close()
	out := map[string]Account{}
	for rows.Next() {
		var id, role, member *string
		var lockedUntil *time.Time
		if err := rows.Scan(&id, &role, &member, &lockedUntil); err != nil {
			return nil, fmt.Errorf("load users: %w", err)
		}
		if id == nil {
			continue
		}
		a := Account{}
		if role != nil {
			a.Role = *role
		}
		if member != nil {
			a.MemberID = *member
		}
		if lockedUntil != nil {
			a.LockedUntil = *lockedUntil
		}
		out[*id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return out, nil
}

// selectSQL reads the projection as text, the way the WAL's changes carry
// it (an integer id as its decimal digits).
func (d *Directory) selectSQL() (string, error) {
	c := d.cols
	if c.Table == "" || c.ID == "" || c.Role == "" {
		return "", errors.New("load users: table, id and role columns are required")
	}
	schema, table, ok := strings.Cut(c.Table, ".")
	if !ok {
		schema, table = "public", c.Table
	}
	col := func(name, cast string) string {
		if name == "" {
			return "NULL::" + cast
		}
		return pgx.Identifier{name}.Sanitize() + "::" + cast
	}
	return fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s",
		col(c.ID, "text"), col(c.Role, "text"), col(c.MemberID, "text"), col(c.LockedUntil, "timestamptz"),
		pgx.Identifier{schema, table}.Sanitize()), nil
}

// Reload runs Load every interval until ctx ends, logging failures through
// onErr: for a transport that can lose changes (Redis pub/sub).
func (d *Directory) Reload(ctx context.Context, connString string, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Load(ctx, connString); err != nil && ctx.Err() == nil {
				onErr(err)
			}
		}
	}
}
