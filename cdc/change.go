// Package cdc reads committed row changes from PostgreSQL through logical
// replication (pgoutput, protocol version 1) and hands them out in commit
// order, taking acknowledgements that let PostgreSQL release WAL.
//
// cdc knows nothing of sockets: it produces Change values and accepts acks.
package cdc

import (
	"time"

	"github.com/jackc/pglogrepl"
)

// Op is the kind of row change.
type Op uint8

const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpTruncate
	// OpResync is not a row change: it tells consumers that changes may have
	// been lost (the slot was recreated with Config.RecreateSlot) and clients
	// must refetch. Table is empty: it concerns every table.
	OpResync
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "INSERT"
	case OpUpdate:
		return "UPDATE"
	case OpDelete:
		return "DELETE"
	case OpTruncate:
		return "TRUNCATE"
	case OpResync:
		return "RESYNC"
	}
	return "UNKNOWN"
}

// Table names a relation, schema-qualified.
type Table struct {
	Schema string
	Name   string
}

func (t Table) String() string { return t.Schema + "." + t.Name }

// Column is one column value of a row.
//
// JSON holds the value already rendered as a JSON token following DESIGN.md
// "Values in event payloads" (numbers bare, int8/numeric as strings with
// exact digits, timestamps ISO-8601 UTC with milliseconds, json/jsonb
// byte-exact, ...), so payloads are built by concatenation without a second
// encoding pass. A SQL NULL is the token `null`.
// Text holds the value as PostgreSQL's text output (nil for NULL), for
// consumers that need the plain value, such as a room name built from a
// column.
type Column struct {
	Name    string
	TypeOID uint32
	IsKey   bool // part of the replica identity (pgoutput's key flag)
	JSON    []byte
	Text    []byte
	Null    bool
}

// TxInfo identifies a committed transaction.
type TxInfo struct {
	XID        uint32
	CommitLSN  pglogrepl.LSN // LSN of the commit record
	EndLSN     pglogrepl.LSN // TransactionEndLSN: what is acked once the consumer accepted the transaction
	CommitTime time.Time
}

// Change is one row change (or a truncate) inside a committed transaction.
type Change struct {
	Table Table
	Op    Op
	Tx    TxInfo
	// Position is the change's 0-based index within its transaction; with
	// Tx.CommitLSN it orders and identifies every change exactly.
	Position int
	// New is the new row (INSERT, UPDATE), columns in table order. Columns
	// listed in Unchanged are absent from New.
	New []Column
	// Old is, for UPDATE and DELETE, the key columns only under the default
	// replica identity, or the whole old row under REPLICA IDENTITY FULL.
	// Nil when PostgreSQL sent no old tuple (an UPDATE that did not change
	// the key, under the default identity).
	Old []Column
	// OldIsFull reports that Old is the whole row (REPLICA IDENTITY FULL).
	OldIsFull bool
	// Unchanged names the TOASTed columns PostgreSQL did not send because
	// they did not change. They are left out, never turned into null. Under
	// REPLICA IDENTITY FULL they are filled from the old row instead and this
	// list is empty.
	Unchanged []string
	// Truncated lists the tables of a TRUNCATE (one Change per statement).
	Truncated []Table
}
