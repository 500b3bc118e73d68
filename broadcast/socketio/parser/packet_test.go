package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		bins    [][]byte
		want    Packet
		encoded string // re-encoding, when it differs from header
	}{
		{name: "connect main", header: "0", want: Packet{Type: Connect, Namespace: "/", ID: NoID}},
		{name: "connect auth", header: `0{"token":"123"}`, want: Packet{Type: Connect, Namespace: "/", ID: NoID, Data: json.RawMessage(`{"token":"123"}`)}},
		{name: "connect custom no comma", header: "0/custom", want: Packet{Type: Connect, Namespace: "/custom", ID: NoID}, encoded: "0/custom,"},
		{name: "connect custom auth", header: `0/custom,{"a":1}`, want: Packet{Type: Connect, Namespace: "/custom", ID: NoID, Data: json.RawMessage(`{"a":1}`)}},
		{name: "disconnect", header: "1/admin,", want: Packet{Type: Disconnect, Namespace: "/admin", ID: NoID}},
		{name: "event", header: `2["message",1,"2",{"3":[true]}]`, want: Packet{Type: Event, Namespace: "/", ID: NoID, Name: "message",
			Args: []json.RawMessage{json.RawMessage(`"message"`), json.RawMessage(`1`), json.RawMessage(`"2"`), json.RawMessage(`{"3":[true]}`)}}},
		{name: "event ack ns", header: `2/a,12["x"]`, want: Packet{Type: Event, Namespace: "/a", ID: 12, Name: "x", Args: []json.RawMessage{json.RawMessage(`"x"`)}}},
		{name: "ack", header: `3456[1,"2"]`, want: Packet{Type: Ack, Namespace: "/", ID: 456, Args: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"2"`)}}},
		{name: "ack empty", header: `37[]`, want: Packet{Type: Ack, Namespace: "/", ID: 7, Args: []json.RawMessage{}}},
		{name: "connect error", header: `4{"message":"no"}`, want: Packet{Type: ConnectError, Namespace: "/", ID: NoID, Data: json.RawMessage(`{"message":"no"}`)}},
		{name: "binary event", header: `52-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
			bins: [][]byte{{1, 2, 3}, {4}},
			want: Packet{Type: BinaryEvent, Namespace: "/", ID: NoID, Name: "m",
				Args:        []json.RawMessage{json.RawMessage(`"m"`), json.RawMessage(`{"_placeholder":true,"num":0}`), json.RawMessage(`{"_placeholder":true,"num":1}`)},
				Attachments: [][]byte{{1, 2, 3}, {4}}}},
		{name: "binary ack nested", header: `61-/x,9[{"a":[{"_placeholder":true,"num":0}]}]`,
			bins: [][]byte{{9}},
			want: Packet{Type: BinaryAck, Namespace: "/x", ID: 9,
				Args:        []json.RawMessage{json.RawMessage(`{"a":[{"_placeholder":true,"num":0}]}`)},
				Attachments: [][]byte{{9}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Decode([]byte(tt.header), tt.bins, Limits{})
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.header, err)
			}
			assertPacket(t, p, &tt.want)
			want := tt.encoded
			if want == "" {
				want = tt.header
			}
			if got := string(AppendHeader(nil, p)); got != want {
				t.Errorf("AppendHeader = %q, want %q", got, want)
			}
		})
	}
}

