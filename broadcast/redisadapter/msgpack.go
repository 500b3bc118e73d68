package redisadapter

// A minimal MessagePack codec for the subset the Node adapters exchange.
//
// Why not a general module (e.g. vmihailenco/msgpack): what walcast needs is not
// "msgpack <-> Go values" but transcoding between msgpack and the raw JSON
// arguments parser.Packet carries, with binary values turned into Socket.IO
// attachments on the way in and back into msgpack bin on the way out. A
// general codec would add an interface{} tree per message and still need this
// walk on top; and since every byte read here comes from Redis (a trust
// boundary), owning the decoder lets us bound depth and claimed lengths and
// fuzz exactly the code that runs.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/internal/jsonstr"
)

// maxDepth bounds nesting so a hostile entry cannot exhaust the stack.
const maxDepth = 64

var errMsgpack = errors.New("invalid msgpack")

// mpReader reads msgpack values from b.
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) fail(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errMsgpack, r.off, fmt.Sprintf(format, args...))
}

func (r *mpReader) next(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, r.fail("truncated (need %d bytes)", n)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *mpReader) byte1() (byte, error) {
	s, err := r.next(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (r *mpReader) uintN(n int) (uint64, error) {
	s, err := r.next(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (r *mpReader) peek() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.fail("truncated")
	}
	return r.b[r.off], nil
}

// length reads an n-byte length and checks it against what is left, so a
// claimed length never turns into an allocation larger than the input.
func (r *mpReader) length(n int, minItem int) (int, error) {
	v, err := r.uintN(n)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(r.b)-r.off)/uint64(minItem) {
		return 0, r.fail("length %d exceeds input", v)
	}
	return int(v), nil
}

// arrayLen reads an array header.
func (r *mpReader) arrayLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x90 && c <= 0x9f:
		n := int(c & 0x0f)
		if n > len(r.b)-r.off {
			return 0, r.fail("length %d exceeds input", n)
		}
		return n, nil
	case c == 0xdc:
		return r.length(2, 1)
	case c == 0xdd:
		return r.length(4, 1)
	}
	return 0, r.fail("want array, got 0x%02x", c)
}

// mapLen reads a map header.
func (r *mpReader) mapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x80 && c <= 0x8f:
		n := int(c & 0x0f)
		if 2*n > len(r.b)-r.off {
			return 0, r.fail("length %d exceeds input", n)
		}
		return n, nil
	case c == 0xde:
		return r.length(2, 2)
	case c == 0xdf:
		return r.length(4, 2)
	}
	return 0, r.fail("want map, got 0x%02x", c)
}

// str reads a string (or, leniently, a bin) as raw bytes.
func (r *mpReader) str() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.length(1, 1)
	case c == 0xda || c == 0xc5:
		n, err = r.length(2, 1)
	case c == 0xdb || c == 0xc6:
		n, err = r.length(4, 1)
	default:
		return nil, r.fail("want string, got 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

// isNil consumes a nil if one is next.
func (r *mpReader) isNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// int reads any msgpack integer that fits an int64.
func (r *mpReader) int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		v, err := r.uintN(1 << (c - 0xcc))
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, r.fail("integer overflow")
		}
		return int64(v), nil
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.uintN(n)
		if err != nil {
			return 0, err
		}
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, nil
	case c == 0xcb:
		v, err := r.uintN(8)
		if err != nil {
			return 0, err
		}
		f := math.Float64frombits(v)
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, r.fail("not an integer: %v", f)
		}
		return int64(f), nil
	}
	return 0, r.fail("want integer, got 0x%02x", c)
}

// toJSON transcodes one msgpack value to JSON appended to dst. Binary values
// become Socket.IO placeholders and their bytes are appended to *atts.
func (r *mpReader) toJSON(dst []byte, atts *[][]byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, r.fail("nesting deeper than %d", maxDepth)
	}
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		if c == 0xcf {
			// uint64 above MaxInt64 is still a valid number.
			r.off++
			v, err := r.uintN(8)
			if err != nil {
				return nil, err
			}
			return strconv.AppendUint(dst, v, 10), nil
		}
		v, err := r.int()
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(dst, v, 10), nil
	case c == 0xc0:
		r.off++
		return append(dst, "null"...), nil
	case c == 0xc2:
		r.off++
		return append(dst, "false"...), nil
	case c == 0xc3:
		r.off++
		return append(dst, "true"...), nil
	case c == 0xca || c == 0xcb:
		r.off++
		var f float64
		if c == 0xca {
			v, err := r.uintN(4)
			if err != nil {
				return nil, err
			}
			f = float64(math.Float32frombits(uint32(v)))
		} else {
			v, err := r.uintN(8)
			if err != nil {
				return nil, err
			}
			f = math.Float64frombits(v)
		}
		return appendJSONFloat(dst, f), nil
	case (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb):
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		return jsonstr.AppendBytes(dst, s), nil
	case c >= 0xc4 && c <= 0xc6:
		b, err := r.str()
		if err != nil {
			return nil, err
		}
		*atts = append(*atts, bytes.Clone(b))
		return parser.AppendPlaceholder(dst, len(*atts)-1), nil
	case (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd:
		n, err := r.arrayLen()
		if err != nil {
			return nil, err
		}
		dst = append(dst, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = r.toJSON(dst, atts, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf:
		n, err := r.mapLen()
		if err != nil {
			return nil, err
		}
		dst = append(dst, '{')
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			key, err := r.mapKey()
			if err != nil {
				return nil, err
			}
			// A forged placeholder would point the client at an attachment
			// that does not exist (or is someone else's).
			if string(key) == "_placeholder" {
				return nil, r.fail("map key _placeholder is reserved")
			}
			dst = jsonstr.AppendBytes(dst, key)
			dst = append(dst, ':')
			if dst, err = r.toJSON(dst, atts, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case (c >= 0xd4 && c <= 0xd8) || (c >= 0xc7 && c <= 0xc9):
		return r.extToJSON(dst)
	}
	return nil, r.fail("unsupported type 0x%02x", c)
}

// mapKey reads a map key as JSON does: strings as they are, integers in decimal.
func (r *mpReader) mapKey() ([]byte, error) {
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	if c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3) {
		v, err := r.int()
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, v, 10), nil
	}
	return r.str()
}

