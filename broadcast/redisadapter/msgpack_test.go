package redisadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestMsgpackToJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		atts []string
	}{
		{"positive fixint", "\x05", "5", nil},
		{"negative fixint", "\xff", "-1", nil},
		{"uint8", "\xcc\xff", "255", nil},
		{"int16", "\xd1\xff\x00", "-256", nil},
		{"uint64 max", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "18446744073709551615", nil},
		{"int64 min", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "-9223372036854775808", nil},
		{"float64", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", "1.5", nil},
		{"float32", "\xca\x3f\xc0\x00\x00", "1.5", nil},
		{"NaN is null like JSON.stringify", "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", "null", nil},
		{"large float", "\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c", "1e+300", nil},
		{"nil true false", "\x93\xc0\xc3\xc2", "[null,true,false]", nil},
		{"string escaping, invalid UTF-8 replaced", "\xa4a\"\n\xc3", `"a\"\n\ufffd"`, nil},
		{"utf-8", "\xa2\xc3\xa9", `"é"`, nil},
		{"map with int key", "\x82\x01\xa1x\xa1k\x90", `{"1":"x","k":[]}`, nil},
		{"bin becomes placeholder", "\x92\xc4\x02ab\x81\xa1f\xc4\x00", `[{"_placeholder":true,"num":0},{"f":{"_placeholder":true,"num":1}}]`, []string{"ab", ""}},
		{"notepack undefined", "\xd4\x00\x00", "null", nil},
		{"timestamp32", "\xd6\xff\x00\x00\x00\x00", `"1970-01-01T00:00:00.000Z"`, nil},
		{"timestamp64", "\xd7\xff\x1d\x53\x53\x00\x65\x53\xf1\x00", `"2023-11-14T22:13:20.123Z"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &mpReader{b: []byte(tt.in)}
			var atts [][]byte
			got, err := r.toJSON(nil, &atts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want || r.off != len(tt.in) {
				t.Errorf("got %s (consumed %d of %d), want %s", got, r.off, len(tt.in), tt.want)
			}
			if len(atts) != len(tt.atts) {
				t.Fatalf("attachments %q, want %q", atts, tt.atts)
			}
			for i := range atts {
				if string(atts[i]) != tt.atts[i] {
					t.Errorf("attachment %d = %q, want %q", i, atts[i], tt.atts[i])
				}
			}
		})
	}
}

func TestMsgpackToJSONRejects(t *testing.T) {
	tests := []struct {
		name, in, why string
	}{
		{"empty", "", "truncated"},
		{"truncated string", "\xa5ab", "truncated"},
		{"array32 claiming 4G elements", "\xdd\xff\xff\xff\xff", "exceeds input"},
		{"map16 claiming more than left", "\xde\x00\x10\x01", "exceeds input"},
		{"bin32 claiming 4 GB", "\xc6\xff\xff\xff\xff", "exceeds input"},
		{"reserved 0xc1", "\xc1", "unsupported type"},
		{"unknown extension", "\xd4\x05\x00", "extension"},
		{"forged placeholder", "\x82\xac_placeholder\xc3\xa3num\x00", "reserved"},
		{"map key of bad type", "\x81\x90\x00", "want string"},
		{"too deep", strings.Repeat("\x91", maxDepth+2) + "\x00", "nesting"},
		{"timestamp with bad nanoseconds", "\xc7\x0c\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00", "nanoseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &mpReader{b: []byte(tt.in)}
			var atts [][]byte
			_, err := r.toJSON(nil, &atts, 0)
			if !errors.Is(err, errMsgpack) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("got %v, want an invalid msgpack error about %q", err, tt.why)
			}
		})
	}
}

// JSON arguments with placeholders go out as msgpack with bin values and come
// back as the same JSON and attachments.
func TestMsgpackRoundTrip(t *testing.T) {
	args := []string{
		`"event"`, `1`, `-7`, `1.25`, `1e300`, `"ü"`, `null`, `true`,
		`{"b":[1,{"_placeholder":true,"num":1}],"a":{"_placeholder":true,"num":0}}`,
		`[]`, `{}`, `9007199254740993`, `"` + strings.Repeat("x", 70000) + `"`,
	}
	atts := [][]byte{[]byte("zero"), bytes.Repeat([]byte{7}, 300)}
	for _, a := range args {
		b, err := mpAppendJSON(nil, json.RawMessage(a), atts)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		r := &mpReader{b: b}
		var got [][]byte
		out, err := r.toJSON(nil, &got, 0)
		if err != nil {
			t.Fatalf("%.40s: decode: %v", a, err)
		}
		// Keys go out sorted, so the placeholders keep their numbers here.
		if !sameArgs([][]byte{out}, [][]byte{[]byte(a)}) {
			t.Errorf("%.40s came back as %.40s", a, out)
		}
		if strings.Contains(a, "_placeholder") && (len(got) != 2 || !bytes.Equal(got[0], atts[0]) || !bytes.Equal(got[1], atts[1])) {
			t.Errorf("attachments after round trip: %q", got)
		}
	}
	if _, err := mpAppendJSON(nil, json.RawMessage(`{"_placeholder":true,"num":5}`), atts); err == nil {
		t.Error("placeholder without attachment accepted")
	}
}