func assertPacket(t *testing.T, got, want *Packet) {
	t.Helper()
	if got.Type != want.Type || got.Namespace != want.Namespace || got.ID != want.ID || got.Name != want.Name {
		t.Errorf("got %v %q id=%d name=%q, want %v %q id=%d name=%q", got.Type, got.Namespace, got.ID, got.Name, want.Type, want.Namespace, want.ID, want.Name)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("data %q, want %q", got.Data, want.Data)
	}
	if len(got.Args) != len(want.Args) || (got.Args == nil) != (want.Args == nil) {
		t.Fatalf("args %q, want %q", got.Args, want.Args)
	}
	for i := range got.Args {
		if !bytes.Equal(got.Args[i], want.Args[i]) {
			t.Errorf("arg %d %q, want %q", i, got.Args[i], want.Args[i])
		}
	}
	if len(got.Attachments) != len(want.Attachments) {
		t.Fatalf("attachments %v, want %v", got.Attachments, want.Attachments)
	}
	for i := range got.Attachments {
		if !bytes.Equal(got.Attachments[i], want.Attachments[i]) {
			t.Errorf("attachment %d %v, want %v", i, got.Attachments[i], want.Attachments[i])
		}
	}
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"empty", "", ErrUnknownType},
		{"unknown type", "abc", ErrUnknownType},
		{"type 7", "7", ErrUnknownType},
		{"event object", "2{}", ErrInvalidPayload},
		{"bad ack id", `2abc["message-with-ack",1]`, ErrInvalidPayload},
		{"event no name", "2[]", ErrInvalidPayload},
		{"event numeric name", "2[1]", ErrInvalidPayload},
		{"event reserved name", `2["disconnect"]`, ErrInvalidPayload},
		{"event bad json", `2["a",]`, ErrInvalidPayload},
		{"event missing data", "2", ErrInvalidPayload},
		{"ack without id", `3[1]`, ErrInvalidID},
		{"ack id too big", `39007199254740993[1]`, ErrInvalidID},
		{"ack id too long", `3123456789012345678901[1]`, ErrInvalidID},
		{"connect array", `0[1]`, ErrInvalidPayload},
		{"disconnect payload", `1{}`, ErrInvalidPayload},
		{"connect error number", `41`, ErrInvalidPayload},
		{"binary no dash", `52["a"]`, ErrInvalidAttachments},
		{"binary no count", `5-["a"]`, ErrInvalidAttachments},
		{"too many attachments", `511-["a"]`, ErrTooManyAttachments},
		{"placeholder out of range", `51-["a",{"_placeholder":true,"num":1}]`, ErrInvalidAttachments},
		{"placeholder negative", `51-["a",{"_placeholder":true,"num":-1}]`, ErrInvalidAttachments},
		{"placeholder fraction", `51-["a",{"_placeholder":true,"num":0.5}]`, ErrInvalidAttachments},
		{"attachment unused", `52-["a",{"_placeholder":true,"num":0}]`, ErrInvalidAttachments},
		{"attachments too big", `51-["a",{"_placeholder":true,"num":0}]`, ErrAttachmentsTooBig},
		{"placeholder without attachments", `50-["a",{"_placeholder":true,"num":0}]`, ErrInvalidAttachments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bins [][]byte
			if tt.want == ErrInvalidAttachments {
				bins = [][]byte{{1}, {2}}[:attachmentsOf(tt.header)]
			}
			if tt.want == ErrAttachmentsTooBig {
				bins = [][]byte{make([]byte, 1e6+1)}
			}
			_, err := Decode([]byte(tt.header), bins, Limits{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%q) error = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func attachmentsOf(h string) int {
	if len(h) > 2 && (h[0] == '5' || h[0] == '6') && h[1] >= '0' && h[1] <= '2' {
		return int(h[1] - '0')
	}
	return 0
}

func TestDecoderSequence(t *testing.T) {
	d := NewDecoder(Limits{})
	if _, err := d.Add([]byte{1}, true); !errors.Is(err, ErrUnexpectedBinary) {
		t.Fatalf("binary first: %v", err)
	}
	d = NewDecoder(Limits{})
	p, err := d.Add([]byte(`51-["a",{"_placeholder":true,"num":0}]`), false)
	if p != nil || err != nil {
		t.Fatalf("header: %v %v", p, err)
	}
	if _, err := d.Add([]byte(`2["b"]`), false); !errors.Is(err, ErrUnexpectedText) {
		t.Fatalf("text while reconstructing: %v", err)
	}
	d = NewDecoder(Limits{})
	buf := []byte{7, 8}
	if _, err := d.Add([]byte(`51-["a",{"_placeholder":true,"num":0}]`), false); err != nil {
		t.Fatal(err)
	}
	p, err = d.Add(buf, true)
	if err != nil || p == nil {
		t.Fatalf("attachment: %v %v", p, err)
	}
	buf[0] = 0 // the decoder must have copied
	if p.Attachments[0][0] != 7 {
		t.Fatal("attachment aliases the caller's buffer")
	}
	// the decoder is reusable after a complete packet
	if p, err = d.Add([]byte(`2["c"]`), false); err != nil || p.Name != "c" {
		t.Fatalf("next packet: %v %v", p, err)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "message", `a"b`, "a\\b", "ü", "<x>", "\x00\n", "lock:update:member:1"} {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Errorf("AppendJSONString(%q) = %s (%v)", s, got, err)
		}
	}
}

func TestPlaceholder(t *testing.T) {
	if n, ok := Placeholder(json.RawMessage(`{"_placeholder":true,"num":3}`)); !ok || n != 3 {
		t.Errorf("got %d %v", n, ok)
	}
	for _, raw := range []string{`{"num":3}`, `3`, `{"_placeholder":false,"num":1}`, `{"_placeholder":true}`} {
		if _, ok := Placeholder(json.RawMessage(raw)); ok {
			t.Errorf("Placeholder(%s) = true", raw)
		}
	}
	if got := string(AppendPlaceholder(nil, 12)); got != `{"_placeholder":true,"num":12}` {
		t.Errorf("AppendPlaceholder = %s", got)
	}
}
