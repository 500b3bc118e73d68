package parser

import (
	"encoding/json"
	"fmt"
)

// Limits cap what one binary packet may carry. Zero values take the
// defaults noted; each attachment is additionally bounded by the Engine.IO
// maxPayload, but without these a client could announce a huge count and
// make the server buffer many maxPayload-sized messages.
type Limits struct {
	MaxAttachments     int   // default 10
	MaxAttachmentBytes int64 // total over one packet; default 1e6
}

func (l Limits) withDefaults() Limits {
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = 10
	}
	if l.MaxAttachmentBytes <= 0 {
		l.MaxAttachmentBytes = 1e6
	}
	return l
}

// Decoder turns the Engine.IO messages of one connection into packets,
// reassembling binary packets from their header and attachments. It is not
// safe for concurrent use; after an error the connection must be dropped.
type Decoder struct {
	limits  Limits
	pending *Packet
	want    int
	size    int64
}

// NewDecoder returns a decoder enforcing limits.
func NewDecoder(limits Limits) *Decoder {
	return &Decoder{limits: limits.withDefaults()}
}

// Add feeds one Engine.IO message. It returns the completed packet, or nil
// while a binary packet still waits for attachments. data is not retained.
func (d *Decoder) Add(data []byte, binary bool) (*Packet, error) {
	if binary {
		if d.pending == nil {
			return nil, ErrUnexpectedBinary
		}
		d.size += int64(len(data))
		if d.size > d.limits.MaxAttachmentBytes {
			return nil, fmt.Errorf("%w: over %d bytes", ErrAttachmentsTooBig, d.limits.MaxAttachmentBytes)
		}
		p := d.pending
		p.Attachments = append(p.Attachments, append([]byte(nil), data...))
		if len(p.Attachments) < d.want {
			return nil, nil
		}
		d.pending = nil
		if err := checkPlaceholders(p.Args, len(p.Attachments)); err != nil {
			return nil, err
		}
		return p, nil
	}
	if d.pending != nil {
		return nil, ErrUnexpectedText
	}
	p, n, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	if n > d.limits.MaxAttachments {
		return nil, fmt.Errorf("%w: %d announced, limit %d", ErrTooManyAttachments, n, d.limits.MaxAttachments)
	}
	if n == 0 {
		if p.Type == BinaryEvent || p.Type == BinaryAck {
			if err := checkPlaceholders(p.Args, 0); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	p.Attachments = make([][]byte, 0, n)
	d.pending, d.want, d.size = p, n, 0
	return nil, nil
}

// Decode parses a complete packet from its header and attachments at once.
func Decode(header []byte, attachments [][]byte, limits Limits) (*Packet, error) {
	d := NewDecoder(limits)
	p, err := d.Add(header, false)
	for _, a := range attachments {
		if err != nil {
			return nil, err
		}
		if p != nil {
			return nil, ErrUnexpectedBinary
		}
		p, err = d.Add(a, true)
	}
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: missing attachments", ErrInvalidAttachments)
	}
	return p, nil
}

// checkPlaceholders verifies that every placeholder refers to an attachment
// and every attachment is referred to, so a handler indexing Attachments by
// a placeholder's num can never go out of range and nothing is smuggled.
func checkPlaceholders(args []json.RawMessage, n int) error {
	used := make([]bool, n)
	for _, a := range args {
		var v any
		if err := json.Unmarshal(a, &v); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
		}
		if err := walkPlaceholders(v, used); err != nil {
			return err
		}
	}
	for i, u := range used {
		if !u {
			return fmt.Errorf("%w: attachment %d not referenced", ErrInvalidAttachments, i)
		}
	}
	return nil
}

func walkPlaceholders(v any, used []bool) error {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if err := walkPlaceholders(e, used); err != nil {
				return err
			}
		}
	case map[string]any:
		if ph, ok := t["_placeholder"].(bool); ok && ph {
			num, ok := t["num"].(float64)
			if !ok || num != float64(int(num)) || num < 0 || int(num) >= len(used) {
				return fmt.Errorf("%w: placeholder num %v out of range [0,%d)", ErrInvalidAttachments, t["num"], len(used))
			}
			used[int(num)] = true
			return nil
		}
		for _, e := range t {
			if err := walkPlaceholders(e, used); err != nil {
				return err
			}
		}
	}
	return nil
}

// Placeholder returns the attachment index when raw is a binary placeholder.
func Placeholder(raw json.RawMessage) (int, bool) {
	if firstByte(raw) != '{' {
		return 0, false
	}
	var ph struct {
		Placeholder bool `json:"_placeholder"`
		Num         *int `json:"num"`
	}
	if json.Unmarshal(raw, &ph) != nil || !ph.Placeholder || ph.Num == nil {
		return 0, false
	}
	return *ph.Num, true
}

// AppendPlaceholder appends the placeholder JSON for attachment num.
func AppendPlaceholder(dst []byte, num int) []byte {
	dst = append(dst, `{"_placeholder":true,"num":`...)
	dst = fmt.Appendf(dst, "%d}", num)
	return dst
}
