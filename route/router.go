package route

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/jsonstr"
)

// Emit is one event to deliver: Payload is the final JSON of its single
// argument, encoded once here and passed through untouched by the hub.
type Emit struct {
	Table   string   // schema-qualified source table
	Event   string   // Socket.IO event name
	All     bool     // every socket; Rooms is then empty
	Rooms   []string // sockets in any of these rooms
	Except  []string // minus sockets in any of these rooms
	Payload []byte
	// Resync says why this is a RESYNC notice (ResyncTruncate,
	// ResyncBulk, ResyncSlotRecreated); empty for row events.
	Resync string
}

// Why a RESYNC notice was sent (Emit.Resync).
const (
	ResyncTruncate      = "truncate"
	ResyncBulk          = "bulk"
	ResyncSlotRecreated = "slot_recreated"
)

// UserChange reports an account row that changed, so the caller can cut the
// sockets whose token no longer matches it.
type UserChange struct {
	ID      string
	Deleted bool
	// Role is the row's role; RoleKnown is false when the row did not carry
	// it (a publication column list without it, say).
	Role      string
	RoleKnown bool
	// MemberID is the row's member id ("" for NULL); MemberIDKnown is
	// false when no member id column is configured or the row lacks it.
	MemberID      string
	MemberIDKnown bool
	// LockedUntil is the lock-out deadline; zero when none or when no
	// lock-out column is configured.
	LockedUntil time.Time
}

// Batch is what one committed transaction produces, in commit order.
type Batch struct {
	Tx    cdc.TxInfo
	Emits []Emit
	Users []UserChange
}

var resyncPayload = []byte(ResyncNotice)

// Router turns changes into emits. It is used by one goroutine (the cdc
// consumer): Begin, Change..., Commit per transaction, then Accept once the
// transactions committed so far were delivered, or Discard when they were
// not.
type Router struct {
	cfg    Config
	log    *slog.Logger
	tables map[string]*tableRoute // by schema-qualified name
	users  *UsersConfig

	// the open transaction
	pending []Emit
	counts  map[*tableRoute]int
	flooded map[*tableRoute]bool
	changes []UserChange
}

type tableRoute struct {
	name     string
	cfg      *TableConfig
	proj     *cdc.Projection
	all      bool
	static   []string       // audience rooms without holes
	dynamic  []roomTemplate // audience rooms filled from the row
	keyNames []string       // configured key columns; empty: the replica identity's
	recent   *stagedPayloads
}

