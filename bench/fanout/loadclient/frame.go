package loadclient

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxFramePayload caps what a server frame may claim, so a corrupt length
// cannot make the client buffer without bound.
const maxFramePayload = 1 << 20

var errFragmented = errors.New("fragmented websocket message (the benchmark's servers never fragment)")

// nextFrame decodes the server-to-client frame at the start of b. It returns
// consumed == 0 and no error when b holds only part of a frame. Server frames
// must be unmasked, unfragmented and use no extension bits.
func nextFrame(b []byte) (opcode byte, payload []byte, consumed int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return 0, nil, 0, fmt.Errorf("websocket frame with reserved bits %#x (no extension was negotiated)", b0&0x70)
	}
	opcode = b0 & 0x0F
	if b0&0x80 == 0 || opcode == opContinuation {
		return 0, nil, 0, errFragmented
	}
	if b1&0x80 != 0 {
		return 0, nil, 0, errors.New("masked websocket frame from the server")
	}
	n := uint64(b1 & 0x7F)
	hdr := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
		hdr = 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		n = binary.BigEndian.Uint64(b[2:10])
		hdr = 10
	}
	if opcode >= opClose && n > 125 {
		return 0, nil, 0, fmt.Errorf("websocket control frame of %d bytes (max 125)", n)
	}
	if n > maxFramePayload {
		return 0, nil, 0, fmt.Errorf("websocket frame of %d bytes exceeds the client's %d", n, maxFramePayload)
	}
	end := hdr + int(n)
	if len(b) < end {
		return 0, nil, 0, nil
	}
	return opcode, b[hdr:end], end, nil
}

// appendClientFrame appends a masked, final frame (clients must mask,
// RFC 6455 section 5.3). The payloads here are small (pongs, "3", "40" with
// an auth token), so the mask key need not be unpredictable: the benchmark
// runs on loopback only.
func appendClientFrame(dst []byte, opcode byte, payload []byte, key [4]byte) []byte {
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|opcode, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|opcode, 0x80|126, byte(n>>8), byte(n))
	default:
		panic("appendClientFrame: payload over 64 KiB") // never sent by this client
	}
	dst = append(dst, key[:]...)
	for i, c := range payload {
		dst = append(dst, c^key[i&3])
	}
	return dst
}
