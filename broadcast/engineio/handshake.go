package engineio

import (
	"net/http"
	"net/url"
	"strings"
)

// upgradeMechanics are request headers that only carry the WebSocket
// handshake itself; nothing reads them after it, so sessions do not keep
// them.
var upgradeMechanics = [...]string{
	"Connection",
	"Upgrade",
	"Sec-Websocket-Key",
	"Sec-Websocket-Version",
	"Sec-Websocket-Extensions",
}

// keptHeader copies the request headers a session keeps, packed for a
// long life: one map sized to fit, one backing array for all value slices
// and one string holding every value, instead of a string per value and
// the parser's map sized for the whole request. Idle sessions are mostly
// this and the query, so their size is the server's idle memory.
func keptHeader(h http.Header) http.Header {
	keys, nvals, size := 0, 0, 0
	for k, vs := range h {
		if isUpgradeMechanics(k) {
			continue
		}
		keys++
		nvals += len(vs)
		for _, v := range vs {
			size += len(v)
		}
	}
	if keys == 0 {
		return http.Header{}
	}
	// One pass: map iteration order differs between loops, so the values
	// are appended, copied into the builder and sliced in the same order.
	var sb strings.Builder
	sb.Grow(size)
	vals := make([]string, 0, nvals)
	out := make(http.Header, keys)
	for k, vs := range h {
		if isUpgradeMechanics(k) {
			continue
		}
		start := len(vals)
		for _, v := range vs {
			sb.WriteString(v)
			vals = append(vals, v)
		}
		// Full slice expressions: an append by a reader cannot
		// overwrite the next key's values.
		out[k] = vals[start:len(vals):len(vals)]
	}
	// Point every value into the one string; out's slices share vals.
	all := sb.String()
	off := 0
	for i, v := range vals {
		vals[i] = all[off : off+len(v)]
		off += len(v)
	}
	return out
}

func isUpgradeMechanics(k string) bool {
	for _, m := range upgradeMechanics {
		if k == m {
			return true
		}
	}
	return false
}

// keptQuery copies the handshake's query into one map sized to fit, its
// values sharing one backing array and every key and value one string
// (url.ParseQuery allocates a slice per key, sizes the map by guess, and
// its strings point into the request line, which they would keep alive).
func keptQuery(parsed url.Values) url.Values {
	n, size := 0, 0
	for k, vs := range parsed {
		n += len(vs)
		size += len(k)
		for _, v := range vs {
			size += len(v)
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	type span struct{ key, from, to int }
	spans := make([]span, 0, len(parsed))
	vals := make([]string, 0, n)
	for k, vs := range parsed {
		sb.WriteString(k)
		start := len(vals)
		for _, v := range vs {
			sb.WriteString(v)
			vals = append(vals, v)
		}
		spans = append(spans, span{len(k), start, len(vals)})
	}
	// Point every key and value into the one string, in the order written.
	all := sb.String()
	out := make(url.Values, len(parsed))
	off := 0
	for _, sp := range spans {
		key := all[off : off+sp.key]
		off += sp.key
		for i := sp.from; i < sp.to; i++ {
			vals[i] = all[off : off+len(vals[i])]
			off += len(vals[i])
		}
		// Full slice expression: an append by a reader cannot overwrite
		// the next key's values.
		out[key] = vals[sp.from:sp.to:sp.to]
	}
	return out
}
