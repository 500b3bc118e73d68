package engineio

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ClientHeaders are the request headers that carry the token a client may
// send instead of the auth payload, and what describes the client to
// operators and to the Redis adapters' fetchSockets answers (origin,
// browser, the addresses and scheme a proxy saw): the ones walcast reads,
// and the first kept when every header is.
var ClientHeaders = []string{
	"Authorization",
	"Origin",
	"User-Agent",
	"X-Forwarded-For",
	"X-Forwarded-Proto",
	"X-Real-Ip",
	"Cf-Connecting-Ip",
}

// Budgets of what a session keeps from its handshake request. Sessions
// live long, and a handshake is all a client needs to send to open one, so
// what it sent beyond these is dropped rather than kept: a value that does
// not fit whole is left out (headers in KeepHeaders order, query
// parameters in key order).
const (
	keptHeaderBytes = 4 << 10
	keptQueryBytes  = 1 << 10
)

// upgradeMechanics are request headers that only carry the WebSocket
// handshake itself; nothing reads them after it, so sessions do not keep
// them unless KeepHeaders names them.
var upgradeMechanics = [...]string{
	"Connection",
	"Upgrade",
	"Sec-Websocket-Key",
	"Sec-Websocket-Version",
	"Sec-Websocket-Extensions",
}

// keptHeader copies the request headers a session keeps: those named in
// keep (canonical names; none named: all but the upgrade mechanics,
// ClientHeaders first, the rest in name order), within keptHeaderBytes.
// The copy is packed for a long life: one map sized to fit, one backing
// array for all value slices and one string holding every value, instead
// of a string per value and the parser's map sized for the whole request.
func keptHeader(h http.Header, keep []string) http.Header {
	names := keep
	if len(keep) == 0 {
		names = make([]string, 0, len(h))
		for _, k := range ClientHeaders {
			if _, ok := h[k]; ok {
				names = append(names, k)
			}
		}
		first := len(names)
		for k := range h {
			if !isUpgradeMechanics(k) && !slices.Contains(ClientHeaders, k) {
				names = append(names, k)
			}
		}
		slices.Sort(names[first:])
	}
	// How many of each name's values fit, in order.
	counts := make([]int, len(names))
	keys, nvals, size := 0, 0, 0
	for i, k := range names {
		for _, v := range h[k] {
			if size+len(v) > keptHeaderBytes {
				break
			}
			size += len(v)
			counts[i]++
		}
		if counts[i] > 0 {
			keys++
			nvals += counts[i]
		}
	}
	if keys == 0 {
		return http.Header{}
	}
	vals := make([]string, 0, nvals)
	out := make(http.Header, keys)
	for i, k := range names {
		if counts[i] == 0 {
			continue
		}
		start := len(vals)
		vals = append(vals, h[k][:counts[i]]...)
		// Full slice expressions: an append by a reader cannot overwrite
		// the next key's values.
		out[k] = vals[start:len(vals):len(vals)]
	}
	// out's slices share vals, so they see the values repointed.
	packStrings(vals)
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

// keptQuery copies the handshake's query, the parameters that fit within
// keptQueryBytes, into one map sized to fit, its
// values sharing one backing array and every key and value one string
// (url.ParseQuery allocates a slice per key, sizes the map by guess, and
// its strings point into the request line, which they would keep alive).
func keptQuery(parsed url.Values) url.Values {
	// The parameters that fit within keptQueryBytes, whole, in key order.
	keys := slices.Sorted(maps.Keys(parsed))
	n, size := 0, 0
	kept := keys[:0]
	for _, k := range keys {
		ksize := len(k)
		for _, v := range parsed[k] {
			ksize += len(v)
		}
		if size+ksize > keptQueryBytes {
			continue
		}
		kept = append(kept, k)
		size += ksize
		n += len(parsed[k])
	}
	// Keys and values, in order, packed into one string together.
	texts := make([]string, 0, len(kept)+n)
	for _, k := range kept {
		texts = append(texts, k)
		texts = append(texts, parsed[k]...)
	}
	packStrings(texts)
	vals := make([]string, 0, n)
	out := make(url.Values, len(kept))
	for _, k := range kept {
		key, nv := texts[0], len(parsed[k])
		start := len(vals)
		vals = append(vals, texts[1:1+nv]...)
		texts = texts[1+nv:]
		// Full slice expression: an append by a reader cannot overwrite
		// the next key's values.
		out[key] = vals[start:len(vals):len(vals)]
	}
	return out
}

// packStrings points every string of ss into one new string holding them
// all, so a copy kept for a session's life is one allocation rather than
// one per string, and holds nothing of the request it came from.
func packStrings(ss []string) {
	size := 0
	for _, s := range ss {
		size += len(s)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, s := range ss {
		sb.WriteString(s)
	}
	all := sb.String()
	for i, s := range ss {
		ss[i], all = all[:len(s)], all[len(s):]
	}
}

// canonicalHeaders writes header names as http.Header keys them.
func canonicalHeaders(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(strings.TrimSpace(n))
	}
	return out
}
