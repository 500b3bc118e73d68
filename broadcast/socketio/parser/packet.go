// Package parser encodes and decodes Socket.IO v5 packets: the text header
// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]` and, for the
// binary types, the attachments that follow it as separate Engine.IO messages.
//
// Decoding is strict because every byte comes from the network: anything the
// reference parser (socket.io-parser v4) would reject is an error here, and
// the caller is expected to close the connection on it.
package parser

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/walcast/walcast/internal/jsonstr"
)

// Type is a Socket.IO packet type.
type Type byte

// Packet types of Socket.IO protocol v5.
const (
	Connect      Type = 0
	Disconnect   Type = 1
	Event        Type = 2
	Ack          Type = 3
	ConnectError Type = 4
	BinaryEvent  Type = 5
	BinaryAck    Type = 6
)

func (t Type) String() string {
	switch t {
	case Connect:
		return "CONNECT"
	case Disconnect:
		return "DISCONNECT"
	case Event:
		return "EVENT"
	case Ack:
		return "ACK"
	case ConnectError:
		return "CONNECT_ERROR"
	case BinaryEvent:
		return "BINARY_EVENT"
	case BinaryAck:
		return "BINARY_ACK"
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// NoID marks a packet without an ack id.
const NoID int64 = -1

// maxAckID keeps ids within what a JavaScript number represents exactly,
// since the browser side stores them as numbers.
const maxAckID = 1<<53 - 1

// Packet is one Socket.IO packet.
//
// For EVENT and ACK packets (binary or not) Args holds the elements of the
// data array, each a raw JSON value; for an EVENT, Args[0] is the event name
// as a JSON string and Name its decoded value. Binary arguments appear in Args
// as placeholders {"_placeholder":true,"num":N} referring to Attachments[N].
// For other types Data holds the raw JSON payload (nil when absent).
type Packet struct {
	Type        Type
	Namespace   string // "/" when the header names none
	ID          int64  // NoID when absent
	Name        string // EVENT only
	Args        []json.RawMessage
	Data        json.RawMessage
	Attachments [][]byte
}

// Errors returned by the decoder; all are wrapped with detail.
var (
	ErrUnknownType        = errors.New("unknown packet type")
	ErrInvalidAttachments = errors.New("illegal attachments")
	ErrInvalidID          = errors.New("invalid ack id")
	ErrInvalidPayload     = errors.New("invalid payload")
	ErrUnexpectedBinary   = errors.New("binary data when not reconstructing a packet")
	ErrUnexpectedText     = errors.New("text data while reconstructing a packet")
	ErrTooManyAttachments = errors.New("too many attachments")
	ErrAttachmentsTooBig  = errors.New("attachments too large")
)

// reservedEvents cannot be emitted by a client: they are the server's own
// lifecycle events in the reference implementation.
var reservedEvents = map[string]bool{
	"connect":        true,
	"connect_error":  true,
	"disconnect":     true,
	"disconnecting":  true,
	"newListener":    true,
	"removeListener": true,
}

// AppendHeader appends the text part of p to dst. EVENT and ACK packets are
// written as their binary variants when p carries attachments. Data is
// written from Args (as a JSON array) when Args is non-nil, else from Data.
// Args and Data are trusted to be valid JSON: they are written verbatim.
func AppendHeader(dst []byte, p *Packet) []byte {
	t := p.Type
	n := len(p.Attachments)
	if n > 0 {
		switch t {
		case Event:
			t = BinaryEvent
		case Ack:
			t = BinaryAck
		}
	}
	dst = append(dst, '0'+byte(t))
	if t == BinaryEvent || t == BinaryAck {
		dst = strconv.AppendInt(dst, int64(n), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.ID >= 0 {
		dst = strconv.AppendInt(dst, p.ID, 10)
	}
	if p.Args != nil {
		dst = append(dst, '[')
		for i, a := range p.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, a...)
		}
		dst = append(dst, ']')
	} else {
		dst = append(dst, p.Data...)
	}
	return dst
}

// AppendJSONString appends s as a JSON string literal, escaped as
// JSON.stringify escapes it (invalid UTF-8 becomes U+FFFD).
func AppendJSONString(dst []byte, s string) []byte { return jsonstr.Append(dst, s) }

// ParseHeader decodes the text part of a packet. For binary types the
// returned count is how many attachments must follow; the packet is complete
// only once they are added (see Decoder).
func ParseHeader(b []byte) (*Packet, int, error) {
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("empty packet: %w", ErrUnknownType)
	}
	c := b[0]
	if c < '0' || c > '6' {
		return nil, 0, fmt.Errorf("type %q: %w", c, ErrUnknownType)
	}
	p := &Packet{Type: Type(c - '0'), Namespace: "/", ID: NoID}
	i := 1
	attachments := 0
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start || i >= len(b) || b[i] != '-' || i-start > 9 {
			return nil, 0, ErrInvalidAttachments
		}
		n, err := strconv.Atoi(string(b[start:i]))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrInvalidAttachments, err)
		}
		attachments = n
		i++ // '-'
	}
	if i < len(b) && b[i] == '/' {
		start := i
		for i < len(b) && b[i] != ',' {
			i++
		}
		p.Namespace = string(b[start:i])
		if i < len(b) {
			i++ // ','
		}
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i-start > 16 {
			return nil, 0, fmt.Errorf("%w: too long", ErrInvalidID)
		}
		id, err := strconv.ParseInt(string(b[start:i]), 10, 64)
		if err != nil || id > maxAckID {
			return nil, 0, fmt.Errorf("%w: %s", ErrInvalidID, b[start:i])
		}
		p.ID = id
	}
	if err := p.setPayload(b[i:]); err != nil {
		return nil, 0, err
	}
	return p, attachments, nil
}

