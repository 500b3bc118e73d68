package socketio

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Args are the arguments of a received event or acknowledgement. JSON holds
// each argument as raw JSON; a binary argument appears there as the
// placeholder {"_placeholder":true,"num":N} and its bytes are Binary[N].
// Args (like everything a handler receives) stay valid after the handler
// returns and may be passed on, e.g. re-emitted, as they are.
type Args struct {
	JSON   []json.RawMessage
	Binary [][]byte
}

// Len is the number of arguments.
func (a Args) Len() int { return len(a.JSON) }

// Unmarshal decodes argument i into v.
func (a Args) Unmarshal(i int, v any) error {
	if i < 0 || i >= len(a.JSON) {
		return fmt.Errorf("argument %d of %d: out of range", i, len(a.JSON))
	}
	if err := json.Unmarshal(a.JSON[i], v); err != nil {
		return fmt.Errorf("argument %d: %w", i, err)
	}
	return nil
}

// Bytes returns the attachment when argument i is a binary placeholder.
func (a Args) Bytes(i int) ([]byte, bool) {
	if i < 0 || i >= len(a.JSON) {
		return nil, false
	}
	n, ok := parser.Placeholder(a.JSON[i])
	if !ok || n < 0 || n >= len(a.Binary) {
		return nil, false
	}
	return a.Binary[n], true
}

var errArgsNotAlone = errors.New("an Args value must be the only argument")

// appendArgs adds vals to p as packet arguments:
//   - json.RawMessage is written verbatim after a validity scan (no re-encoding),
//   - []byte becomes a binary attachment behind a placeholder,
//   - Args (only as the sole value) is passed through with its attachments,
//   - anything else goes through json.Marshal.
//
// The scan of raw JSON happens once per emit, not per receiving socket, and
// keeps one bad payload from breaking every browser's parser.
func appendArgs(p *parser.Packet, vals []any) error {
	for i, v := range vals {
		switch t := v.(type) {
		case json.RawMessage:
			if len(t) == 0 {
				t = json.RawMessage("null")
			} else if !json.Valid(t) {
				return fmt.Errorf("argument %d: invalid JSON", i)
			}
			p.Args = append(p.Args, t)
		case []byte:
			p.Args = append(p.Args, parser.AppendPlaceholder(nil, len(p.Attachments)))
			p.Attachments = append(p.Attachments, t)
		case Args:
			if len(vals) != 1 {
				return errArgsNotAlone
			}
			p.Args = append(p.Args, t.JSON...)
			p.Attachments = t.Binary
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("argument %d: %w", i, err)
			}
			p.Args = append(p.Args, b)
		}
	}
	return nil
}

// eventPacket builds an EVENT packet for event with args.
func eventPacket(nsp, event string, id int64, vals []any) (*parser.Packet, error) {
	p := &parser.Packet{Type: parser.Event, Namespace: nsp, ID: id}
	p.Args = make([]json.RawMessage, 1, 1+len(vals))
	p.Args[0] = parser.AppendJSONString(nil, event)
	if err := appendArgs(p, vals); err != nil {
		return nil, fmt.Errorf("emit %q: %w", event, err)
	}
	return p, nil
}
