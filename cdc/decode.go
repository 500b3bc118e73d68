package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
)

// MessageKind says what a decoded pgoutput message means to a consumer.
type MessageKind uint8

const (
	// MsgOther is a message with nothing to deliver: Relation (cached),
	// Type, Origin, a logical decoding message.
	MsgOther MessageKind = iota
	MsgBegin
	MsgChange
	MsgCommit
)

func (k MessageKind) String() string {
	switch k {
	case MsgBegin:
		return "BEGIN"
	case MsgChange:
		return "CHANGE"
	case MsgCommit:
		return "COMMIT"
	}
	return "OTHER"
}

// Message is one decoded pgoutput message.
//   - MsgBegin: Tx has XID, CommitLSN (the Begin's final LSN), CommitTime.
//   - MsgCommit: Tx has XID, CommitLSN, EndLSN and CommitTime.
//   - MsgChange: Change is set; Change.Tx is the open transaction's TxInfo
//     (without EndLSN, which only the Commit carries).
type Message struct {
	Kind   MessageKind
	Tx     TxInfo
	Change *Change
}

// ErrMalformed is wrapped by every error about bytes that are not a valid
// pgoutput (protocol version 1) message.
var ErrMalformed = errors.New("malformed pgoutput message")

// ErrUnknownRelation is wrapped when a change names a relation no Relation
// message described in this replication session.
var ErrUnknownRelation = errors.New("change for a relation not described by a Relation message")

// ErrTransactionOrder is wrapped when a change or commit arrives outside a
// Begin/Commit pair, or a Begin inside one.
var ErrTransactionOrder = errors.New("pgoutput message out of transaction order")

// Decoder turns pgoutput (protocol version 1) messages into Begin, Change
// and Commit events. It keeps the Relation cache and the open transaction.
//
// pgoutput sends a relation's Relation message once per replication session
// before its first change (and again after DDL), so a reconnect needs a new
// Decoder. A Decoder is not safe for concurrent use. A message that fails to
// decode returns an error and leaves the Decoder as it was.
//
// The hot path (Insert/Update/Delete) is parsed here rather than with
// pglogrepl.Parse: that allocates a TupleDataColumn per column, copies values
// byte by byte, and indexes past the end of truncated input (a panic).
type Decoder struct {
	relations map[uint32]*relation
	// userArrays holds the user-defined array types named by Type messages
	// (PostgreSQL names an array type "_" + its element type's name), so
	// an enum[] column becomes a JSON array rather than one string.
	userArrays map[uint32]bool
	inTx       bool
	tx         TxInfo
	position   int

	values valueEncoder
	// Parsed tuples of the message being decoded, reused across messages.
	oldTuple, newTuple []tupleField
	// Offsets into the row buffer, turned into slices once it stops growing.
	spans []span
}

type relation struct {
	table     Table
	replIdent byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	columns   []relationColumn
	nKey      int
}

type relationColumn struct {
	name    string
	typeOID uint32
	kind    valueKind
	isKey   bool
}

// tupleField is one column of TupleData as sent: kind 'n' null, 'u'
// unchanged TOAST, 't' text (data points into the message).
type tupleField struct {
	kind byte
	data []byte
}

type span struct{ textStart, textEnd, jsonStart, jsonEnd int }

// NewDecoder returns a Decoder with an empty Relation cache.
func NewDecoder() *Decoder {
	return &Decoder{relations: make(map[uint32]*relation), userArrays: make(map[uint32]bool)}
}

