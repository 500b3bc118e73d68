package cdc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Type OIDs used only by the tests.
const (
	oidText        = 25
	oidVarchar     = 1043
	oidBpchar      = 1042
	oidName        = 19
	oidUUID        = 2950
	oidDate        = 1082
	oidTime        = 1083
	oidInterval    = 1186
	oidMoney       = 790
	oidTextArray   = 1009
	oidInt4Array   = 1007
	oidInt8Array   = 1016
	oidFloat8Array = 1022
	oidBoolArray   = 1000
	oidByteaArray  = 1001
	oidJSONBArray  = 3807
	oidTstzArray   = 1185
	oidNumArray    = 1231
	oidBoxArray    = 1020
	oidUnknownEnum = 16390 // a user type: enums, domains
)

func TestAppendValueJSON(t *testing.T) {
	tests := []struct {
		name string
		oid  uint32
		text string
		want string
	}{
		{"int2", oidInt2, "-32768", `-32768`},
		{"int4", oidInt4, "2147483647", `2147483647`},
		{"int4 zero", oidInt4, "0", `0`},
		{"oid", oidOID, "4294967295", `4294967295`},
		{"int8 exact", oidInt8, "9223372036854775807", `"9223372036854775807"`},
		{"int8 negative", oidInt8, "-9223372036854775808", `"-9223372036854775808"`},
		{"numeric scale", oidNumeric, "100.00", `"100.00"`},
		{"numeric long", oidNumeric, "-12345678901234567890.000000000000000000001", `"-12345678901234567890.000000000000000000001"`},
		{"numeric NaN", oidNumeric, "NaN", `"NaN"`},
		{"numeric Infinity", oidNumeric, "Infinity", `"Infinity"`},
		{"numeric -Infinity", oidNumeric, "-Infinity", `"-Infinity"`},
		{"float8", oidFloat8, "1.5", `1.5`},
		{"float8 shortest exact", oidFloat8, "0.30000000000000004", `0.30000000000000004`},
		{"float8 exponent", oidFloat8, "1e+100", `1e+100`},
		{"float8 small exponent", oidFloat8, "1.2345678e-05", `1.2345678e-05`},
		{"float8 negative zero", oidFloat8, "-0", `-0`},
		{"float8 NaN", oidFloat8, "NaN", `"NaN"`},
		{"float8 Infinity", oidFloat8, "Infinity", `"Infinity"`},
		{"float4 -Infinity", oidFloat4, "-Infinity", `"-Infinity"`},
		{"bool true", oidBool, "t", `true`},
		{"bool false", oidBool, "f", `false`},
		{"text", oidText, "hello", `"hello"`},
		{"text escapes", oidText, "a\"b\\c\nd\te\r\x01\x1f", `"a\"b\\c\nd\te\r\u0001\u001f"`},
		{"text unicode", oidText, "Grüße 💒 \u2028", "\"Grüße 💒 \u2028\""},
		{"text invalid utf8", oidText, "a\xffb", `"a\ufffdb"`},
		{"text empty", oidText, "", `""`},
		{"varchar", oidVarchar, "x y", `"x y"`},
		{"bpchar keeps padding", oidBpchar, "ab  ", `"ab  "`},
		{"name", oidName, "pg_class", `"pg_class"`},
		{"uuid", oidUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"timestamptz", oidTimestamptz, "2024-03-01 00:00:00+00", `"2024-03-01T00:00:00.000Z"`},
		{"timestamptz micros truncated", oidTimestamptz, "2024-03-01 12:34:56.789999+00", `"2024-03-01T12:34:56.789Z"`},
		{"timestamptz one digit fraction", oidTimestamptz, "2024-03-01 12:34:56.5+00", `"2024-03-01T12:34:56.500Z"`},
		{"timestamptz offset", oidTimestamptz, "2024-03-01 01:30:00+05:30", `"2024-02-29T20:00:00.000Z"`},
		{"timestamptz negative offset", oidTimestamptz, "2023-12-31 20:00:00.25-08", `"2024-01-01T04:00:00.250Z"`},
		{"timestamptz seconds offset", oidTimestamptz, "1900-01-01 00:00:00+00:09:21", `"1899-12-31T23:50:39.000Z"`},
		{"timestamptz BC", oidTimestamptz, "0044-03-15 12:00:00+00 BC", `"-000043-03-15T12:00:00.000Z"`},
		{"timestamptz 1 BC is year 0", oidTimestamptz, "0001-01-01 00:00:00+00 BC", `"0000-01-01T00:00:00.000Z"`},
		{"timestamptz far future", oidTimestamptz, "12345-06-07 08:09:10+00", `"+012345-06-07T08:09:10.000Z"`},
		{"timestamptz infinity", oidTimestamptz, "infinity", `"infinity"`},
		{"timestamptz -infinity", oidTimestamptz, "-infinity", `"-infinity"`},
		{"timestamp as UTC", oidTimestamp, "2024-03-01 00:00:00.123", `"2024-03-01T00:00:00.123Z"`},
		{"timestamp garbage as text", oidTimestamp, "2024-13-01 00:00:00", `"2024-13-01 00:00:00"`},
		{"date", oidDate, "2024-03-01", `"2024-03-01"`},
		{"date infinity", oidDate, "infinity", `"infinity"`},
		{"bytea hex", oidBytea, `\x48656c6c6f`, `"SGVsbG8="`},
		{"bytea empty", oidBytea, `\x`, `""`},
		{"bytea escape format", oidBytea, `Hi\\\000\377`, `"SGlcAP8="`},
		{"bytea bad hex as text", oidBytea, `\x4`, `"\\x4"`},
		{"json byte exact", oidJSON, `{"b": 1,  "a" : [1, 2.50]}`, `{"b": 1,  "a" : [1, 2.50]}`},
		{"jsonb", oidJSONB, `{"a": "x", "b": null}`, `{"a": "x", "b": null}`},
		{"jsonb scalar", oidJSONB, `"s"`, `"s"`},
		{"json invalid as text", oidJSON, `{"a":`, `"{\"a\":"`},
		{"enum", oidUnknownEnum, "happy", `"happy"`},
		{"interval", oidInterval, "1 year 2 mons 3 days 04:05:06.5", `"1 year 2 mons 3 days 04:05:06.5"`},
		{"time", oidTime, "04:05:06.789", `"04:05:06.789"`},
		{"money", oidMoney, "$1,000.00", `"$1,000.00"`},

		{"int4[]", oidInt4Array, "{1,2,3}", `[1,2,3]`},
		{"int4[] with NULL", oidInt4Array, "{1,NULL,3}", `[1,null,3]`},
		{"int4[] empty", oidInt4Array, "{}", `[]`},
		{"int4[][]", oidInt4Array, "{{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{"int4[] 3 dims", oidInt4Array, "{{{1},{2}},{{3},{4}}}", `[[[1],[2]],[[3],[4]]]`},
		{"int4[] lower bound", oidInt4Array, "[0:1]={7,8}", `[7,8]`},
		{"int4[][] lower bounds", oidInt4Array, "[0:1][2:3]={{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{"int8[]", oidInt8Array, "{9223372036854775807,-1}", `["9223372036854775807","-1"]`},
		{"numeric[]", oidNumArray, "{1.50,NaN,NULL}", `["1.50","NaN",null]`},
		{"float8[]", oidFloat8Array, "{1.5,Infinity,-Infinity,NaN}", `[1.5,"Infinity","-Infinity","NaN"]`},
		{"bool[]", oidBoolArray, "{t,f,NULL}", `[true,false,null]`},
		{"text[] plain", oidTextArray, "{a,b,c}", `["a","b","c"]`},
		{"text[] quoted", oidTextArray, `{"a b","c,d","{e}",""}`, `["a b","c,d","{e}",""]`},
		{"text[] escapes", oidTextArray, `{"say \"hi\"","back\\slash"}`, `["say \"hi\"","back\\slash"]`},
		{"text[] quoted NULL is a string", oidTextArray, `{"NULL",NULL,null}`, `["NULL",null,null]`},
		{"text[] unicode", oidTextArray, `{Grüße,"ü ü"}`, `["Grüße","ü ü"]`},
		{"text[] whitespace from array_in style", oidTextArray, `{ a , b }`, `["a","b"]`},
		{"text[] 2 dims", oidTextArray, `{{a,"b c"},{NULL,d}}`, `[["a","b c"],[null,"d"]]`},
		{"bytea[]", oidByteaArray, `{"\\x4869",NULL}`, `["SGk=",null]`},
		{"jsonb[]", oidJSONBArray, `{"{\"a\": 1}","[1, 2]"}`, `[{"a": 1},[1, 2]]`},
		{"timestamptz[]", oidTstzArray, `{"2024-03-01 00:00:00+00",infinity}`, `["2024-03-01T00:00:00.000Z","infinity"]`},
		{"box[] sent as text", oidBoxArray, `{(1,1),(0,0);(2,2),(1,1)}`, `"{(1,1),(0,0);(2,2),(1,1)}"`},
		{"array malformed as text", oidInt4Array, "{1,2", `"{1,2"`},
		{"array trailing junk as text", oidInt4Array, "{1}x", `"{1}x"`},
		{"array too deep as text", oidInt4Array, "{{{{{{{1}}}}}}}", `"{{{{{{{1}}}}}}}"`},
		{"array empty element as text", oidInt4Array, "{1,,2}", `"{1,,2}"`},
	}
	for i, tt := range tests {
		writeCorpusFile(t, "FuzzDecodeValue", fmt.Sprintf("table-%03d", i), fmt.Sprintf("uint32(%d)\n[]byte(%s)", tt.oid, strconv.Quote(tt.text)))
		t.Run(tt.name, func(t *testing.T) {
			got := AppendValueJSON([]byte("prefix:"), tt.oid, []byte(tt.text))
			if string(got) != "prefix:"+tt.want {
				t.Fatalf("AppendValueJSON(%d, %q)\n got %s\nwant %s", tt.oid, tt.text, got[len("prefix:"):], tt.want)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Fatalf("not valid JSON: %s", got)
			}
		})
	}
}

func TestAppendRowJSONAndProjection(t *testing.T) {
	cols := []Column{
		{Name: "id", JSON: []byte(`1`)},
		{Name: "password_hash", JSON: []byte(`"secret"`)},
		{Name: "first \"name\"", JSON: []byte(`"Ann"`)},
		{Name: "amount", JSON: []byte(`"100.00"`)},
	}
	tests := []struct {
		name string
		got  func() []byte
		want string
	}{
		{"all columns", func() []byte { return AppendRowJSON(nil, cols, nil) }, `{"id":1,"password_hash":"secret","first \"name\"":"Ann","amount":"100.00"}`},
		{"include func", func() []byte {
			return AppendRowJSON(nil, cols, func(n string) (string, bool) { return "x_" + n, n != "password_hash" })
		}, `{"x_id":1,"x_first \"name\"":"Ann","x_amount":"100.00"}`},
		{"empty row", func() []byte { return AppendRowJSON(nil, nil, nil) }, `{}`},
		{"projection allow-list and rename", func() []byte {
			return NewProjection([]string{"id", "amount"}, map[string]string{"amount": "total"}).AppendJSON(nil, cols)
		}, `{"id":1,"total":"100.00"}`},
		{"projection all with rename", func() []byte {
			return NewProjection(nil, map[string]string{"id": "memberId"}).AppendJSON(nil, cols)
		}, `{"memberId":1,"password_hash":"secret","first \"name\"":"Ann","amount":"100.00"}`},
		{"projection nothing allowed", func() []byte { return NewProjection([]string{}, nil).AppendJSON(nil, cols) }, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got()
			if string(got) != tt.want {
				t.Fatalf("got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON %s", got)
			}
		})
	}
}

// A projection keeps its cached plan only while the column list is the same:
// a Relation change (new column list) must be seen.
func TestProjectionReplansOnNewColumns(t *testing.T) {
	p := NewProjection([]string{"a", "c"}, nil)
	v1 := []Column{{Name: "a", JSON: []byte(`1`)}, {Name: "b", JSON: []byte(`2`)}}
	v2 := []Column{{Name: "a", JSON: []byte(`1`)}, {Name: "c", JSON: []byte(`3`)}}
	v3 := []Column{{Name: "c", JSON: []byte(`3`)}}
	for i, c := range []struct {
		cols []Column
		want string
	}{{v1, `{"a":1}`}, {v2, `{"a":1,"c":3}`}, {v1, `{"a":1}`}, {v3, `{"c":3}`}} {
		if got := p.AppendJSON(nil, c.cols); string(got) != c.want {
			t.Errorf("step %d: got %s want %s", i, got, c.want)
		}
	}
}

var jsonValidityCases = []string{
	`{}`, `[]`, `{"a":1}`, ` {"a" : [1, 2.5e-3, -0, true, false, null, "x\u00e9\n"]} `, `"s"`, `0`, `-1.5E+10`,
	`[[[[]]]]`, `{"a":{"b":{"c":[{}]}}}`, `[1,]`, `{"a"}`, `{"a":}`, `{,}`, `[1 2]`, `01`, `1.`, `.5`, `-`, `+1`,
	`"\x"`, `"\u12"`, `"a` + "\x01" + `"`, `tru`, `nul`, `{"a":1}x`, `[`, `]`, ``, ` `, `{"a":1,}`, `["a":1]`,
	`{1:2}`, `[1e5,1E-5,1e+5]`, `"\/\b\f\r\t\"\\"`, strings.Repeat("[", 40) + strings.Repeat("]", 40),
	strings.Repeat("[", 40) + strings.Repeat("]", 39), `[1]]`, `{}}`, `[-]`, `[1-2]`, `1e`, `"` + "\xff" + `"`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range jsonValidityCases {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", s, got, want)
		}
	}
}

// FuzzValidJSON: the fast validator must agree with encoding/json on every input.
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonValidityCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// The shapes of one table's rows (full, without a TOAST column, old key)
// are all remembered: alternating between them makes no new plans.
func TestProjectionRemembersSeveralShapes(t *testing.T) {
	p := NewProjection(nil, map[string]string{"id": "ID"})
	full := []Column{{Name: "id", JSON: []byte(`1`)}, {Name: "body", JSON: []byte(`"b"`)}}
	key := full[:1]
	for range 3 {
		if got := string(p.AppendJSON(nil, full)); got != `{"ID":1,"body":"b"}` {
			t.Fatalf("full: %s", got)
		}
		if got := string(p.AppendJSON(nil, key)); got != `{"ID":1}` {
			t.Fatalf("key: %s", got)
		}
	}
	if n := len(*p.cached.Load()); n != 2 {
		t.Errorf("%d plans for 2 shapes", n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		p.AppendJSON(make([]byte, 0, 64), full)
		p.AppendJSON(make([]byte, 0, 64), key)
	})
	if allocs > 2 { // the two buffers made in the closure
		t.Errorf("%.0f allocations a pair of rows, want no plan rebuilds", allocs)
	}
}
