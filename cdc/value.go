package cdc

import (
	"encoding/base64"
	"errors"
	"time"

	"github.com/walcast/walcast/internal/jsonstr"
)

// Built-in type OIDs from PostgreSQL's pg_type.dat. They are fixed by the
// catalog and identical on every server version walcast supports.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// valueKind is how a text-format value becomes a JSON token.
type valueKind uint8

const (
	// kindString covers text, varchar, bpchar, name, uuid, int8, numeric
	// and date (whose ISO text is already the wanted form), and every type
	// walcast does not know: enums, domains, interval, time, money...
	kindString valueKind = iota
	kindBool
	kindNumber // int2, int4, oid, float4, float8: bare when the text is a JSON number
	kindJSON
	kindTimestamp
	kindBytea
	// kindUserArray is an array of a user-defined type (enum, domain...):
	// a JSON array of the elements' text.
	kindUserArray
)

func kindOf(oid uint32) valueKind {
	switch oid {
	case oidBool:
		return kindBool
	case oidInt2, oidInt4, oidOID, oidFloat4, oidFloat8:
		return kindNumber
	case oidJSON, oidJSONB:
		return kindJSON
	case oidTimestamp, oidTimestamptz:
		return kindTimestamp
	case oidBytea:
		return kindBytea
	}
	return kindString
}

// arrayElem maps a built-in array type to its element type. Only element
// types whose array_out uses ',' as the delimiter are listed (box uses ';'),
// so anything missing here is sent as its text, like an unknown type.
func arrayElem(oid uint32) (uint32, bool) {
	switch oid {
	case 1000:
		return oidBool, true
	case 1001:
		return oidBytea, true
	case 1002: // "char"
		return 18, true
	case 1003: // name
		return 19, true
	case 1005:
		return oidInt2, true
	case 1007:
		return oidInt4, true
	case 1009: // text
		return 25, true
	case 1014: // bpchar
		return 1042, true
	case 1015: // varchar
		return 1043, true
	case 1016:
		return oidInt8, true
	case 1021:
		return oidFloat4, true
	case 1022:
		return oidFloat8, true
	case 1028:
		return oidOID, true
	case 199:
		return oidJSON, true
	case 3807:
		return oidJSONB, true
	case 1182: // date
		return 1082, true
	case 1115:
		return oidTimestamp, true
	case 1185:
		return oidTimestamptz, true
	case 1231:
		return oidNumeric, true
	case 2951: // uuid
		return 2950, true
	case 1183: // time
		return 1083, true
	case 1270: // timetz
		return 1266, true
	case 1187: // interval
		return 1186, true
	case 791: // money
		return 790, true
	case 1041: // inet
		return 869, true
	case 651: // cidr
		return 650, true
	case 1040: // macaddr
		return 829, true
	case 143: // xml
		return 142, true
	}
	return 0, false
}

// valueEncoder renders text-format values as JSON tokens. Its scratch
// buffers make the steady state allocation-free; it is not safe for
// concurrent use (each Decoder owns one).
type valueEncoder struct {
	unescaped []byte // a quoted array element with its backslashes removed
	binary    []byte // decoded bytea before base64
}

// AppendValueJSON appends the JSON token for a value of type typeOID given in
// PostgreSQL's text output format (with the session settings the reader
// uses: DateStyle=ISO, TimeZone=UTC, extra_float_digits=3). The result is
// always valid JSON: text that does not parse as its type is sent as a JSON
// string of that text.
func AppendValueJSON(dst []byte, typeOID uint32, text []byte) []byte {
	var e valueEncoder
	return e.appendValue(dst, typeOID, kindOf(typeOID), text)
}

func (e *valueEncoder) appendValue(dst []byte, oid uint32, kind valueKind, text []byte) []byte {
	elem, isArray := arrayElem(oid)
	if kind == kindUserArray {
		elem, isArray = 0, true // kindOf(0): elements as text
	}
	if isArray {
		start := len(dst)
		out, err := e.appendArray(dst, kindOf(elem), text)
		if err == nil {
			return out
		}
		return jsonstr.AppendBytes(out[:start], text)
	}
	return e.appendScalar(dst, kind, text)
}

