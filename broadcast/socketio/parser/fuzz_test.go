package parser

import (
	"bytes"
	"testing"
)

// FuzzDecoder feeds a header and up to two attachments through the
// streaming decoder. It must never panic, and whatever it accepts must
// survive an encode/decode round trip unchanged.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(`2["message",1,"2",{"3":[true]}]`), []byte(nil), []byte(nil))
	f.Add([]byte(`52-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), []byte{1, 2, 3}, []byte{4, 5, 6})
	f.Add([]byte(`0/custom,{"token":"abc"}`), []byte(nil), []byte(nil))
	f.Add([]byte(`61-/x,9[{"a":[{"_placeholder":true,"num":0}]}]`), []byte{9}, []byte(nil))
	f.Add([]byte(`3456[1,"2",{"3":[false]}]`), []byte(nil), []byte(nil))
	f.Add([]byte(`4{"message":"Invalid namespace"}`), []byte(nil), []byte(nil))
	f.Add([]byte("1/admin,"), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, header, bin1, bin2 []byte) {
		d := NewDecoder(Limits{MaxAttachments: 4, MaxAttachmentBytes: 1 << 16})
		p, err := d.Add(header, false)
		for _, b := range [][]byte{bin1, bin2} {
			if err != nil || p != nil || b == nil {
				break
			}
			p, err = d.Add(b, true)
		}
		if err != nil || p == nil {
			return
		}
		enc := AppendHeader(nil, p)
		q, err := Decode(enc, p.Attachments, Limits{MaxAttachments: 4, MaxAttachmentBytes: 1 << 16})
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", enc, header, err)
		}
		if q.Type != p.Type && !(q.Type == p.Type+3 && len(p.Attachments) > 0) {
			t.Fatalf("type %v != %v", q.Type, p.Type)
		}
		if q.Namespace != p.Namespace || q.ID != p.ID || q.Name != p.Name || !bytes.Equal(q.Data, p.Data) || len(q.Args) != len(p.Args) || len(q.Attachments) != len(p.Attachments) {
			t.Fatalf("round trip of %q: got %+v, want %+v", header, q, p)
		}
		for i := range p.Args {
			if !bytes.Equal(p.Args[i], q.Args[i]) {
				t.Fatalf("arg %d: %q != %q", i, q.Args[i], p.Args[i])
			}
		}
	})
}
