package engineio

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Packet is one Engine.IO packet ready to be sent to any number of sessions.
// Its two wire forms are computed lazily, once, because a broadcast hands the
// same *Packet to thousands of sessions and only the first may pay.
type Packet struct {
	typ    byte // packet type digit, '0'..'6'
	data   []byte
	binary bool

	wsOnce   sync.Once
	wsFrame  []byte
	pollOnce sync.Once
	poll     []byte
}

// NewMessage returns a "message" packet carrying text. The payload is kept,
// not copied: the caller must not modify it afterwards.
func NewMessage(payload []byte) *Packet {
	return &Packet{typ: typeMessage, data: payload}
}

// NewBinaryMessage returns a "message" packet carrying binary data. The
// payload is kept, not copied: the caller must not modify it afterwards.
func NewBinaryMessage(payload []byte) *Packet {
	return &Packet{typ: typeMessage, data: payload, binary: true}
}

func newControl(typ byte, data string) *Packet {
	return &Packet{typ: typ, data: []byte(data)}
}

// Engine.IO v4 packet types, as their ASCII digit on the wire.
const (
	typeOpen    byte = '0'
	typeClose   byte = '1'
	typePing    byte = '2'
	typePong    byte = '3'
	typeMessage byte = '4'
	typeUpgrade byte = '5'
	typeNoop    byte = '6'
)

// recordSeparator joins packets in a long-polling payload.
const recordSeparator = 0x1e

// WebSocket opcodes used by the server.
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xA
)

// wsBytes returns the complete, unmasked WebSocket frame for the packet.
// Server frames carry no mask, so the same bytes are valid on every
// connection. Binary messages go as binary frames without a type prefix, as
// Engine.IO v4 specifies.
func (p *Packet) wsBytes() []byte {
	p.wsOnce.Do(func() {
		if p.binary {
			p.wsFrame = appendFrame(nil, opBinary, 0, p.data)
			return
		}
		p.wsFrame = appendFrame(nil, opText, p.typ, p.data)
	})
	return p.wsFrame
}

// pollBytes returns the packet as it appears inside a long-polling payload:
// the type digit and text, or "b" and base64 for binary.
func (p *Packet) pollBytes() []byte {
	p.pollOnce.Do(func() {
		if p.binary {
			b := make([]byte, 1+base64.StdEncoding.EncodedLen(len(p.data)))
			b[0] = 'b'
			base64.StdEncoding.Encode(b[1:], p.data)
			p.poll = b
			return
		}
		b := make([]byte, 1+len(p.data))
		b[0] = p.typ
		copy(b[1:], p.data)
		p.poll = b
	})
	return p.poll
}

// appendFrame appends a final, unmasked frame. A non-zero prefix byte is
// written before payload and counted in the length, so text packets need no
// intermediate copy.
func appendFrame(dst []byte, op byte, prefix byte, payload []byte) []byte {
	n := len(payload)
	if prefix != 0 {
		n++
	}
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if prefix != 0 {
		dst = append(dst, prefix)
	}
	return append(dst, payload...)
}

// appendPayload appends the long-polling encoding of pkts to dst.
func appendPayload(dst []byte, pkts []*Packet) []byte {
	for i, p := range pkts {
		if i > 0 {
			dst = append(dst, recordSeparator)
		}
		dst = append(dst, p.pollBytes()...)
	}
	return dst
}

// inPacket is a decoded packet received from a client. data aliases the
// buffer it was decoded from unless it was base64.
type inPacket struct {
	typ    byte
	data   []byte
	binary bool
}

var errEmptyPacket = errors.New("empty packet")

// decodePacket decodes one text-encoded packet (WebSocket text frame or one
// record of a polling payload).
func decodePacket(b []byte) (inPacket, error) {
	if len(b) == 0 {
		return inPacket{}, errEmptyPacket
	}
	if b[0] < typeOpen || b[0] > typeNoop {
		return inPacket{}, fmt.Errorf("unknown packet type %q", b[0])
	}
	return inPacket{typ: b[0], data: b[1:]}, nil
}

// decodePayload decodes a long-polling request body. It decodes everything
// before returning, so a bad record anywhere rejects the whole payload and
// nothing of it is delivered.
func decodePayload(b []byte, dst []inPacket) ([]inPacket, error) {
	if len(b) == 0 {
		return dst, errEmptyPacket
	}
	for len(b) > 0 || len(dst) == 0 {
		rec := b
		rest := []byte(nil)
		for i, c := range b {
			if c == recordSeparator {
				rec, rest = b[:i], b[i+1:]
				break
			}
		}
		if len(rec) > 0 && rec[0] == 'b' {
			raw := make([]byte, base64.StdEncoding.DecodedLen(len(rec)-1))
			n, err := base64.StdEncoding.Decode(raw, rec[1:])
			if err != nil {
				return dst, fmt.Errorf("record %d: bad base64: %w", len(dst), err)
			}
			dst = append(dst, inPacket{typ: typeMessage, data: raw[:n], binary: true})
		} else {
			p, err := decodePacket(rec)
			if err != nil {
				return dst, fmt.Errorf("record %d: %w", len(dst), err)
			}
			dst = append(dst, p)
		}
		if rest == nil {
			break
		}
		b = rest
		if len(b) == 0 {
			// A trailing separator leaves an empty last record.
			return dst, fmt.Errorf("record %d: %w", len(dst), errEmptyPacket)
		}
	}
	return dst, nil
}