// setPayload validates data for p's type the way socket.io-parser's
// isPayloadValid does, and stores it.
func (p *Packet) setPayload(data []byte) error {
	present := len(data) > 0
	if present && !json.Valid(data) {
		return fmt.Errorf("%s: %w: not JSON", p.Type, ErrInvalidPayload)
	}
	first := firstByte(data)
	switch p.Type {
	case Connect:
		if present && first != '{' {
			return fmt.Errorf("CONNECT: %w: auth must be an object", ErrInvalidPayload)
		}
	case Disconnect:
		if present {
			return fmt.Errorf("DISCONNECT: %w: unexpected payload", ErrInvalidPayload)
		}
	case ConnectError:
		if !present || (first != '{' && first != '"') {
			return fmt.Errorf("CONNECT_ERROR: %w: want an object or a string", ErrInvalidPayload)
		}
	case Event, BinaryEvent, Ack, BinaryAck:
		if !present || first != '[' {
			return fmt.Errorf("%s: %w: want an array", p.Type, ErrInvalidPayload)
		}
		var args []json.RawMessage
		if err := json.Unmarshal(data, &args); err != nil {
			return fmt.Errorf("%s: %w: %v", p.Type, ErrInvalidPayload, err)
		}
		if args == nil {
			args = []json.RawMessage{}
		}
		if p.Type == Event || p.Type == BinaryEvent {
			if len(args) == 0 || firstByte(args[0]) != '"' {
				return fmt.Errorf("%s: %w: event name must be a string", p.Type, ErrInvalidPayload)
			}
			if err := json.Unmarshal(args[0], &p.Name); err != nil {
				return fmt.Errorf("%s: %w: %v", p.Type, ErrInvalidPayload, err)
			}
			if reservedEvents[p.Name] {
				return fmt.Errorf("%s: %w: reserved event name %q", p.Type, ErrInvalidPayload, p.Name)
			}
		} else if p.ID == NoID {
			return fmt.Errorf("%s: %w: missing", p.Type, ErrInvalidID)
		}
		p.Args = args
		return nil
	}
	if present {
		p.Data = append(json.RawMessage(nil), data...)
	}
	return nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
