package socketio

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// client is one Engine.IO session and the sockets (one per namespace)
// multiplexed over it.
type client struct {
	srv  *Server
	sess *engineio.Session
	dec  *parser.Decoder // only used from OnMessage, which is sequential

	mu sync.Mutex
	// sockets has one entry per connected namespace, nearly always one,
	// so a slice: a map would be the largest thing an idle client holds.
	sockets      []*Socket
	closed       bool
	connectTimer *time.Timer
}

func newClient(srv *Server, sess *engineio.Session) *client {
	c := &client{srv: srv, sess: sess, dec: parser.NewDecoder(srv.cfg.Limits)}
	c.mu.Lock()
	c.connectTimer = time.AfterFunc(srv.cfg.ConnectTimeout, c.onConnectTimeout)
	c.mu.Unlock()
	sess.SetHandlers(engineio.Handlers{OnMessage: c.onMessage, OnClose: c.onClose})
	return c
}

// onConnectTimeout drops sessions that never joined a namespace, so a
// bare Engine.IO connection cannot hold resources forever.
func (c *client) onConnectTimeout() {
	c.mu.Lock()
	idle := !c.closed && len(c.sockets) == 0
	c.mu.Unlock()
	if idle {
		c.srv.log.Debug("no namespace joined before connect timeout", "sid", c.sess.ID())
		c.sess.Close(ReasonForcedClose)
	}
}

func (c *client) onMessage(data []byte, binary bool) {
	p, err := c.dec.Add(data, binary)
	if err != nil {
		c.srv.log.Info("closing connection on malformed packet", "sid", c.sess.ID(), "remote", c.sess.Handshake().RemoteAddr, "err", err)
		c.sess.Close(ReasonParseError)
		return
	}
	if p == nil {
		return
	}
	if p.Type == parser.Connect {
		c.connect(p)
		return
	}
	c.mu.Lock()
	s := c.socketLocked(p.Namespace)
	c.mu.Unlock()
	if s != nil {
		s.onPacket(p)
	}
}

func (c *client) connect(p *parser.Packet) {
	nsp := c.srv.namespace(p.Namespace)
	if nsp == nil {
		c.connectError(p.Namespace, &ConnectError{Message: "Invalid namespace"})
		return
	}
	c.mu.Lock()
	dup := c.socketLocked(p.Namespace) != nil
	c.mu.Unlock()
	if dup {
		c.srv.log.Debug("ignoring CONNECT to an already connected namespace", "sid", c.sess.ID(), "nsp", p.Namespace)
		return
	}
	auth := p.Data
	if auth == nil {
		auth = json.RawMessage("{}")
	}
	hi := c.sess.Handshake()
	s := &Socket{
		id:     newSocketID(),
		nsp:    nsp,
		client: c,
		handshake: Handshake{
			Auth: auth, Header: hi.Header, Query: hi.Query, RemoteAddr: hi.RemoteAddr, Time: time.Now(),
		},
	}
	if err := c.runMiddlewares(nsp, s); err != nil {
		c.connectError(p.Namespace, err)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	s.connected.Store(true)
	c.sockets = append(c.sockets, s)
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()
	nsp.add(s)
}

func (c *client) runMiddlewares(nsp *Namespace, s *Socket) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("middleware panicked", "nsp", nsp.name, "panic", r)
			err = errors.New("internal server error")
		}
	}()
	return nsp.runMiddlewares(s)
}

func (c *client) connectError(nsp string, err error) {
	ce := &ConnectError{}
	if !errors.As(err, &ce) {
		ce = &ConnectError{Message: err.Error()}
	}
	body := struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{ce.Message, ce.Data}
	data, merr := json.Marshal(body)
	if merr != nil {
		data, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{ce.Message})
	}
	c.sess.Send(encode(&parser.Packet{Type: parser.ConnectError, Namespace: nsp, ID: parser.NoID, Data: data})...)
}

func (c *client) remove(s *Socket) {
	c.mu.Lock()
	for i, o := range c.sockets {
		if o == s {
			c.sockets = append(c.sockets[:i], c.sockets[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
}

// socketLocked returns the socket connected to namespace nsp, or nil.
func (c *client) socketLocked(nsp string) *Socket {
	for _, s := range c.sockets {
		if s.nsp.name == nsp {
			return s
		}
	}
	return nil
}

func (c *client) onClose(reason string) {
	c.mu.Lock()
	c.closed = true
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	socks := slices.Clone(c.sockets)
	c.mu.Unlock()
	for _, s := range socks {
		s.onClose(reason)
	}
}
