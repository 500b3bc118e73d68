package engineio

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestPacketWSFrame(t *testing.T) {
	tests := []struct {
		name    string
		pkt     *Packet
		op      byte
		payload []byte
	}{
		{"text", NewMessage([]byte("hello")), opText, []byte("4hello")},
		{"empty text", NewMessage(nil), opText, []byte("4")},
		{"binary", NewBinaryMessage([]byte{1, 2, 3}), opBinary, []byte{1, 2, 3}},
		{"ping", newControl(typePing, ""), opText, []byte("2")},
		{"probe pong", newControl(typePong, "probe"), opText, []byte("3probe")},
		{"len 125", NewMessage(bytes.Repeat([]byte("a"), 124)), opText, append([]byte("4"), bytes.Repeat([]byte("a"), 124)...)},
		{"len 126", NewMessage(bytes.Repeat([]byte("a"), 125)), opText, append([]byte("4"), bytes.Repeat([]byte("a"), 125)...)},
		{"len 65535", NewBinaryMessage(bytes.Repeat([]byte{7}, 65535)), opBinary, bytes.Repeat([]byte{7}, 65535)},
		{"len 65536", NewBinaryMessage(bytes.Repeat([]byte{7}, 65536)), opBinary, bytes.Repeat([]byte{7}, 65536)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.pkt.wsBytes()
			if f[0] != 0x80|tt.op {
				t.Fatalf("first byte %#x, want FIN|%#x", f[0], tt.op)
			}
			if f[1]&0x80 != 0 {
				t.Fatal("server frame must not be masked")
			}
			var n, hl int
			switch l := f[1] & 0x7f; l {
			case 126:
				n, hl = int(binary.BigEndian.Uint16(f[2:])), 4
			case 127:
				n, hl = int(binary.BigEndian.Uint64(f[2:])), 10
			default:
				n, hl = int(l), 2
			}
			if n != len(tt.payload) || !bytes.Equal(f[hl:], tt.payload) {
				t.Fatalf("payload length %d (frame %d bytes), want %d", n, len(f), len(tt.payload))
			}
			if &tt.pkt.wsBytes()[0] != &f[0] {
				t.Fatal("frame re-encoded on second use")
			}
		})
	}
}

func TestPacketPollEncoding(t *testing.T) {
	tests := []struct {
		name string
		pkts []*Packet
		want string
	}{
		{"one text", []*Packet{NewMessage([]byte("hello"))}, "4hello"},
		{"several", []*Packet{NewMessage([]byte("a")), newControl(typePing, ""), NewMessage([]byte("b"))}, "4a\x1e2\x1e4b"},
		{"binary base64", []*Packet{NewMessage([]byte("hello")), NewBinaryMessage([]byte{1, 2, 3, 4})}, "4hello\x1ebAQIDBA=="},
		{"empty binary", []*Packet{NewBinaryMessage(nil)}, "b"},
		{"noop", []*Packet{newControl(typeNoop, "")}, "6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendPayload(nil, tt.pkts)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		in      string
		typ     byte
		data    string
		wantErr bool
	}{
		{"4hello", typeMessage, "hello", false},
		{"4", typeMessage, "", false},
		{"2probe", typePing, "probe", false},
		{"3", typePong, "", false},
		{"1", typeClose, "", false},
		{"5", typeUpgrade, "", false},
		{"6", typeNoop, "", false},
		{"", 0, "", true},
		{"abc", 0, "", true},
		{"7", 0, "", true},
		{"/", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := decodePacket([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (p.typ != tt.typ || string(p.data) != tt.data || p.binary) {
				t.Fatalf("got %q %q, want %q %q", p.typ, p.data, tt.typ, tt.data)
			}
		})
	}
}

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []inPacket
		wantErr string
	}{
		{"one", "4hello", []inPacket{{typ: '4', data: []byte("hello")}}, ""},
		{"three", "4test1\x1e4test2\x1e4test3", []inPacket{{typ: '4', data: []byte("test1")}, {typ: '4', data: []byte("test2")}, {typ: '4', data: []byte("test3")}}, ""},
		{"binary", "4hello\x1ebAQIDBA==", []inPacket{{typ: '4', data: []byte("hello")}, {typ: '4', data: []byte{1, 2, 3, 4}, binary: true}}, ""},
		{"pong", "3", []inPacket{{typ: '3', data: []byte{}}}, ""},
		{"empty", "", nil, "empty packet"},
		{"bad type", "abc", nil, "unknown packet type"},
		{"bad later record", "4ok\x1ez", nil, "record 1"},
		{"trailing separator", "4ok\x1e", nil, "record 1"},
		{"empty record", "4ok\x1e\x1e4x", nil, "record 1"},
		{"bad base64", "b!!!", nil, "bad base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayload([]byte(tt.in), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d packets, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].typ != tt.want[i].typ || !bytes.Equal(got[i].data, tt.want[i].data) || got[i].binary != tt.want[i].binary {
					t.Fatalf("packet %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestPayloadRoundTrip checks that what the server encodes for polling is
// what its decoder reads back.
func TestPayloadRoundTrip(t *testing.T) {
	pkts := []*Packet{
		NewMessage([]byte(`["event",{"a":1}]`)),
		NewBinaryMessage([]byte{0, 0x1e, 0xff}),
		NewMessage([]byte("ünïcode")),
		newControl(typePing, ""),
	}
	got, err := decodePayload(appendPayload(nil, pkts), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if got[i].typ != p.typ || !bytes.Equal(got[i].data, p.data) || got[i].binary != p.binary {
			t.Fatalf("packet %d: got %+v, want type %q data %q", i, got[i], p.typ, p.data)
		}
	}
}