func (e *valueEncoder) appendScalar(dst []byte, kind valueKind, text []byte) []byte {
	switch kind {
	case kindBool:
		if len(text) == 1 {
			switch text[0] {
			case 't':
				return append(dst, "true"...)
			case 'f':
				return append(dst, "false"...)
			}
		}
	case kindNumber:
		// NaN, Infinity and -Infinity are no JSON numbers: they fall
		// through to strings, which is what DESIGN.md asks for.
		if isJSONNumber(text) {
			return append(dst, text...)
		}
	case kindJSON:
		// PostgreSQL validated it on input; checking again keeps the
		// promise that a payload is valid JSON whatever arrives.
		if validJSON(text) {
			return append(dst, text...)
		}
	case kindTimestamp:
		if out, ok := appendTimestamp(dst, text); ok {
			return out
		}
	case kindBytea:
		if raw, ok := decodeBytea(e.binary[:0], text); ok {
			e.binary = raw
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, raw)
			return append(dst, '"')
		}
	}
	return jsonstr.AppendBytes(dst, text)
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259),
// which PostgreSQL's integer and shortest-exact float output always is.
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendTimestamp renders PostgreSQL's ISO timestamp output
// ("2024-03-01 12:34:56.789123+00", "... BC", years past 9999, an offset
// when the session is not in UTC) the way JavaScript's Date.toISOString
// does: UTC, milliseconds (truncated, like node-postgres), and a signed
// six-digit year outside 0000-9999. "infinity" and anything unparsable
// report false and are sent as text.
func appendTimestamp(dst, s []byte) ([]byte, bool) {
	i := 0
	num := func(min, max int) (int, bool) {
		j := i
		v := 0
		for i < len(s) && isDigit(s[i]) && i-j < max {
			v = v*10 + int(s[i]-'0')
			i++
		}
		return v, i-j >= min
	}
	lit := func(c byte) bool {
		if i < len(s) && s[i] == c {
			i++
			return true
		}
		return false
	}
	year, ok := num(4, 7)
	if !ok || !lit('-') {
		return dst, false
	}
	month, ok := num(2, 2)
	if !ok || !lit('-') {
		return dst, false
	}
	day, ok := num(2, 2)
	if !ok || !lit(' ') {
		return dst, false
	}
	hour, ok := num(2, 2)
	if !ok || !lit(':') {
		return dst, false
	}
	minute, ok := num(2, 2)
	if !ok || !lit(':') {
		return dst, false
	}
	sec, ok := num(2, 2)
	if !ok {
		return dst, false
	}
	ms := 0
	if lit('.') {
		j := i
		for i < len(s) && isDigit(s[i]) {
			if i-j < 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			i++
		}
		n := i - j
		if n == 0 || n > 6 {
			return dst, false
		}
		for ; n < 3; n++ {
			ms *= 10
		}
	}
	offset := 0 // seconds east of UTC
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		i++
		h, ok := num(2, 2)
		if !ok {
			return dst, false
		}
		offset = h * 3600
		if lit(':') {
			m, ok := num(2, 2)
			if !ok {
				return dst, false
			}
			offset += m * 60
			if lit(':') {
				sc, ok := num(2, 2)
				if !ok {
					return dst, false
				}
				offset += sc
			}
		}
		offset *= sign
	}
	if i+3 == len(s) && s[i] == ' ' && s[i+1] == 'B' && s[i+2] == 'C' {
		year = 1 - year // 1 BC is year 0 in ISO-8601 and JavaScript
		i += 3
	}
	if i != len(s) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || sec > 60 {
		return dst, false
	}
	if offset != 0 {
		t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Add(-time.Duration(offset) * time.Second)
		year, month, day = t.Year(), int(t.Month()), t.Day()
		hour, minute, sec = t.Hour(), t.Minute(), t.Second()
	}
	dst = append(dst, '"')
	switch {
	case year < 0:
		dst = append(dst, '-')
		dst = appendDigits(dst, -year, 6)
	case year > 9999:
		dst = append(dst, '+')
		dst = appendDigits(dst, year, 6)
	default:
		dst = appendDigits(dst, year, 4)
	}
	dst = append(dst, '-')
	dst = appendDigits(dst, month, 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, ms, 3)
	return append(dst, 'Z', '"'), true
}

// appendDigits appends v zero-padded to width digits (more if v needs them).
func appendDigits(dst []byte, v, width int) []byte {
	var b [20]byte
	i := len(b)
	for v >= 10 || width > 1 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	b[i] = byte('0' + v)
	return append(dst, b[i:]...)
}

// decodeBytea decodes bytea text output: hex ("\x0a1b", the default
// bytea_output) or the older escape format ("ab\\\001").
func decodeBytea(dst, s []byte) ([]byte, bool) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		s = s[2:]
		if len(s)%2 != 0 {
			return dst, false
		}
		for i := 0; i < len(s); i += 2 {
			hi, ok1 := unhex(s[i])
			lo, ok2 := unhex(s[i+1])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			dst = append(dst, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]):
			dst = append(dst, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return dst, false
		}
	}
	return dst, true
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// maxArrayDims is PostgreSQL's MAXDIM: array_out never nests deeper, and
// the limit bounds the recursion on hostile input.
const maxArrayDims = 6

var errBadArray = errors.New("malformed array text")

