package redisadapter

import (
	"encoding/json"
	"net"
	"sort"
	"strings"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// ClusterAdapter request and response types carried over pub/sub by the
// streams adapter 0.3 (socket.io-adapter's MessageType).
const (
	typeFetchSockets         = 7
	typeFetchSocketsResponse = 8
	typeBroadcastClientCount = 11
)

// Classic adapter request types answered by walcast.
const (
	requestSockets     = 0
	requestAllRooms    = 1
	requestRemoteFetch = 5
)

// clusterRequest is a ClusterMessage read from the streams adapter's pub/sub
// channels: a msgpack map {uid, nsp, type, data}.
type clusterRequest struct {
	uid, nsp  string
	typ       int64
	requestID string
	opts      socketio.BroadcastOptions
	packet    *parser.Packet
}

// decodeClusterRequest decodes the requests walcast answers: FETCH_SOCKETS and
// BROADCAST with an acknowledgement. Others return nil.
func decodeClusterRequest(b []byte) (*clusterRequest, error) {
	r := &mpReader{b: b}
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	req := &clusterRequest{typ: -1}
	dataAt := -1
	for i := 0; i < n; i++ {
		key, err := r.str()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "uid", "nsp":
			s, err := r.str()
			if err != nil {
				return nil, err
			}
			if string(key) == "uid" {
				req.uid = string(s)
			} else {
				req.nsp = string(s)
			}
		case "type":
			if req.typ, err = r.int(); err != nil {
				return nil, err
			}
		case "data":
			// The packet's namespace is checked against nsp, which may come later.
			dataAt = r.off
			if err := r.skip(); err != nil {
				return nil, err
			}
		default:
			if err := r.skip(); err != nil {
				return nil, err
			}
		}
	}
	if req.typ != typeFetchSockets && req.typ != typeBroadcast {
		return nil, nil
	}
	if dataAt < 0 || req.uid == "" {
		return nil, badf("request without data or uid")
	}
	r.off = dataAt
	if n, err = r.mapLen(); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		key, err := r.str()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "requestId":
			s, err := r.str()
			if err != nil {
				return nil, err
			}
			req.requestID = string(s)
		case "opts":
			if req.opts, err = r.opts(); err != nil {
				return nil, err
			}
		case "packet":
			if req.packet, err = r.packet(req.nsp); err != nil {
				return nil, err
			}
		default:
			if err := r.skip(); err != nil {
				return nil, err
			}
		}
	}
	if req.requestID == "" {
		return nil, badf("request without requestId")
	}
	if req.typ == typeBroadcast && req.packet == nil {
		return nil, badf("broadcast without packet")
	}
	return req, nil
}

// socketInfo is what fetchSockets returns for one socket, in the shape Node's
// RemoteSocket reads: id, handshake, rooms, data. Anyone who can publish on
// the request channel gets it, so it carries no credential: the handshake's
// auth object is {} (it holds the user's token, valid on the application's
// own API too), and headers and query parameters named like credentials
// (Authorization, Cookie, ...) are left out (Handshake.WithoutCredentials).
// walcast does not share a socket's data (it may hold the authenticated
// user): data is null.
type socketInfo struct {
	ID        string          `json:"id"`
	Handshake handshakeInfo   `json:"handshake"`
	Rooms     []string        `json:"rooms"`
	Data      json.RawMessage `json:"data"`
}

type handshakeInfo struct {
	Headers map[string]string `json:"headers"`
	Time    string            `json:"time"`
	Address string            `json:"address"`
	XDomain bool              `json:"xdomain"`
	Secure  bool              `json:"secure"`
	Issued  int64             `json:"issued"`
	URL     string            `json:"url"`
	Query   map[string]string `json:"query"`
	Auth    json.RawMessage   `json:"auth"`
}

func describe(s *socketio.Socket, rooms []string) socketInfo {
	h := s.Handshake().WithoutCredentials()
	info := socketInfo{ID: s.ID(), Rooms: rooms, Data: json.RawMessage("null")}
	info.Handshake = handshakeInfo{
		Headers: make(map[string]string, len(h.Header)),
		Time:    h.Time.Format("Mon Jan 02 2006 15:04:05 GMT-0700 (MST)"),
		Address: h.RemoteAddr,
		Issued:  h.Time.UnixMilli(),
		Query:   make(map[string]string, len(h.Query)),
		Auth:    h.Auth,
	}
	if host, _, err := net.SplitHostPort(h.RemoteAddr); err == nil {
		info.Handshake.Address = host
	}
	for k, v := range h.Header {
		info.Handshake.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	info.Handshake.XDomain = h.Header.Get("Origin") != ""
	for k, v := range h.Query {
		if len(v) > 0 {
			info.Handshake.Query[k] = v[0]
		}
	}
	return info
}

// fetch describes the local sockets opts selects.
func (l *local) fetch(opts socketio.BroadcastOptions) []socketInfo {
	sel := l.selected(opts)
	out := make([]socketInfo, 0, len(sel))
	for _, s := range sel {
		out = append(out, describe(s, l.MemoryAdapter.SocketRooms(s)))
	}
	return out
}

// roomList lists the rooms of the local sockets.
func (l *local) roomList() []string {
	set := make(map[string]struct{})
	for _, s := range l.MemoryAdapter.Sockets(nil) {
		for _, r := range l.MemoryAdapter.SocketRooms(s) {
			set[r] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// encodeClusterResponse encodes a ClusterResponse {uid, nsp, type, data} as
// msgpack; data is given as JSON and transcoded.
func encodeClusterResponse(uid, nsp string, typ int, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	b := mpAppendMapLen(nil, 4)
	b = mpAppendString(b, "uid")
	b = mpAppendString(b, uid)
	b = mpAppendString(b, "nsp")
	b = mpAppendString(b, nsp)
	b = mpAppendString(b, "type")
	b = mpAppendInt(b, int64(typ))
	b = mpAppendString(b, "data")
	return mpAppendJSON(b, raw, nil)
}

// pubSubRequest is a classic adapter request read from the request channel.
type pubSubRequest struct {
	Type      int       `json:"type"`
	UID       string    `json:"uid"`
	RequestID string    `json:"requestId"`
	Rooms     []string  `json:"rooms"`
	Opts      *jsonOpts `json:"opts"`
}

// decodePubSubQuery decodes the JSON requests walcast answers (SOCKETS,
// ALL_ROOMS, REMOTE_FETCH); others return nil.
func decodePubSubQuery(b []byte) (*pubSubRequest, error) {
	if len(b) == 0 || b[0] != '{' {
		return nil, nil
	}
	var req pubSubRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, badf("request: %v", err)
	}
	switch req.Type {
	case requestSockets, requestAllRooms, requestRemoteFetch:
	default:
		return nil, nil
	}
	if req.RequestID == "" {
		return nil, badf("request without requestId")
	}
	return &req, nil
}
