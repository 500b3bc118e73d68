package redisadapter

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// checkPacket holds for every packet a decoder accepts: valid JSON arguments,
// an event name, and exactly one placeholder per attachment.
func checkPacket(t *testing.T, p *parser.Packet) {
	t.Helper()
	if p.Type != parser.Event || len(p.Args) == 0 {
		t.Fatalf("accepted %+v", p)
	}
	seen := make([]bool, len(p.Attachments))
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if raw, err := json.Marshal(v); err == nil {
				if n, ok := parser.Placeholder(raw); ok {
					if n < 0 || n >= len(seen) || seen[n] {
						t.Fatalf("placeholder %d of %d attachments", n, len(seen))
					}
					seen[n] = true
					return
				}
			}
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, a := range p.Args {
		if !json.Valid(a) {
			t.Fatalf("invalid JSON argument %q", a)
		}
		var v any
		_ = json.Unmarshal(a, &v)
		walk(v)
	}
	if slices.Contains(seen, false) {
		t.Fatalf("attachment without placeholder")
	}
}

// sameArgs compares arguments as values: a msgpack round trip may reorder
// object keys or respell numbers.
func sameArgs(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool {
		var vx, vy any
		return json.Unmarshal(x, &vx) == nil && json.Unmarshal(y, &vy) == nil && reflect.DeepEqual(vx, vy)
	})
}

func rawArgs(p *parser.Packet) [][]byte {
	out := make([][]byte, len(p.Args))
	for i, a := range p.Args {
		out[i] = a
	}
	return out
}

// Entries of the stream come from any Redis client: decoding never panics,
// and what is accepted re-encodes to an entry that decodes the same.
func FuzzDecodeStreamEntry(f *testing.F) {
	f.Add("3", `{"packet":{"type":2,"data":["ev",1,{"a":"b"}],"nsp":"/"},"opts":{"rooms":["r"],"except":[],"flags":{}}}`)
	f.Add("4", `{"opts":{"rooms":[],"except":[]},"rooms":["r"]}`)
	f.Add("3", "gqZwYWNrZXQ=")
	f.Fuzz(func(t *testing.T, typ, data string) {
		a, err := decodeStreamEntry("uid", "/", typ, data)
		if err != nil || a == nil || a.kind != typeBroadcast {
			return
		}
		checkPacket(t, a.packet)
		again, err := encodeClusterData(a.packet, a.opts)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b, err := decodeStreamEntry("uid", "/", "3", again)
		if err != nil {
			t.Fatalf("decode re-encoded %q: %v", again, err)
		}
		if !sameArgs(rawArgs(a.packet), rawArgs(b.packet)) || !slices.EqualFunc(a.packet.Attachments, b.packet.Attachments, bytes.Equal) ||
			!slices.Equal(a.opts.Rooms, b.opts.Rooms) || !slices.Equal(a.opts.Except, b.opts.Except) {
			t.Fatalf("round trip changed the broadcast:\n%+v\n%+v", a, b)
		}
	})
}

// Messages on the classic adapter's channels come from any Redis client.
func FuzzDecodePubSubBroadcast(f *testing.F) {
	f.Add([]byte("\x93\xa7emitter\x83\xa4type\x02\xa4data\x91\xa2ev\xa3nsp\xa1/\x83\xa5rooms\x90\xa6except\x90\xa5flags\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodePubSubBroadcast(b)
		if err != nil {
			return
		}
		checkPacket(t, a.packet)
		again, err := encodePubSubBroadcast(a.uid, a.packet, a.opts)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c, err := decodePubSubBroadcast(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if c.uid != a.uid || c.nsp != a.nsp || !sameArgs(rawArgs(a.packet), rawArgs(c.packet)) ||
			!slices.EqualFunc(a.packet.Attachments, c.packet.Attachments, bytes.Equal) {
			t.Fatalf("round trip changed the broadcast:\n%+v\n%+v", a, c)
		}
	})
}

func FuzzDecodePubSubRequest(f *testing.F) {
	f.Add([]byte(`{"type":2,"opts":{"rooms":["a"],"except":[]},"rooms":["b"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodePubSubRequest(b)
		if err != nil || a == nil {
			return
		}
		if a.kind != typeDisconnect && len(a.rooms) == 0 {
			t.Fatalf("join/leave without rooms accepted: %+v", a)
		}
	})
}

// Requests on the streams adapter's pub/sub channels come from any Redis client.
func FuzzDecodeClusterRequest(f *testing.F) {
	f.Add([]byte("\x84\xa3uid\xa1u\xa3nsp\xa1/\xa4type\x07\xa4data\x81\xa9requestId\xa1r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeClusterRequest(b)
		if err != nil || req == nil {
			return
		}
		if req.requestID == "" || req.uid == "" {
			t.Fatalf("accepted %+v", req)
		}
		if req.typ == typeBroadcast {
			checkPacket(t, req.packet)
		}
	})
}

func FuzzDecodePubSubQuery(f *testing.F) {
	f.Add([]byte(`{"uid":"u","requestId":"r","type":5,"opts":{"rooms":[],"except":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodePubSubQuery(b)
		if err != nil || req == nil {
			return
		}
		if req.RequestID == "" {
			t.Fatalf("accepted %+v", req)
		}
		if req.Opts != nil {
			_, _ = req.Opts.options()
		}
	})
}

// FuzzDecodeTakeoverNotice: notices come from Redis; anything that is not a
// well-formed notice is refused, never half-applied.
func FuzzDecodeTakeoverNotice(f *testing.F) {
	f.Add([]byte(`{"uid":"abc","sid":"s1","gen":3}`))
	f.Add([]byte(`{"uid":"","sid":"s1","gen":3}`))
	f.Add([]byte(`{"uid":"abc","sid":"s1","gen":-1}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeTakeoverNotice(b)
		if err != nil {
			if n != (takeoverNotice{}) {
				t.Fatalf("refused notice came back filled: %+v", n)
			}
			return
		}
		if n.UID == "" || n.SID == "" || len(n.SID) > 64 || len(n.UID) > 64 {
			t.Fatalf("accepted %+v from %q", n, b)
		}
	})
}
