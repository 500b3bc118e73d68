package adminui

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
)

// serializedSocket is the Admin UI's SerializedSocket.
type serializedSocket struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"clientId"`
	Transport string    `json:"transport"`
	Nsp       string    `json:"nsp"`
	Data      any       `json:"data"`
	Handshake handshake `json:"handshake"`
	Rooms     []string  `json:"rooms"`
}

// handshake is socket.io's Handshake as the UI shows it, less the auth
// object (the reference leaves it out too) and credentials.
type handshake struct {
	Address string            `json:"address"`
	Headers map[string]string `json:"headers"`
	Query   map[string]string `json:"query"`
	Issued  int64             `json:"issued"`
	Secure  bool              `json:"secure"`
	Time    string            `json:"time"`
	URL     string            `json:"url"`
	XDomain bool              `json:"xdomain"`
}

func (a *AdminUI) serialize(s *socketio.Socket) serializedSocket {
	hs := s.Handshake().WithoutCredentials()
	headers := make(map[string]string, len(hs.Header))
	for k, v := range hs.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	query := make(map[string]string, len(hs.Query))
	kept := url.Values{}
	for k, v := range hs.Query {
		if len(v) == 0 {
			continue
		}
		query[k] = v[0]
		kept[k] = v[:1]
	}
	addr := hs.RemoteAddr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	if v := hs.Header.Get("Cf-Connecting-Ip"); v != "" {
		addr = v
	} else if v := hs.Header.Get("X-Forwarded-For"); v != "" {
		addr = v
	}
	path := a.srv.EngineIO().Config().Path
	u := path
	if len(kept) > 0 {
		u += "?" + kept.Encode()
	}
	rooms := s.Rooms()
	slices.Sort(rooms)
	var data any = map[string]any{}
	if a.cfg.SocketData != nil {
		if d := a.cfg.SocketData(s); d != nil {
			data = d
		}
	}
	return serializedSocket{
		ID:        s.ID(),
		ClientID:  clientID(s),
		Transport: s.Transport(),
		Nsp:       s.Namespace().Name(),
		Data:      data,
		Handshake: handshake{
			Address: addr,
			Headers: headers,
			Query:   query,
			Issued:  hs.Time.UnixMilli(),
			Secure:  strings.EqualFold(hs.Header.Get("X-Forwarded-Proto"), "https"),
			Time:    hs.Time.Format(time.RFC1123Z),
			URL:     u,
			XDomain: hs.Header.Get("Origin") != "",
		},
		Rooms: rooms,
	}
}

// allSockets lists every namespace's sockets, the UI's included.
func (a *AdminUI) allSockets() []serializedSocket {
	out := []serializedSocket{}
	for _, n := range a.srv.Namespaces() {
		for _, s := range n.SocketList() {
			out = append(out, a.serialize(s))
		}
	}
	return out
}
