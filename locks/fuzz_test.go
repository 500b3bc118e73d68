package locks

import (
	"encoding/json"
	"testing"
)

// FuzzParseResource: lock payloads come straight off the network. Whatever
// they hold, parsing must not panic, and anything accepted must be a key
// that parses back to itself and passes the same checks.
func FuzzParseResource(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"member","resourceId":"3f2a-uuid"}`,
		`{"resourceType":"donation","resourceId":42}`,
		`{"resourceType":"member","resourceId":"a:b"}`,
		`{"resourceType":"member"}`,
		`{}`, `null`, `[]`, ``,
		`{"resourceType":"member","resourceId":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	types := map[string]bool{"member": true, "donation": true, "user": true, "settings": true}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResource(json.RawMessage(b), types)
		if err != nil {
			return
		}
		if !types[r.Type] || !validID(r.ID) {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		back, err := ParseKey(r.Key())
		if err != nil || back != r {
			t.Fatalf("key %q of %+v parses back as %+v, %v", r.Key(), r, back, err)
		}
	})
}

// FuzzDecodeHolder: lock values are read from Redis, which other programs
// can write. Decoding must not panic, and what decodes must survive our own
// encoding unchanged (so the owner prefix the scripts compare is stable).
func FuzzDecodeHolder(f *testing.F) {
	for _, s := range []string{
		`{"userId":1,"username":"admin","acquiredAt":1704067200000}`,
		`{"userId":"u-7","username":"a\"b","acquiredAt":1704067200000}`,
		`{"userId":1.5,"username":"x","acquiredAt":1}`,
		`{"userId":null,"username":"x","acquiredAt":1}`,
		`{"userId":1,"username":"x","acquiredAt":1e300}`,
		`not json`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHolder(b)
		if err != nil {
			return
		}
		enc := encodeHolder(h)
		h2, err := decodeHolder([]byte(enc))
		if err != nil || h2 != h {
			t.Fatalf("%q decoded to %+v, re-encoded %s, decoded again %+v, %v", b, h, enc, h2, err)
		}
	})
}
