package redisadapter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/internal/jsonstr"
)

// Message types of socket.io-adapter's ClusterAdapter (the streams adapter's
// "type" entry field) that walcast acts on.
const (
	typeBroadcast    = 3
	typeSocketsJoin  = 4
	typeSocketsLeave = 5
	typeDisconnect   = 6
)

// Request types of @socket.io/redis-adapter's request channel that walcast
// acts on (the ones @socket.io/redis-emitter sends).
const (
	requestRemoteJoin       = 2
	requestRemoteLeave      = 3
	requestRemoteDisconnect = 4
)

var errBadMessage = errors.New("bad cluster message")

// reservedEvents are socket.io's RESERVED_EVENTS.
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// action is what a message read from Redis asks this instance to do with its
// local sockets.
type action struct {
	kind   int // typeBroadcast, typeSocketsJoin, typeSocketsLeave, typeDisconnect
	uid    string
	nsp    string
	packet *parser.Packet // typeBroadcast
	opts   socketio.BroadcastOptions
	rooms  []string // join/leave
	close  bool     // disconnect
}

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadMessage, fmt.Sprintf(format, args...))
}

// packetFromArgs builds the EVENT packet of a broadcast from its data array
// (raw JSON values, the event name first) and attachments.
func packetFromArgs(nsp string, typ int64, args []json.RawMessage, atts [][]byte) (*parser.Packet, error) {
	if typ != int64(parser.Event) && typ != int64(parser.BinaryEvent) {
		return nil, badf("packet type %d is not an event", typ)
	}
	if len(args) == 0 {
		return nil, badf("event without a name")
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		return nil, badf("event name is not a string")
	}
	// Node servers and the emitter refuse to emit these; a client would take
	// them for its own connection events.
	if reservedEvents[name] {
		return nil, badf("reserved event name %q", name)
	}
	return &parser.Packet{
		Type:        parser.Event,
		Namespace:   nsp,
		ID:          parser.NoID,
		Name:        name,
		Args:        args,
		Attachments: atts,
	}, nil
}

// JSON forms (the streams adapter's "data" field when it holds no binary, and
// the classic adapter's JSON requests).

type jsonPacket struct {
	Type int64             `json:"type"`
	Data []json.RawMessage `json:"data"`
	Nsp  *string           `json:"nsp"`
}

type jsonOpts struct {
	Rooms  []json.RawMessage `json:"rooms"`
	Except []json.RawMessage `json:"except"`
}

type jsonClusterData struct {
	Packet    *jsonPacket       `json:"packet"`
	Opts      *jsonOpts         `json:"opts"`
	Rooms     []json.RawMessage `json:"rooms"`
	Close     bool              `json:"close"`
	RequestID json.RawMessage   `json:"requestId"`
}

// roomName accepts a room as a string or, as Node allows, a number.
func roomName(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badf("room: %v", err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", badf("room is neither string nor number")
	}
	return n.String(), nil
}

