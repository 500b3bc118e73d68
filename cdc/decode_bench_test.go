package cdc

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

// benchRelation and benchInsert mirror bench/cdc's mixed table and one of
// its rows as PostgreSQL 15 sends them.
var benchRelation = relationMsg(16400, "public", "mixed", 'd',
	relCol{true, "id", oidInt4}, relCol{false, "big", oidInt8}, relCol{false, "amount", oidNumeric},
	relCol{false, "name", oidText}, relCol{false, "tags", oidTextArray}, relCol{false, "at", oidTimestamptz},
	relCol{false, "active", oidBool}, relCol{false, "doc", oidJSONB}, relCol{false, "uid", oidUUID})

var benchInsert = insertMsg(16400, "12345", "12345037035", "123.45", `Member "12345" O'Neil`,
	`{donor,"tag 4","x,y"}`, "2024-03-01 03:25:45+00", "f",
	`{"n": 12345, "list": [1, 2.5, "three"], "note": "café"}`, "827ccb0e-ea8a-706c-4c34-a16891f84e7b")

// BenchmarkDecodeInsert: the Decoder (parse + every value to its JSON token
// + Text copy) beside pglogrepl.Parse, which only splits the tuple.
func BenchmarkDecodeInsert(b *testing.B) {
	b.Run("walcast", func(b *testing.B) {
		d := NewDecoder()
		mustDecode(b, d, benchRelation)
		mustDecode(b, d, beginMsg(1, 1))
		b.ReportAllocs()
		b.SetBytes(int64(len(benchInsert)))
		for b.Loop() {
			if _, err := d.Decode(benchInsert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference=pglogrepl.Parse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchInsert)))
		for b.Loop() {
			if _, err := pglogrepl.Parse(benchInsert); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRowPayload: building {"col":value,...} from a decoded row with a
// Projection beside a map + encoding/json (the prototype's way).
func BenchmarkRowPayload(b *testing.B) {
	d := NewDecoder()
	mustDecode(b, d, benchRelation)
	mustDecode(b, d, beginMsg(1, 1))
	m, err := d.Decode(benchInsert)
	if err != nil {
		b.Fatal(err)
	}
	cols := m.Change.New
	b.Run("walcast Projection", func(b *testing.B) {
		p := NewProjection(nil, nil)
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = p.AppendJSON(buf[:0], cols)
		}
	})
	b.Run("reference=map+encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			row := make(map[string]any, len(cols))
			for _, c := range cols {
				row[c.Name] = json.RawMessage(c.JSON)
			}
			if _, err := json.Marshal(row); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTextArray: the hand-written array scanner beside pgx's text[]
// parsing followed by encoding/json.
func BenchmarkTextArray(b *testing.B) {
	text := []byte(`{donor,"tag 4","x,y",NULL,"say \"hi\"",plain,another,"with space"}`)
	b.Run("walcast", func(b *testing.B) {
		var e valueEncoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = e.appendValue(buf[:0], oidTextArray, kindString, text)
		}
	})
	b.Run("reference=pgtype+encoding/json", func(b *testing.B) {
		m := pgtype.NewMap()
		b.ReportAllocs()
		for b.Loop() {
			var a []*string
			if err := m.Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, text, &a); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
