package sioclient

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestBinaryJSON(t *testing.T) {
	for _, b := range []Binary{{}, {0}, {1, 2, 3, 255}} {
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var back Binary
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		if !slices.Equal(back, b) {
			t.Errorf("%v -> %s -> %v", b, raw, back)
		}
	}
	var b Binary
	for _, bad := range []string{`"AQI="`, `{"x":"AQI="}`, `{"$binary":3}`} {
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("%s decoded as binary", bad)
		}
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		in      string
		kind    string
		args    int
		wantErr bool
	}{
		{`{"kind":"event","client":2,"event":"member:update","args":[{"type":"CREATE"},1]}`, "event", 2, false},
		{`{"kind":"result","ok":true,"extra":{"n":1}}`, "result", 0, false},
		{`not json`, "", 0, true},
	}
	for _, tt := range tests {
		l, err := parseLine([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Fatalf("parseLine(%s) error %v", tt.in, err)
		}
		if err != nil {
			continue
		}
		if l.Kind != tt.kind || len(l.Args) != tt.args || string(l.Raw) != tt.in {
			t.Errorf("parseLine(%s) = %+v", tt.in, l)
		}
	}
	l, _ := parseLine([]byte(`{"kind":"event","client":2,"args":[{"type":"CREATE"}]}`))
	var v struct{ Type string }
	if err := l.Arg(0, &v); err != nil || v.Type != "CREATE" || l.Client != 2 {
		t.Errorf("Arg(0) = %+v, %v", v, err)
	}
	if err := l.Arg(1, &v); err == nil {
		t.Error("Arg(1) of a one-argument line succeeded")
	}
	var extra struct{ Extra struct{ N int } }
	l, _ = parseLine([]byte(`{"kind":"result","extra":{"n":5}}`))
	if err := l.Decode(&extra); err != nil || extra.Extra.N != 5 {
		t.Errorf("Decode = %+v, %v", extra, err)
	}
}