// New validates cfg and builds a Router.
func New(cfg Config, log *slog.Logger) (*Router, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("routing config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Router{cfg: cfg, log: log, tables: map[string]*tableRoute{}, counts: map[*tableRoute]int{}, flooded: map[*tableRoute]bool{}}
	if !cfg.Users.Disabled {
		r.users = &r.cfg.Users
	}
	for name, t := range cfg.Tables {
		tr := &tableRoute{name: name, cfg: t, proj: cdc.NewProjection(t.Columns, t.Rename), keyNames: t.Key, recent: newStagedPayloads(cfg.RecentPayloads)}
		for _, room := range t.Audience {
			if room == AudienceAll {
				tr.all = true
				continue
			}
			tpl, _ := parseRoomTemplate(room)
			if tpl.static() {
				tr.static = append(tr.static, room)
			} else {
				tr.dynamic = append(tr.dynamic, tpl)
			}
		}
		r.tables[name] = tr
	}
	return r, nil
}

// Config returns the configuration with defaults applied.
func (r *Router) Config() Config { return r.cfg }

// Begin starts a transaction.
func (r *Router) Begin(cdc.TxInfo) {
	r.pending = r.pending[:0]
	r.changes = r.changes[:0]
	clear(r.counts)
	clear(r.flooded)
}

// Change routes one change of the open transaction.
func (r *Router) Change(c *cdc.Change) {
	name := c.Table.String()
	if r.users != nil && name == r.users.Table && c.Op != cdc.OpTruncate {
		if uc, ok := r.userChange(c); ok {
			r.changes = append(r.changes, uc)
		}
	}
	switch c.Op {
	case cdc.OpResync:
		for _, tr := range r.sortedTables() {
			r.resync(tr, ResyncSlotRecreated, "replication slot was recreated: changes may have been lost")
		}
		return
	case cdc.OpTruncate:
		for _, t := range c.Truncated {
			if tr := r.tables[t.String()]; tr != nil {
				r.flood(tr, ResyncTruncate, "TRUNCATE")
			}
		}
		return
	}
	tr := r.tables[name]
	if tr == nil || r.flooded[tr] {
		return
	}
	r.counts[tr]++
	if r.counts[tr] > r.cfg.FloodRows {
		r.flood(tr, ResyncBulk, fmt.Sprintf("more than %d rows in one transaction", r.cfg.FloodRows))
		return
	}
	switch c.Op {
	case cdc.OpInsert:
		r.upsert(tr, c, "CREATE")
	case cdc.OpUpdate:
		r.upsert(tr, c, "UPDATE")
	case cdc.OpDelete:
		r.delete(tr, c)
	}
}

// Commit ends the transaction and returns what it produced. The Batch's
// slices are valid until the next Begin.
func (r *Router) Commit(tx cdc.TxInfo) Batch {
	return Batch{Tx: tx, Emits: r.pending, Users: r.changes}
}

// Accept records that every transaction routed since the last Accept or
// Discard was delivered: the payloads it remembered decide, from now on,
// which UPDATEs change nothing a client can see. Until then later
// transactions already see them, but Discard can still take them back.
// Call Accept or Discard after each delivery attempt: what is neither is
// held in memory.
func (r *Router) Accept() {
	for _, tr := range r.tables {
		tr.recent.accept()
	}
}

// Discard forgets what the transactions routed since the last Accept
// remembered, the one still open included: they were not delivered and
// will come again, and a router that remembered their rows would take them
// for unchanged and drop them.
func (r *Router) Discard() {
	for _, tr := range r.tables {
		tr.recent.discard()
	}
}

func (r *Router) sortedTables() []*tableRoute {
	out := make([]*tableRoute, 0, len(r.tables))
	for _, n := range sortedKeys(r.tables) {
		out = append(out, r.tables[n])
	}
	return out
}

// flood replaces a table's row events in this transaction with one RESYNC.
func (r *Router) flood(tr *tableRoute, reason, why string) {
	if r.flooded[tr] {
		return
	}
	r.flooded[tr] = true
	r.pending = slices.DeleteFunc(r.pending, func(e Emit) bool { return e.Table == tr.name })
	r.resync(tr, reason, why)
}

func (r *Router) resync(tr *tableRoute, reason, why string) {
	tr.recent.resetAll()
	if tr.cfg.Style == StyleFlat {
		r.log.Info("flat-row table: no event for this change", "table", tr.name, "reason", why)
		return
	}
	r.log.Info("sending RESYNC", "table", tr.name, "event", tr.cfg.Event, "reason", why)
	// A RESYNC carries no row data, so every socket may see it: members of
	// a row-derived room (member:{id}) must refetch too, and their rooms
	// cannot be computed without rows.
	r.pending = append(r.pending, Emit{Table: tr.name, Event: tr.cfg.Event, All: true, Payload: resyncPayload, Resync: reason})
}

func (r *Router) upsert(tr *tableRoute, c *cdc.Change, typ string) {
	row := c.New
	payload := make([]byte, 0, 256)
	if tr.cfg.Style == StyleEnvelope {
		payload = append(payload, `{"type":"`...)
		payload = append(payload, typ...)
		payload = append(payload, `","data":`...)
	}
	start := len(payload)
	payload = tr.proj.AppendJSON(payload, row)
	// What clients see of the row, without the envelope: a CREATE then an
	// UPDATE with the same projection is still "nothing changed".
	projected := payload[start:]
	if tr.cfg.Style == StyleEnvelope {
		payload = append(payload, '}')
	}
	newRooms := tr.rooms(row)
	var oldRooms []string
	if c.Op == cdc.OpUpdate && c.OldIsFull && len(tr.dynamic) > 0 {
		oldRooms = tr.rooms(c.Old)
	}
	key := tr.keyString(row)
	if c.Op == cdc.OpUpdate && c.Old != nil {
		// A key change: forget what was sent under the old key.
		if oldKey := tr.keyString(c.Old); oldKey != key {
			tr.recent.forget(oldKey)
		}
	}
	moved := movedOut(oldRooms, newRooms)
	if c.Op == cdc.OpUpdate && len(moved) == 0 && tr.recent.same(key, projected) {
		return // nothing a client can see changed
	}
	tr.recent.remember(key, projected)
	r.pending = append(r.pending, Emit{Table: tr.name, Event: tr.cfg.Event, All: tr.all, Rooms: newRooms, Payload: payload})
	if len(moved) > 0 && tr.cfg.Style == StyleEnvelope {
		// The row left these rooms' audience: tell them it is gone for
		// them, except the sockets that still see it through another room.
		r.pending = append(r.pending, Emit{Table: tr.name, Event: tr.cfg.Event, Rooms: moved, Except: newRooms, Payload: tr.deletePayload(c.Old)})
	}
}

func (r *Router) delete(tr *tableRoute, c *cdc.Change) {
	if tr.cfg.Style == StyleFlat {
		r.log.Info("flat-row table: DELETE not sent", "table", tr.name)
		return
	}
	if c.Old == nil {
		r.log.Warn("DELETE without old key (REPLICA IDENTITY NOTHING?): not sent", "table", tr.name)
		return
	}
	tr.recent.forget(tr.keyString(c.Old))
	r.pending = append(r.pending, Emit{Table: tr.name, Event: tr.cfg.Event, All: tr.all, Rooms: tr.rooms(c.Old), Payload: tr.deletePayload(c.Old)})
}

// rooms renders the audience for row; dynamic rooms whose columns are NULL
// or absent are left out.
func (tr *tableRoute) rooms(row []cdc.Column) []string {
	if tr.all {
		return nil
	}
	rooms := slices.Clone(tr.static)
	for _, tpl := range tr.dynamic {
		if room, ok := tpl.fill(row); ok && !slices.Contains(rooms, room) {
			rooms = append(rooms, room)
		}
	}
	return rooms
}

func movedOut(oldRooms, newRooms []string) []string {
	var out []string
	for _, r := range oldRooms {
		if !slices.Contains(newRooms, r) {
			out = append(out, r)
		}
	}
	return out
}

// keyColumns picks the key columns out of row: the configured key, else the
// columns PostgreSQL flags as the replica identity.
func (tr *tableRoute) keyColumns(row []cdc.Column) []*cdc.Column {
	var out []*cdc.Column
	if len(tr.keyNames) > 0 {
		for _, k := range tr.keyNames {
			if c := findColumn(row, k); c != nil {
				out = append(out, c)
			}
		}
		return out
	}
	for i := range row {
		if row[i].IsKey {
			if _, ok := tr.proj.Include(row[i].Name); ok {
				out = append(out, &row[i])
			}
		}
	}
	return out
}

func (tr *tableRoute) keyString(row []cdc.Column) string {
	var b strings.Builder
	for _, c := range tr.keyColumns(row) {
		b.Write(c.JSON)
		b.WriteByte(0)
	}
	return b.String()
}

// deletePayload is {"type":"DELETE","id":<first key value>,"data":{key columns}}.
func (tr *tableRoute) deletePayload(old []cdc.Column) []byte {
	keys := tr.keyColumns(old)
	p := make([]byte, 0, 96)
	p = append(p, `{"type":"DELETE","id":`...)
	if len(keys) == 0 {
		p = append(p, "null"...)
	} else {
		p = append(p, keys[0].JSON...)
	}
	p = append(p, `,"data":{`...)
	for i, c := range keys {
		if i > 0 {
			p = append(p, ',')
		}
		name := c.Name
		if out, ok := tr.proj.Include(c.Name); ok {
			name = out
		}
		p = jsonstr.Append(p, name)
		p = append(p, ':')
		p = append(p, c.JSON...)
	}
	return append(p, "}}"...)
}

// userChange extracts the account facts from a change of the users table.
func (r *Router) userChange(c *cdc.Change) (UserChange, bool) {
	u := r.users
	row := c.New
	if c.Op == cdc.OpDelete {
		row = c.Old
	}
	id := findColumn(row, u.IDColumn)
	if id == nil || id.Null {
		return UserChange{}, false
	}
	uc := UserChange{ID: string(id.Text), Deleted: c.Op == cdc.OpDelete}
	if uc.Deleted {
		return uc, true
	}
	if role := findColumn(row, u.RoleColumn); role != nil {
		uc.RoleKnown = true
		uc.Role = string(role.Text)
	}
	if u.MemberIDColumn != "" {
		if m := findColumn(row, u.MemberIDColumn); m != nil {
			uc.MemberIDKnown = true
			uc.MemberID = string(m.Text)
		}
	}
	if u.LockedUntilColumn != "" {
		if lu := findColumn(row, u.LockedUntilColumn); lu != nil && !lu.Null {
			uc.LockedUntil = parseTimestampToken(lu.JSON)
		}
	}
	return uc, true
}

// parseTimestampToken reads cdc's rendering of a timestamp ("...Z" or the
// strings "infinity"/"-infinity").
func parseTimestampToken(tok []byte) time.Time {
	s := string(bytes.Trim(tok, `"`))
	switch s {
	case "infinity":
		return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	case "-infinity":
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// recentPayloads remembers a hash of the last payload sent per key, bounded:
// the oldest entries are evicted first. A key forgotten and remembered again
// may be evicted early; that only costs one event sent that could have been
// dropped, never one dropped that should have been sent.
type recentPayloads struct {
	max   int
	seed  maphash.Seed
	byKey map[string]uint64
	order []string // ring of keys in insertion order
	next  int
}

func newRecentPayloads(max int) *recentPayloads {
	return &recentPayloads{max: max, seed: maphash.MakeSeed(), byKey: map[string]uint64{}}
}

func (rp *recentPayloads) hash(payload []byte) uint64 { return maphash.Bytes(rp.seed, payload) }

func (rp *recentPayloads) same(key string, payload []byte) bool {
	if rp.max == 0 {
		return false
	}
	h, ok := rp.byKey[key]
	return ok && h == rp.hash(payload)
}

func (rp *recentPayloads) remember(key string, payload []byte) {
	rp.rememberHash(key, rp.hash(payload))
}

func (rp *recentPayloads) rememberHash(key string, h uint64) {
	if rp.max == 0 {
		return
	}
	if _, ok := rp.byKey[key]; ok {
		rp.byKey[key] = h
		return
	}
	if len(rp.order) < rp.max {
		rp.order = append(rp.order, key)
	} else {
		delete(rp.byKey, rp.order[rp.next])
		rp.order[rp.next] = key
		rp.next = (rp.next + 1) % rp.max
	}
	rp.byKey[key] = h
}

func (rp *recentPayloads) forget(key string) { delete(rp.byKey, key) }

func (rp *recentPayloads) reset() {
	clear(rp.byKey)
	rp.order, rp.next = rp.order[:0], 0
}

// stagedPayloads puts the payloads remembered by transactions not yet
// delivered in front of the delivered ones' recentPayloads: lookups see
// both, accept moves the staged changes into recent, discard drops them.
type stagedPayloads struct {
	recent *recentPayloads
	// reset: the table was reset since the last accept, so nothing in
	// recent counts.
	reset  bool
	staged map[string]stagedPayload
	order  []string // keys of staged, in the order they were first staged
}

type stagedPayload struct {
	hash      uint64
	forgotten bool
}

func newStagedPayloads(max int) *stagedPayloads {
	return &stagedPayloads{recent: newRecentPayloads(max), staged: map[string]stagedPayload{}}
}

func (sp *stagedPayloads) same(key string, payload []byte) bool {
	if sp.recent.max == 0 {
		return false
	}
	if e, ok := sp.staged[key]; ok {
		return !e.forgotten && e.hash == sp.recent.hash(payload)
	}
	return !sp.reset && sp.recent.same(key, payload)
}

func (sp *stagedPayloads) stage(key string, e stagedPayload) {
	if sp.recent.max == 0 {
		return
	}
	if _, ok := sp.staged[key]; !ok {
		sp.order = append(sp.order, key)
	}
	sp.staged[key] = e
}

func (sp *stagedPayloads) remember(key string, payload []byte) {
	sp.stage(key, stagedPayload{hash: sp.recent.hash(payload)})
}

func (sp *stagedPayloads) forget(key string) { sp.stage(key, stagedPayload{forgotten: true}) }

func (sp *stagedPayloads) resetAll() {
	sp.discard()
	sp.reset = true
}

func (sp *stagedPayloads) accept() {
	if sp.reset {
		sp.recent.reset()
	}
	for _, key := range sp.order {
		if e := sp.staged[key]; e.forgotten {
			sp.recent.forget(key)
		} else {
			sp.recent.rememberHash(key, e.hash)
		}
	}
	sp.discard()
}

func (sp *stagedPayloads) discard() {
	clear(sp.staged)
	clear(sp.order)
	sp.order = sp.order[:0]
	sp.reset = false
}