// appendArray renders PostgreSQL array text output ("{1,NULL,3}",
// "{{a,b},{c,d}}", "[0:1]={x,y}", quoted elements with backslash escapes)
// as a JSON array, each element encoded as its element type. Lower bounds
// other than 1 are dropped: JSON arrays start at 0.
func (e *valueEncoder) appendArray(dst []byte, elem valueKind, s []byte) ([]byte, error) {
	i := 0
	if len(s) > 0 && s[0] == '[' {
		// Dimension decoration "[lo:hi]...=": skip to the '='.
		for i < len(s) && s[i] != '=' {
			i++
		}
		if i == len(s) {
			return dst, errBadArray
		}
		i++
	}
	dst, i, err := e.appendArrayLevel(dst, elem, s, skipSpace(s, i), 1)
	if err != nil {
		return dst, err
	}
	if skipSpace(s, i) != len(s) {
		return dst, errBadArray
	}
	return dst, nil
}

func skipSpace(s []byte, i int) int {
	for i < len(s) && isArraySpace(s[i]) {
		i++
	}
	return i
}

// isArraySpace matches the whitespace array_in skips (scanner_isspace).
func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (e *valueEncoder) appendArrayLevel(dst []byte, elem valueKind, s []byte, i, depth int) ([]byte, int, error) {
	if i >= len(s) || s[i] != '{' {
		return dst, i, errBadArray
	}
	i = skipSpace(s, i+1)
	dst = append(dst, '[')
	if i < len(s) && s[i] == '}' {
		return append(dst, ']'), i + 1, nil
	}
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return dst, i, errBadArray
		}
		var err error
		switch s[i] {
		case '{':
			if depth >= maxArrayDims {
				return dst, i, errBadArray
			}
			dst, i, err = e.appendArrayLevel(dst, elem, s, i, depth+1)
		case '"':
			dst, i, err = e.appendQuotedElem(dst, elem, s, i+1)
		default:
			dst, i, err = e.appendBareElem(dst, elem, s, i)
		}
		if err != nil {
			return dst, i, err
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return dst, i, errBadArray
		}
		switch s[i] {
		case ',':
			dst = append(dst, ',')
			i++
		case '}':
			return append(dst, ']'), i + 1, nil
		default:
			return dst, i, errBadArray
		}
	}
}

// appendQuotedElem handles an element array_out put in double quotes
// (empty, or containing delimiters, braces, quotes, backslashes, spaces or
// the word NULL); i is just past the opening quote.
func (e *valueEncoder) appendQuotedElem(dst []byte, elem valueKind, s []byte, i int) ([]byte, int, error) {
	start := i
	for i < len(s) && s[i] != '"' && s[i] != '\\' {
		i++
	}
	if i < len(s) && s[i] == '"' {
		// No escapes: encode straight from the input.
		return e.appendScalar(dst, elem, s[start:i]), i + 1, nil
	}
	buf := append(e.unescaped[:0], s[start:i]...)
	for i < len(s) {
		switch c := s[i]; c {
		case '"':
			e.unescaped = buf
			return e.appendScalar(dst, elem, buf), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return dst, i, errBadArray
			}
			buf = append(buf, s[i+1])
			i += 2
		default:
			buf = append(buf, c)
			i++
		}
	}
	e.unescaped = buf
	return dst, i, errBadArray
}

// appendBareElem handles an unquoted element, which ends at ',' or '}';
// the bare word NULL (any case, as array_in reads it) is SQL NULL.
func (e *valueEncoder) appendBareElem(dst []byte, elem valueKind, s []byte, i int) ([]byte, int, error) {
	start := i
	escaped := false
	for i < len(s) {
		c := s[i]
		if c == ',' || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return dst, i, errBadArray
		}
		if c == '\\' {
			if i+1 >= len(s) {
				return dst, i, errBadArray
			}
			escaped = true
			i++
		}
		i++
	}
	end := i
	for end > start && isArraySpace(s[end-1]) && (end-2 < start || s[end-2] != '\\') {
		end--
	}
	tok := s[start:end]
	if len(tok) == 0 {
		return dst, i, errBadArray
	}
	if !escaped {
		if len(tok) == 4 && (tok[0]|0x20) == 'n' && (tok[1]|0x20) == 'u' && (tok[2]|0x20) == 'l' && (tok[3]|0x20) == 'l' {
			return append(dst, "null"...), i, nil
		}
		return e.appendScalar(dst, elem, tok), i, nil
	}
	buf := e.unescaped[:0]
	for j := 0; j < len(tok); j++ {
		if tok[j] == '\\' && j+1 < len(tok) {
			j++
		}
		buf = append(buf, tok[j])
	}
	e.unescaped = buf
	return e.appendScalar(dst, elem, buf), i, nil
}
