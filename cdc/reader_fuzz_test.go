package cdc

import (
	"encoding/binary"
	"errors"
	"testing"
)

func xlogFrame(start uint64, walData []byte) []byte {
	b := []byte{'w'}
	b = binary.BigEndian.AppendUint64(b, start)
	b = binary.BigEndian.AppendUint64(b, start+100)
	b = binary.BigEndian.AppendUint64(b, 0)
	return append(b, walData...)
}

func keepaliveFrame(walEnd uint64, reply bool) []byte {
	b := []byte{'k'}
	b = binary.BigEndian.AppendUint64(b, walEnd)
	b = binary.BigEndian.AppendUint64(b, 0)
	if reply {
		return append(b, 1)
	}
	return append(b, 0)
}

func TestParseFrame(t *testing.T) {
	cases := []struct {
		name    string
		data    []byte
		want    frame
		wantErr bool
	}{
		{"keepalive", keepaliveFrame(0x1234, true), frame{keepalive: true, walEnd: 0x1234, replyRequested: true}, false},
		{"xlogdata", xlogFrame(77, []byte("B...")), frame{walStart: 77, walData: []byte("B...")}, false},
		{"unknown type ignored", []byte{'z', 1, 2}, frame{}, false},
		{"empty", nil, frame{}, true},
		{"short keepalive", []byte{'k', 1, 2, 3}, frame{}, true},
		{"short xlogdata", []byte{'w', 1, 2}, frame{}, true},
		{"xlogdata without payload", xlogFrame(5, nil), frame{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFrame(tc.data)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.keepalive != tc.want.keepalive || got.walEnd != tc.want.walEnd || got.replyRequested != tc.want.replyRequested ||
				got.walStart != tc.want.walStart || string(got.walData) != string(tc.want.walData) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzReplicationFrame feeds arbitrary CopyData payloads through the
// reader's frame parsing and the decoder, as the receive loop does: any
// input must give a value or an error, never a panic.
func FuzzReplicationFrame(f *testing.F) {
	f.Add(keepaliveFrame(0x1000, false))
	f.Add(xlogFrame(0x2000, []byte{'B', 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}))
	f.Add(xlogFrame(0x2000, []byte{'C', 0}))
	f.Add([]byte{'w'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseFrame(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if fr.walData != nil {
			_, _ = NewDecoder().Decode(fr.walData)
		}
	})
}