func roomNames(raw []json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		s, err := roomName(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (o *jsonOpts) options() (socketio.BroadcastOptions, error) {
	var opts socketio.BroadcastOptions
	if o == nil {
		return opts, nil
	}
	var err error
	if opts.Rooms, err = roomNames(o.Rooms); err != nil {
		return opts, err
	}
	opts.Except, err = roomNames(o.Except)
	return opts, err
}

// decodeStreamEntry decodes one entry of the streams adapter's stream: fields
// uid, nsp, type (decimal) and data (JSON when it starts with "{", else
// base64 msgpack). Types walcast does not act on return a nil action.
func decodeStreamEntry(uid, nsp, typ, data string) (*action, error) {
	t, err := strconv.Atoi(typ)
	if err != nil {
		return nil, badf("type %q", typ)
	}
	switch t {
	case typeBroadcast, typeSocketsJoin, typeSocketsLeave, typeDisconnect:
	default:
		return nil, nil
	}
	a := &action{kind: t, uid: uid, nsp: nsp}
	if data == "" {
		return nil, badf("type %d without data", t)
	}
	if data[0] == '{' {
		err = a.fromJSON([]byte(data))
	} else {
		raw, derr := base64.StdEncoding.DecodeString(data)
		if derr != nil {
			return nil, badf("data is neither JSON nor base64: %v", derr)
		}
		err = a.fromMsgpackData(raw)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *action) fromJSON(b []byte) error {
	var d jsonClusterData
	if err := json.Unmarshal(b, &d); err != nil {
		return badf("data: %v", err)
	}
	// Acknowledged broadcasts need answers walcast does not give (see README).
	if a.kind == typeBroadcast && len(d.RequestID) > 0 && string(d.RequestID) != "null" {
		return badf("broadcast with acknowledgement is not supported")
	}
	var err error
	if a.opts, err = d.Opts.options(); err != nil {
		return err
	}
	switch a.kind {
	case typeBroadcast:
		if d.Packet == nil {
			return badf("broadcast without packet")
		}
		nsp := a.nsp
		if d.Packet.Nsp != nil {
			nsp = *d.Packet.Nsp
		}
		if nsp != a.nsp {
			return badf("packet namespace %q in a message for %q", nsp, a.nsp)
		}
		a.packet, err = packetFromArgs(nsp, d.Packet.Type, d.Packet.Data, nil)
		return err
	case typeSocketsJoin, typeSocketsLeave:
		a.rooms, err = roomNames(d.Rooms)
		return err
	case typeDisconnect:
		a.close = d.Close
	}
	return nil
}

// fromMsgpackData decodes the msgpack form of a ClusterMessage's data.
func (a *action) fromMsgpackData(b []byte) error {
	r := &mpReader{b: b}
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	var sawPacket bool
	for i := 0; i < n; i++ {
		key, err := r.str()
		if err != nil {
			return err
		}
		switch string(key) {
		case "packet":
			if a.packet, err = r.packet(a.nsp); err != nil {
				return err
			}
			sawPacket = true
		case "opts":
			if a.opts, err = r.opts(); err != nil {
				return err
			}
		case "rooms":
			if a.rooms, err = r.rooms(); err != nil {
				return err
			}
		case "close":
			c, err := r.byte1()
			if err != nil {
				return err
			}
			a.close = c == 0xc3
		case "requestId":
			if !r.isNil() {
				return badf("broadcast with acknowledgement is not supported")
			}
		default:
			if err := r.skip(); err != nil {
				return err
			}
		}
	}
	if r.off != len(r.b) {
		return badf("%d trailing bytes", len(r.b)-r.off)
	}
	if a.kind == typeBroadcast && !sawPacket {
		return badf("broadcast without packet")
	}
	return nil
}

// packet reads a socket.io-parser packet object {type, data, nsp}.
func (r *mpReader) packet(nsp string) (*parser.Packet, error) {
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	var typ int64 = -1
	var args []json.RawMessage
	var atts [][]byte
	pnsp := "/"
	for i := 0; i < n; i++ {
		key, err := r.str()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "type":
			if typ, err = r.int(); err != nil {
				return nil, err
			}
		case "nsp":
			if r.isNil() {
				continue
			}
			s, err := r.str()
			if err != nil {
				return nil, err
			}
			pnsp = string(s)
		case "data":
			m, err := r.arrayLen()
			if err != nil {
				return nil, err
			}
			args = make([]json.RawMessage, 0, m)
			for j := 0; j < m; j++ {
				v, err := r.toJSON(nil, &atts, 1)
				if err != nil {
					return nil, err
				}
				args = append(args, v)
			}
		default:
			if err := r.skip(); err != nil {
				return nil, err
			}
		}
	}
	if nsp != "" && pnsp != nsp {
		return nil, badf("packet namespace %q in a message for %q", pnsp, nsp)
	}
	return packetFromArgs(pnsp, typ, args, atts)
}

// opts reads {rooms, except, flags}.
func (r *mpReader) opts() (socketio.BroadcastOptions, error) {
	var o socketio.BroadcastOptions
	n, err := r.mapLen()
	if err != nil {
		return o, err
	}
	for i := 0; i < n; i++ {
		key, err := r.str()
		if err != nil {
			return o, err
		}
		switch string(key) {
		case "rooms":
			o.Rooms, err = r.rooms()
		case "except":
			o.Except, err = r.rooms()
		default:
			err = r.skip()
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// rooms reads an array of room names (strings or integers); nil counts as empty.
func (r *mpReader) rooms() ([]string, error) {
	if r.isNil() {
		return nil, nil
	}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		k, err := r.mapKey()
		if err != nil {
			return nil, err
		}
		out = append(out, string(k))
	}
	return out, nil
}

// decodePubSubBroadcast decodes the classic adapter's broadcast message, the
// msgpack tuple [uid, packet, opts].
func decodePubSubBroadcast(b []byte) (*action, error) {
	r := &mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if n != 3 {
		return nil, badf("tuple of %d elements, want 3", n)
	}
	uid, err := r.str()
	if err != nil {
		return nil, err
	}
	a := &action{kind: typeBroadcast, uid: string(uid)}
	if a.packet, err = r.packet(""); err != nil {
		return nil, err
	}
	a.nsp = a.packet.Namespace
	if a.opts, err = r.opts(); err != nil {
		return nil, err
	}
	if r.off != len(r.b) {
		return nil, badf("%d trailing bytes", len(r.b)-r.off)
	}
	return a, nil
}

// decodePubSubRequest decodes a request of the classic adapter's request
// channel (JSON when it starts with "{", else msgpack). Only the opts-based
// join/leave/disconnect requests (what the emitter sends) give an action;
// others return nil.
func decodePubSubRequest(b []byte) (*action, error) {
	if len(b) == 0 || b[0] != '{' {
		// The emitter and walcast only send JSON requests; msgpack requests
		// (Node peers' socket-id based ones) are not acted on.
		return nil, nil
	}
	var req struct {
		Type  *int              `json:"type"`
		Opts  *jsonOpts         `json:"opts"`
		Rooms []json.RawMessage `json:"rooms"`
		Close bool              `json:"close"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, badf("request: %v", err)
	}
	if req.Type == nil || req.Opts == nil {
		return nil, nil
	}
	a := &action{close: req.Close}
	switch *req.Type {
	case requestRemoteJoin:
		a.kind = typeSocketsJoin
	case requestRemoteLeave:
		a.kind = typeSocketsLeave
	case requestRemoteDisconnect:
		a.kind = typeDisconnect
	default:
		return nil, nil
	}
	var err error
	if a.opts, err = req.Opts.options(); err != nil {
		return nil, err
	}
	if a.kind != typeDisconnect {
		if a.rooms, err = roomNames(req.Rooms); err != nil {
			return nil, err
		}
		if len(a.rooms) == 0 {
			return nil, badf("join/leave without rooms")
		}
	}
	return a, nil
}

// Encoding of walcast's own broadcasts.

func eventArgs(p *parser.Packet) ([]json.RawMessage, error) {
	if p.Type != parser.Event && p.Type != parser.BinaryEvent {
		return nil, fmt.Errorf("only events cross instances, not %v packets", p.Type)
	}
	if len(p.Args) == 0 {
		return nil, errors.New("event without a name")
	}
	return p.Args, nil
}

func appendJSONStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstr.Append(dst, s)
	}
	return append(dst, ']')
}

// encodeClusterData encodes a broadcast as the streams adapter's data field:
// JSON without binary, base64 msgpack with (as hasBinary decides in Node).
func encodeClusterData(p *parser.Packet, opts socketio.BroadcastOptions) (string, error) {
	args, err := eventArgs(p)
	if err != nil {
		return "", err
	}
	if len(p.Attachments) > 0 {
		b := mpAppendMapLen(nil, 2)
		b = mpAppendString(b, "packet")
		if b, err = mpAppendPacket(b, p.Namespace, args, p.Attachments); err != nil {
			return "", err
		}
		b = mpAppendString(b, "opts")
		b = mpAppendOpts(b, opts)
		return base64.StdEncoding.EncodeToString(b), nil
	}
	b := make([]byte, 0, 64+len(p.Namespace)+argsLen(args))
	b = append(b, `{"packet":{"type":2,"data":[`...)
	for i, a := range args {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, a...)
	}
	b = append(b, `],"nsp":`...)
	b = jsonstr.Append(b, p.Namespace)
	b = append(b, `},"opts":{"rooms":`...)
	b = appendJSONStrings(b, opts.Rooms)
	b = append(b, `,"except":`...)
	b = appendJSONStrings(b, opts.Except)
	b = append(b, `,"flags":{}}}`...)
	return string(b), nil
}

// encodeDisconnectData is the data of a disconnectSockets entry (type 6) as
// the Node adapter writes it: {"opts":{"rooms":[...],"except":[...],"flags":{}},"close":false}.
// close true would drop the connection without a DISCONNECT packet, so the
// client would reconnect.
func encodeDisconnectData(opts socketio.BroadcastOptions, close bool) string {
	b := make([]byte, 0, 64)
	b = append(b, `{"opts":{"rooms":`...)
	b = appendJSONStrings(b, opts.Rooms)
	b = append(b, `,"except":`...)
	b = appendJSONStrings(b, opts.Except)
	b = append(b, `,"flags":{}},"close":`...)
	b = strconv.AppendBool(b, close)
	b = append(b, '}')
	return string(b)
}

func argsLen(args []json.RawMessage) int {
	n := 0
	for _, a := range args {
		n += len(a) + 1
	}
	return n
}

func mpAppendPacket(b []byte, nsp string, args []json.RawMessage, atts [][]byte) ([]byte, error) {
	b = mpAppendMapLen(b, 3)
	b = mpAppendString(b, "type")
	b = mpAppendInt(b, int64(parser.Event))
	b = mpAppendString(b, "data")
	b = mpAppendArrayLen(b, len(args))
	var err error
	for _, a := range args {
		if b, err = mpAppendJSON(b, a, atts); err != nil {
			return nil, err
		}
	}
	b = mpAppendString(b, "nsp")
	return mpAppendString(b, nsp), nil
}

func mpAppendOpts(b []byte, opts socketio.BroadcastOptions) []byte {
	b = mpAppendMapLen(b, 3)
	b = mpAppendString(b, "rooms")
	b = mpAppendStrings(b, opts.Rooms)
	b = mpAppendString(b, "except")
	b = mpAppendStrings(b, opts.Except)
	b = mpAppendString(b, "flags")
	return mpAppendMapLen(b, 0)
}

// encodePubSubBroadcast encodes a broadcast as the classic adapter's msgpack
// tuple [uid, packet, opts].
func encodePubSubBroadcast(uid string, p *parser.Packet, opts socketio.BroadcastOptions) ([]byte, error) {
	args, err := eventArgs(p)
	if err != nil {
		return nil, err
	}
	b := mpAppendArrayLen(make([]byte, 0, 64+argsLen(args)), 3)
	b = mpAppendString(b, uid)
	if b, err = mpAppendPacket(b, p.Namespace, args, p.Attachments); err != nil {
		return nil, err
	}
	return mpAppendOpts(b, opts), nil
}