// extToJSON handles the two extensions JavaScript encoders emit: notepack.io's
// undefined (fixext1 type 0, which JSON.stringify would drop or null) and the
// msgpack timestamp (a Date, which JSON.stringify writes as an ISO string).
func (r *mpReader) extToJSON(dst []byte) ([]byte, error) {
	c, _ := r.byte1()
	var n int
	var err error
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		n = 1 << (c - 0xd4)
	case 0xc7:
		n, err = r.length(1, 1)
	case 0xc8:
		n, err = r.length(2, 1)
	case 0xc9:
		n, err = r.length(4, 1)
	}
	if err != nil {
		return nil, err
	}
	typ, err := r.byte1()
	if err != nil {
		return nil, err
	}
	data, err := r.next(n)
	if err != nil {
		return nil, err
	}
	switch {
	case typ == 0 && n == 1:
		return append(dst, "null"...), nil
	case int8(typ) == -1:
		var sec int64
		var nsec uint32
		switch n {
		case 4:
			sec = int64(binary.BigEndian.Uint32(data))
		case 8:
			v := binary.BigEndian.Uint64(data)
			nsec, sec = uint32(v>>34), int64(v&(1<<34-1))
		case 12:
			nsec, sec = binary.BigEndian.Uint32(data), int64(binary.BigEndian.Uint64(data[4:]))
		default:
			return nil, r.fail("timestamp of %d bytes", n)
		}
		if nsec > 999999999 {
			return nil, r.fail("timestamp nanoseconds %d", nsec)
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		if t.Year() < 0 || t.Year() > 9999 {
			return append(dst, "null"...), nil
		}
		return strconv.AppendQuote(dst, t.Format("2006-01-02T15:04:05.000Z")), nil
	}
	return nil, r.fail("unsupported extension type %d", int8(typ))
}

// skip consumes one value of any type.
func (r *mpReader) skip() error {
	var atts [][]byte
	_, err := r.toJSON(nil, &atts, 0)
	return err
}

// appendJSONFloat writes f like JSON.stringify: non-finite values are null.
func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// Encoding.

func mpAppendArrayLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	}
	return append(dst, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func mpAppendMapLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xde, byte(n>>8), byte(n))
	}
	return append(dst, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func mpAppendString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

func mpAppendBin(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xc5, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

func mpAppendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= 0x7f:
		return append(dst, byte(v))
	case v < 0 && v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return append(dst, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	dst = append(dst, 0xd3)
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

func mpAppendFloat(dst []byte, f float64) []byte {
	dst = append(dst, 0xcb)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func mpAppendStrings(dst []byte, ss []string) []byte {
	dst = mpAppendArrayLen(dst, len(ss))
	for _, s := range ss {
		dst = mpAppendString(dst, s)
	}
	return dst
}

// mpAppendJSON transcodes one raw JSON value to msgpack, turning Socket.IO
// placeholders back into bin values taken from atts. The JSON comes from our
// own packets (validated when received or produced by encoding/json).
func mpAppendJSON(dst []byte, raw json.RawMessage, atts [][]byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("argument to msgpack: %w", err)
	}
	return mpAppendValue(dst, v, atts, 0)
}

func mpAppendValue(dst []byte, v any, atts [][]byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("argument to msgpack: nesting deeper than %d", maxDepth)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case bool:
		if v {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case string:
		return mpAppendString(dst, v), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return mpAppendInt(dst, i), nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("argument to msgpack: number %s: %w", v, err)
		}
		return mpAppendFloat(dst, f), nil
	case []any:
		dst = mpAppendArrayLen(dst, len(v))
		for _, e := range v {
			if dst, err = mpAppendValue(dst, e, atts, depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case map[string]any:
		if ph, ok := v["_placeholder"].(bool); ok && ph {
			if num, ok := v["num"].(json.Number); ok {
				i, err := strconv.Atoi(string(num))
				if err != nil || i < 0 || i >= len(atts) {
					return nil, fmt.Errorf("argument to msgpack: placeholder %s without attachment", num)
				}
				return mpAppendBin(dst, atts[i]), nil
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = mpAppendMapLen(dst, len(keys))
		for _, k := range keys {
			dst = mpAppendString(dst, k)
			if dst, err = mpAppendValue(dst, v[k], atts, depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	}
	return nil, fmt.Errorf("argument to msgpack: unexpected %T", v)
}