// pgEpoch is PostgreSQL's timestamp origin; pgoutput times are microseconds since it.
var pgEpoch = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Decode decodes one message (pglogrepl.XLogData.WALData). The returned
// Change and everything it references are freshly allocated and owned by the
// caller: walData may be reused once Decode returns.
func (d *Decoder) Decode(walData []byte) (Message, error) {
	if len(walData) == 0 {
		return Message{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	r := reader{b: walData[1:]}
	switch t := walData[0]; t {
	case 'B':
		return d.begin(&r)
	case 'C':
		return d.commit(&r)
	case 'I':
		return d.insert(&r)
	case 'U':
		return d.update(&r)
	case 'D':
		return d.delete(&r)
	case 'T':
		return d.truncate(&r)
	case 'R':
		return d.relation(&r)
	case 'Y':
		return d.typeMessage(&r)
	case 'O':
		return d.origin(&r)
	case 'M':
		return d.logicalMessage(&r)
	default:
		return Message{}, fmt.Errorf("%w: message type %q is not part of protocol version 1", ErrMalformed, t)
	}
}

// reader reads big-endian fields, remembering the first short read so
// parsers can check once at the end instead of after every field.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// cstring reads a NUL-terminated string.
func (r *reader) cstring() string {
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.bad = true
	r.b = nil
	return ""
}

func (r *reader) time() time.Time {
	us := int64(r.u64())
	return pgEpoch.Add(time.Duration(us) * time.Microsecond)
}

// done checks that the message was read exactly to its end.
func (r *reader) done(what string) error {
	if r.bad {
		return fmt.Errorf("%w: %s truncated", ErrMalformed, what)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %s has %d trailing bytes", ErrMalformed, what, len(r.b))
	}
	return nil
}

func (d *Decoder) begin(r *reader) (Message, error) {
	final := pglogrepl.LSN(r.u64())
	at := r.time()
	xid := r.u32()
	if err := r.done("Begin"); err != nil {
		return Message{}, err
	}
	if d.inTx {
		return Message{}, fmt.Errorf("%w: Begin of xid %d while xid %d is open", ErrTransactionOrder, xid, d.tx.XID)
	}
	d.inTx = true
	d.tx = TxInfo{XID: xid, CommitLSN: final, CommitTime: at}
	d.position = 0
	return Message{Kind: MsgBegin, Tx: d.tx}, nil
}

func (d *Decoder) commit(r *reader) (Message, error) {
	r.u8() // flags, unused
	commitLSN := pglogrepl.LSN(r.u64())
	endLSN := pglogrepl.LSN(r.u64())
	at := r.time()
	if err := r.done("Commit"); err != nil {
		return Message{}, err
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("%w: Commit at %s without Begin", ErrTransactionOrder, commitLSN)
	}
	if commitLSN != d.tx.CommitLSN {
		return Message{}, fmt.Errorf("%w: Commit LSN %s differs from Begin's final LSN %s", ErrMalformed, commitLSN, d.tx.CommitLSN)
	}
	tx := TxInfo{XID: d.tx.XID, CommitLSN: commitLSN, EndLSN: endLSN, CommitTime: at}
	d.inTx = false
	d.tx = TxInfo{}
	return Message{Kind: MsgCommit, Tx: tx}, nil
}

func (d *Decoder) relation(r *reader) (Message, error) {
	id := r.u32()
	rel := &relation{}
	rel.table.Schema = r.cstring()
	rel.table.Name = r.cstring()
	rel.replIdent = r.u8()
	n := int(r.u16())
	// Each column takes at least 10 bytes: do not trust n for the allocation.
	if r.bad || n > len(r.b)/10 {
		return Message{}, fmt.Errorf("%w: Relation truncated", ErrMalformed)
	}
	rel.columns = make([]relationColumn, n)
	for i := range rel.columns {
		c := &rel.columns[i]
		c.isKey = r.u8()&1 != 0
		c.name = r.cstring()
		c.typeOID = r.u32()
		c.kind = kindOf(c.typeOID)
		if d.userArrays[c.typeOID] {
			c.kind = kindUserArray
		}
		r.u32() // typmod: the text format already reflects it
		if c.isKey {
			rel.nKey++
		}
	}
	if err := r.done("Relation"); err != nil {
		return Message{}, err
	}
	d.relations[id] = rel
	return Message{Kind: MsgOther}, nil
}

func (d *Decoder) typeMessage(r *reader) (Message, error) {
	oid := r.u32()
	r.cstring() // namespace
	name := r.cstring()
	if err := r.done("Type"); err != nil {
		return Message{}, err
	}
	if strings.HasPrefix(name, "_") {
		d.userArrays[oid] = true
	} else {
		delete(d.userArrays, oid)
	}
	return Message{Kind: MsgOther}, nil
}

func (d *Decoder) origin(r *reader) (Message, error) {
	r.u64() // origin commit LSN
	r.cstring()
	return Message{Kind: MsgOther}, r.done("Origin")
}

func (d *Decoder) logicalMessage(r *reader) (Message, error) {
	r.u8()  // flags: transactional
	r.u64() // LSN
	r.cstring()
	r.bytes(int(int32(r.u32())))
	return Message{Kind: MsgOther}, r.done("Message")
}

func (d *Decoder) lookup(id uint32, what string) (*relation, error) {
	if !d.inTx {
		return nil, fmt.Errorf("%w: %s outside a transaction", ErrTransactionOrder, what)
	}
	rel, ok := d.relations[id]
	if !ok {
		return nil, fmt.Errorf("%s: %w (relation id %d)", what, ErrUnknownRelation, id)
	}
	return rel, nil
}

// readTuple parses TupleData into dst, checking it against the relation.
func readTuple(r *reader, dst []tupleField, rel *relation, what string) ([]tupleField, error) {
	n := int(r.u16())
	if r.bad {
		return dst, fmt.Errorf("%w: %s truncated", ErrMalformed, what)
	}
	if n != len(rel.columns) {
		return dst, fmt.Errorf("%w: %s has %d columns, Relation %s has %d", ErrMalformed, what, n, rel.table, len(rel.columns))
	}
	dst = dst[:0]
	for range n {
		f := tupleField{kind: r.u8()}
		switch f.kind {
		case 'n', 'u':
		case 't':
			f.data = r.bytes(int(int32(r.u32())))
		case 'b':
			return dst, fmt.Errorf("%w: %s has a binary value; walcast reads text format (binary off)", ErrMalformed, what)
		default:
			if r.bad {
				return dst, fmt.Errorf("%w: %s truncated", ErrMalformed, what)
			}
			return dst, fmt.Errorf("%w: %s column kind %q", ErrMalformed, what, f.kind)
		}
		if r.bad {
			return dst, fmt.Errorf("%w: %s truncated", ErrMalformed, what)
		}
		dst = append(dst, f)
	}
	return dst, nil
}

func (d *Decoder) insert(r *reader) (Message, error) {
	rel, err := d.lookup(r.u32(), "Insert")
	if err != nil {
		return Message{}, err
	}
	if r.u8() != 'N' {
		return Message{}, fmt.Errorf("%w: Insert without a new tuple", ErrMalformed)
	}
	d.newTuple, err = readTuple(r, d.newTuple, rel, "Insert")
	if err != nil {
		return Message{}, err
	}
	if err := r.done("Insert"); err != nil {
		return Message{}, err
	}
	return d.emit(rel, OpInsert, nil, 0, d.newTuple)
}

func (d *Decoder) update(r *reader) (Message, error) {
	rel, err := d.lookup(r.u32(), "Update")
	if err != nil {
		return Message{}, err
	}
	var old []tupleField
	oldKind := r.u8()
	if oldKind == 'K' || oldKind == 'O' {
		d.oldTuple, err = readTuple(r, d.oldTuple, rel, "Update old tuple")
		if err != nil {
			return Message{}, err
		}
		old = d.oldTuple
		if r.u8() != 'N' {
			return Message{}, fmt.Errorf("%w: Update without a new tuple", ErrMalformed)
		}
	} else if oldKind != 'N' {
		return Message{}, fmt.Errorf("%w: Update tuple kind %q", ErrMalformed, oldKind)
	}
	d.newTuple, err = readTuple(r, d.newTuple, rel, "Update")
	if err != nil {
		return Message{}, err
	}
	if err := r.done("Update"); err != nil {
		return Message{}, err
	}
	return d.emit(rel, OpUpdate, old, oldKind, d.newTuple)
}

func (d *Decoder) delete(r *reader) (Message, error) {
	rel, err := d.lookup(r.u32(), "Delete")
	if err != nil {
		return Message{}, err
	}
	oldKind := r.u8()
	if oldKind != 'K' && oldKind != 'O' {
		return Message{}, fmt.Errorf("%w: Delete tuple kind %q", ErrMalformed, oldKind)
	}
	d.oldTuple, err = readTuple(r, d.oldTuple, rel, "Delete")
	if err != nil {
		return Message{}, err
	}
	if err := r.done("Delete"); err != nil {
		return Message{}, err
	}
	return d.emit(rel, OpDelete, d.oldTuple, oldKind, nil)
}

func (d *Decoder) truncate(r *reader) (Message, error) {
	if !d.inTx {
		return Message{}, fmt.Errorf("%w: Truncate outside a transaction", ErrTransactionOrder)
	}
	n := int(r.u32())
	r.u8() // options: CASCADE, RESTART IDENTITY
	if r.bad || n < 1 || n > len(r.b)/4 {
		return Message{}, fmt.Errorf("%w: Truncate relation count %d", ErrMalformed, n)
	}
	tables := make([]Table, n)
	for i := range tables {
		rel, err := d.lookup(r.u32(), "Truncate")
		if err != nil {
			return Message{}, err
		}
		tables[i] = rel.table
	}
	if err := r.done("Truncate"); err != nil {
		return Message{}, err
	}
	c := &Change{Table: tables[0], Op: OpTruncate, Tx: d.tx, Position: d.position, Truncated: tables}
	d.position++
	return Message{Kind: MsgChange, Change: c}, nil
}

// inOld reports whether column i of rel belongs in Old: every sent column
// of a full old row ('O'), the key columns of a key tuple ('K'; pgoutput
// sends the others as nulls).
func inOld(rel *relation, oldKind byte, f tupleField, i int) bool {
	if f.kind == 'u' {
		return false
	}
	if oldKind == 'O' || rel.nKey == 0 {
		// A key tuple for a relation without key flags should not happen;
		// keep what was actually sent rather than lose it.
		return oldKind == 'O' || f.kind != 'n'
	}
	return rel.columns[i].isKey
}

// emit builds the Change. All text and JSON bytes of the row (old and new)
// share one buffer, and all columns one slice: three allocations a row.
func (d *Decoder) emit(rel *relation, op Op, old []tupleField, oldKind byte, newT []tupleField) (Message, error) {
	textLen, nOld, nNew, nUnchanged, nFilled := 0, 0, 0, 0, 0
	for i, f := range old {
		if inOld(rel, oldKind, f, i) {
			nOld++
			textLen += len(f.data)
		}
	}
	full := oldKind == 'O'
	for i, f := range newT {
		switch {
		case f.kind != 'u':
			nNew++
			textLen += len(f.data)
		case full && old[i].kind == 't':
			nNew++ // filled from the old row, shares its bytes
			nFilled++
		default:
			nUnchanged++
		}
	}
	cols := make([]Column, nOld+nNew)
	// Most JSON tokens are the text plus quotes; escapes, base64 and
	// timestamps may grow it, then append reallocates once.
	buf := make([]byte, 0, 2*textLen+8*(nOld+nNew))
	spans := d.spans[:0]
	k := 0
	var oldAt []int // position in cols of each old column, for TOAST filling
	if nFilled > 0 {
		oldAt = make([]int, len(rel.columns))
	}
	add := func(i int, f tupleField) {
		rc := &rel.columns[i]
		cols[k] = Column{Name: rc.name, TypeOID: rc.typeOID, IsKey: rc.isKey}
		var sp span
		if f.kind == 'n' {
			cols[k].Null = true
			sp.jsonStart = len(buf)
			buf = append(buf, "null"...)
		} else {
			sp.textStart = len(buf)
			buf = append(buf, f.data...)
			sp.textEnd = len(buf)
			sp.jsonStart = len(buf)
			buf = d.values.appendValue(buf, rc.typeOID, rc.kind, f.data)
		}
		sp.jsonEnd = len(buf)
		spans = append(spans, sp)
		k++
	}
	for i, f := range old {
		if inOld(rel, oldKind, f, i) {
			if oldAt != nil {
				oldAt[i] = k
			}
			add(i, f)
		}
	}
	oldCols := cols[:k:k]
	var unchanged []string
	if nUnchanged > 0 {
		unchanged = make([]string, 0, nUnchanged)
	}
	for i, f := range newT {
		switch {
		case f.kind != 'u':
			add(i, f)
		case full && old[i].kind == 't':
			// REPLICA IDENTITY FULL: the old row has the unchanged value.
			cols[k] = Column{Name: rel.columns[i].name, TypeOID: rel.columns[i].typeOID, IsKey: rel.columns[i].isKey}
			spans = append(spans, spans[oldAt[i]])
			k++
		default:
			unchanged = append(unchanged, rel.columns[i].name)
		}
	}
	for j := range cols {
		sp := spans[j]
		cols[j].JSON = buf[sp.jsonStart:sp.jsonEnd:sp.jsonEnd]
		if !cols[j].Null {
			cols[j].Text = buf[sp.textStart:sp.textEnd:sp.textEnd]
		}
	}
	d.spans = spans
	c := &Change{
		Table:     rel.table,
		Op:        op,
		Tx:        d.tx,
		Position:  d.position,
		Unchanged: unchanged,
		OldIsFull: full,
	}
	if newT != nil {
		c.New = cols[len(oldCols):]
	}
	if old != nil {
		c.Old = oldCols
	}
	d.position++
	return Message{Kind: MsgChange, Change: c}, nil
}
