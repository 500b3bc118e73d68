package tick

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendIsValidJSONOfRequestedSize(t *testing.T) {
	for _, size := range []int{1, 50, 300, 1000} {
		b := Append(nil, 12, 345, 1732572366123456789, size)
		var v struct {
			Rung int    `json:"rung"`
			Seq  int    `json:"seq"`
			TS   int64  `json:"ts"`
			Pad  string `json:"pad"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("size %d: %v in %s", size, err, b)
		}
		if v.Rung != 12 || v.Seq != 345 || v.TS != 1732572366123456789 {
			t.Errorf("size %d: decoded %+v", size, v)
		}
		fixed := len(`{"rung":12,"seq":345,"ts":1732572366123456789,"pad":""}`)
		want := max(size, fixed)
		if len(b) != want {
			t.Errorf("size %d: got %d bytes, want %d", size, len(b), want)
		}
	}
}

// headerCase is one message for Header or PushHeader.
type headerCase struct {
	name     string
	msg      string
	wantRung int
	wantTS   int64
	wantErr  bool
}

func checkHeaders(t *testing.T, decode func([]byte) (int, int64, error), tests []headerCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rung, ts, err := decode([]byte(tt.msg))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (rung != tt.wantRung || ts != tt.wantTS) {
				t.Errorf("got rung %d ts %d, want %d %d", rung, ts, tt.wantRung, tt.wantTS)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	obj := Append(nil, 7, 1, 1732572366123456789, 300)
	valid := append([]byte(`42["tick",`), obj...)
	valid = append(valid, ']')
	checkHeaders(t, Header, []headerCase{
		{"full event", string(valid), 7, 1732572366123456789, false},
		{"truncated after ts digits", `42["tick",{"rung":0,"seq":0,"ts":5`, 0, 5, false},
		{"other event", `42["tock",{"rung":1,"seq":0,"ts":5}]`, 0, 0, true},
		{"ping", `2`, 0, 0, true},
		{"namespace connect", `40{"sid":"abc"}`, 0, 0, true},
		{"missing seq", `42["tick",{"rung":1,"ts":5}]`, 0, 0, true},
		{"negative rung", `42["tick",{"rung":-1,"seq":0,"ts":5}]`, 0, 0, true},
		{"ts overflow", `42["tick",{"rung":1,"seq":0,"ts":99999999999999999999}]`, 0, 0, true},
		{"empty", ``, 0, 0, true},
	})
}

// FuzzHeader: Header reads bytes off the network, so it must never panic and
// must agree with a real JSON parse whenever it accepts a complete event.
func FuzzHeader(f *testing.F) {
	f.Add([]byte(`42["tick",{"rung":7,"seq":1,"ts":1732572366123456789,"pad":"xx"}]`))
	f.Add([]byte(`42["tick",{"rung":`))
	f.Add([]byte(`2`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rung, ts, err := Header(msg)
		if err != nil {
			return
		}
		if rung < 0 || ts < 0 {
			t.Fatalf("accepted negative rung %d / ts %d", rung, ts)
		}
		var ev []json.RawMessage
		if json.Unmarshal(msg[1:], &ev) != nil || len(ev) != 2 {
			return // a truncated or garbled tail: Header only vouches for the prefix
		}
		if hasDuplicateKeys(ev[1]) {
			return // JSON keeps the last duplicate, Header the first: both fine
		}
		var v struct {
			Rung int   `json:"rung"`
			TS   int64 `json:"ts"`
		}
		if json.Unmarshal(ev[1], &v) == nil && (v.Rung != rung || v.TS != ts) {
			t.Fatalf("Header says rung %d ts %d, JSON says %d %d", rung, ts, v.Rung, v.TS)
		}
	})
}

// hasDuplicateKeys reports whether the top-level JSON object repeats a key.
func hasDuplicateKeys(obj []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := tok.(string)
		if seen[key] {
			return true
		}
		seen[key] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

func TestPushHeader(t *testing.T) {
	obj := Append(nil, 3, 9, 1732572366123456789, 300)
	valid := append([]byte(PushPrefix), obj...)
	valid = append(valid, "}}}"...)
	checkHeaders(t, PushHeader, []headerCase{
		{"full push", string(valid), 3, 1732572366123456789, false},
		{"other channel", `{"push":{"channel":"other","pub":{"data":{"rung":1,"seq":0,"ts":5}}}}`, 0, 0, true},
		{"ping", `{}`, 0, 0, true},
		{"connect reply", `{"id":1,"connect":{"client":"x"}}`, 0, 0, true},
		{"data not a tick", PushPrefix + `"text"}}}`, 0, 0, true},
		{"socket.io event", `42["tick",{"rung":1,"seq":0,"ts":5}]`, 0, 0, true},
	})
}

// FuzzPushHeader: pushes come off the network too; whatever PushHeader
// accepts in a complete push must match a JSON parse of it.
func FuzzPushHeader(f *testing.F) {
	f.Add([]byte(PushPrefix + `{"rung":7,"seq":1,"ts":1732572366123456789,"pad":"xx"}}}}`))
	f.Add([]byte(PushPrefix))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rung, ts, err := PushHeader(msg)
		if err != nil {
			return
		}
		if rung < 0 || ts < 0 {
			t.Fatalf("accepted negative rung %d / ts %d", rung, ts)
		}
		var push struct {
			Push struct {
				Pub struct {
					Data json.RawMessage `json:"data"`
				} `json:"pub"`
			} `json:"push"`
		}
		if json.Unmarshal(msg, &push) != nil || hasDuplicateKeys(push.Push.Pub.Data) {
			return
		}
		var v struct {
			Rung int   `json:"rung"`
			TS   int64 `json:"ts"`
		}
		if json.Unmarshal(push.Push.Pub.Data, &v) == nil && (v.Rung != rung || v.TS != ts) {
			t.Fatalf("PushHeader says rung %d ts %d, JSON says %d %d", rung, ts, v.Rung, v.TS)
		}
	})
}
