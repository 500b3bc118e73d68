package loadclient

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func serverFrame(b0 byte, payload []byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = append(f, 126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return append(f, payload...)
}

func TestNextFrame(t *testing.T) {
	small := []byte(`42["tick",{}]`)
	medium := bytes.Repeat([]byte("m"), 300)
	large := bytes.Repeat([]byte("L"), 70000)
	tests := []struct {
		name     string
		in       []byte
		wantOp   byte
		wantPay  []byte
		wantUsed int
		wantErr  bool
	}{
		{"small text", serverFrame(0x81, small), opText, small, 2 + len(small), false},
		{"16-bit length", serverFrame(0x81, medium), opText, medium, 4 + len(medium), false},
		{"64-bit length", serverFrame(0x82, large), opBinary, large, 10 + len(large), false},
		{"two frames: first only", append(serverFrame(0x81, small), serverFrame(0x81, small)...), opText, small, 2 + len(small), false},
		{"empty input", nil, 0, nil, 0, false},
		{"one byte", []byte{0x81}, 0, nil, 0, false},
		{"partial 16-bit length", []byte{0x81, 126, 1}, 0, nil, 0, false},
		{"partial payload", serverFrame(0x81, medium)[:100], 0, nil, 0, false},
		{"ping", serverFrame(0x89, []byte("hi")), opPing, []byte("hi"), 4, false},
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, 0, nil, 0, true},
		{"not final", []byte{0x01, 1, 'x'}, 0, nil, 0, true},
		{"continuation", []byte{0x80, 1, 'x'}, 0, nil, 0, true},
		{"reserved bit", []byte{0xC1, 1, 'x'}, 0, nil, 0, true},
		{"long control frame", serverFrame(0x89, medium), 0, nil, 0, true},
		{"over the cap", append([]byte{0x81, 127}, binary.BigEndian.AppendUint64(nil, 1<<40)...), 0, nil, 0, true},
		{"length with top bit", append([]byte{0x81, 127}, binary.BigEndian.AppendUint64(nil, 1<<63)...), 0, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, pay, used, err := nextFrame(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if op != tt.wantOp || used != tt.wantUsed || !bytes.Equal(pay, tt.wantPay) {
				t.Errorf("got op %d used %d payload %d bytes, want op %d used %d payload %d bytes",
					op, used, len(pay), tt.wantOp, tt.wantUsed, len(tt.wantPay))
			}
		})
	}
}

func TestAppendClientFrameRoundTrip(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	f := appendClientFrame(nil, opText, []byte("40"), key)
	want := []byte{0x81, 0x80 | 2, 0xA1, 0xB2, 0xC3, 0xD4, '4' ^ 0xA1, '0' ^ 0xB2}
	if !bytes.Equal(f, want) {
		t.Fatalf("frame %x, want %x", f, want)
	}
}

// TestAppendClientFrameLong: a CONNECT carrying a JWT is over 125 bytes and
// needs the 16-bit length form.
func TestAppendClientFrameLong(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	payload := append([]byte(`40{"token":"`), bytes.Repeat([]byte("x"), 300)...)
	f := appendClientFrame(nil, opText, payload, key)
	if f[0] != 0x81 || f[1] != 0x80|126 || int(f[2])<<8|int(f[3]) != len(payload) {
		t.Fatalf("header %x", f[:4])
	}
	if !bytes.Equal(f[4:8], key[:]) {
		t.Fatalf("mask key %x", f[4:8])
	}
	got := f[8:]
	for i := range got {
		got[i] ^= key[i&3]
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("unmasked payload differs")
	}
}

// FuzzNextFrame: frames come off the network; the decoder must never panic,
// never claim more than it was given, and its payload must lie inside it.
func FuzzNextFrame(f *testing.F) {
	f.Add(serverFrame(0x81, []byte(`42["tick",{"rung":1,"seq":0,"ts":5}]`)))
	f.Add(serverFrame(0x81, bytes.Repeat([]byte("m"), 300)))
	f.Add([]byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x89, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, pay, used, err := nextFrame(b)
		if err != nil {
			if used != 0 || pay != nil {
				t.Fatalf("error %v with used %d payload %d", err, used, len(pay))
			}
			return
		}
		if used > len(b) || used < 0 {
			t.Fatalf("used %d of %d bytes", used, len(b))
		}
		if used == 0 {
			return
		}
		if used < len(pay)+2 || !bytes.Equal(b[used-len(pay):used], pay) {
			t.Fatalf("payload is not the frame's tail")
		}
		if op >= opClose && len(pay) > 125 {
			t.Fatalf("control frame of %d bytes accepted", len(pay))
		}
	})
}
