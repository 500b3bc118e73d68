package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"member:update", `"member:update"`},
		{`quote"back\`, `"quote\"back\\"`},
		{"\n\r\t\x00\x1f\x7f", `"\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{"<html>&amp;", `"<html>&amp;"`}, // as JSON.stringify: no HTML escaping
		{"é😀", `"é😀"`},
		{"\xc3\x28 bad", `"\ufffd( bad"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a surrogate is not UTF-8
		{"cut \xe2\x82", `"cut \ufffd\ufffd"`},
	}
	for _, tc := range cases {
		if got := string(Append([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("Append(%q) = %s, want x%s", tc.in, got, tc.want)
		}
		if got := string(AppendBytes(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("AppendBytes(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// The escaper must agree with encoding/json on what the string is (not
// byte for byte: encoding/json also escapes <, >, & and U+2028/U+2029).
func TestAppendRoundTrip(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""}, {"plain", "plain"}, {"\x00\x7f\u00e9\U0001F600", "\x00\x7f\u00e9\U0001F600"},
		{"quote\"back\\", "quote\"back\\"}, {"<html>&amp;", "<html>&amp;"}, {"\u2028\u2029", "\u2028\u2029"},
		{"\xc3\x28 bad", "\ufffd( bad"},
	}
	for _, tc := range cases {
		var got string
		if err := json.Unmarshal(AppendBytes(nil, []byte(tc.in)), &got); err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("round trip of %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\n", "\xff", "é", "\xed\xa0\x80", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Append(nil, s)
		if !json.Valid(out) {
			t.Fatalf("Append(%q) = %s: not valid JSON", s, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("Append(%q) decodes to %q", s, back)
		}
		// encoding/json repairs invalid UTF-8 the same way: byte by byte.
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("Append(%q) decodes to %q, encoding/json's to %q", s, back, wantBack)
		}
		if string(AppendBytes(nil, []byte(s))) != string(out) {
			t.Fatalf("AppendBytes and Append differ on %q", s)
		}
	})
}

var benchStrings = []struct{ name, s string }{
	{"event name", "donation:update"},
	{"column value", "Sunday tithe for the building fund, second service"},
	{"escapes", "line one\nline \"two\"\tand a tab"},
	{"non-ASCII", "Gemeindefest in Köln, Überweisung erhalten ✓"},
}

// BenchmarkAppend against encoding/json writing the same strings (the
// reference): the hand-written encoder is on the row-encoding and packet
// hot paths.
func BenchmarkAppend(b *testing.B) {
	for _, bs := range benchStrings {
		b.Run(bs.name+"/jsonstr", func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(bs.s)))
			for b.Loop() {
				buf = Append(buf[:0], bs.s)
			}
		})
		b.Run(bs.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(bs.s)))
			for b.Loop() {
				if _, err := json.Marshal(bs.s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAppendDoesNotAllocate: with room in dst, encoding allocates nothing,
// non-ASCII and invalid bytes included (the row encoder's hot path).
func TestAppendDoesNotAllocate(t *testing.T) {
	in := []byte("Köln ✓ \xff \"quoted\"\n")
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendBytes(buf[:0], in) }); n != 0 {
		t.Errorf("AppendBytes allocated %.0f times", n)
	}
	s := string(in)
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], s) }); n != 0 {
		t.Errorf("Append allocated %.0f times", n)
	}
}
