package socketio

import (
	"context"
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

// onConnectTimeout drops sessions that never joined a namespace (a
// CONNECT refused by a middleware, such as a bad token, does not count),
// so a connection that has not authenticated cannot hold resources for
// longer than ConnectTimeout.
func (c *client) onConnectTimeout() {
	c.mu.Lock()
	idle := !c.closed && len(c.sockets) == 0
	c.mu.Unlock()
	if idle {
		c.srv.connectTimeouts.Add(1)
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
		sess:   c.sess,
		handshake: Handshake{
			Auth: auth, Header: hi.Header, Query: hi.Query, RemoteAddr: hi.RemoteAddr, Time: time.Now(),
		},
	}
	if err := c.runMiddlewares(nsp, s); err != nil {
		c.connectError(p.Namespace, err)
		return
	}
	if rec := c.srv.cfg.Recovery; rec != nil && nsp.store != nil {
		s.rec = &sockRecovery{}
		if rec.Owner != nil {
			s.rec.owner = rec.Owner(s)
		}
		// Authentication ran first: only now may a stored session be
		// looked at, and only handed over to the same owner.
		if pid, offset := recoveryAuth(auth); pid != "" && offset != "" {
			c.restore(nsp, s, pid, offset)
		}
		if !s.rec.recovered {
			s.rec.pid = newPID()
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if s.rec != nil && s.rec.recovered {
			nsp.adapter.DelAll(s)
		}
		return
	}
	s.connected.Store(true)
	c.sockets = append(c.sockets, s)
	first := c.connectTimer != nil
	if first {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()
	if first {
		// The namespace's middlewares accepted it: the session no longer
		// counts as one that has not authenticated.
		c.sess.Admit()
	}
	nsp.add(s)
}

// restore resumes the session pid into s when it exists, is still
// replayable from offset and belongs to s's owner; otherwise s stays new.
// The socket joins the stored rooms, reserved ones included, before the
// history is read, buffering live broadcasts: a broadcast made meanwhile is
// then in the history, in the buffer or both, never in neither. Reserved
// rooms the application does not join again are left after OnConnection.
func (c *client) restore(nsp *Namespace, s *Socket, pid, offset string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := nsp.store.LoadSession(ctx, pid)
	if err != nil {
		c.srv.log.Warn("restore session", "nsp", nsp.name, "err", err)
		return
	}
	if st == nil || st.PID != pid {
		return
	}
	if st.Owner == "" || st.Owner != s.rec.owner {
		c.srv.log.Info("refused to restore another owner's session", "nsp", nsp.name, "remote", s.handshake.RemoteAddr)
		return
	}
	// The old socket's transport is not known to be dead yet, but the client
	// is here now: close the old socket, here or wherever it is.
	if old := nsp.Socket(st.SID); old != nil {
		old.takeOver()
	} else if tn, ok := nsp.adapter.(TakeoverNotifier); ok {
		c.notifyTakeover(nsp, tn, st.SID, st.Gen+1)
	}
	if rooms := c.srv.cfg.Recovery.Rooms; rooms != nil {
		keep := c.srv.cfg.Recovery.KeepRoom
		kept := []string{st.SID}
		for _, r := range st.Rooms {
			if r != st.SID && (keep == nil || keep(r)) {
				kept = append(kept, r)
			}
		}
		st.Rooms = append(kept, rooms(s)...)
	}
	fresh := s.id
	s.id = st.SID
	cu := &catchup{}
	s.catchup.Store(cu)
	nsp.adapter.AddAll(s, append([]string{st.SID}, st.Rooms...))
	undo := func() {
		nsp.adapter.DelAll(s)
		s.catchup.Store(nil)
		s.id = fresh
	}
	missed, ok, err := nsp.store.MissedSince(ctx, st, offset)
	if err != nil {
		c.srv.log.Warn("read missed broadcasts", "nsp", nsp.name, "err", err)
	}
	if !ok || err != nil {
		undo()
		return
	}
	if brk := c.srv.cfg.Recovery.Breaks; brk != nil {
		for _, m := range missed {
			if brk(m.Packet) {
				undo()
				return
			}
		}
	}
	s.rec.pid = st.PID
	s.rec.gen = st.Gen + 1
	s.rec.recovered = true
	s.rec.restored = st
	s.rec.missed = missed
}

// notifyTakeover tells the other instances, off the connecting client's
// path, that the session of socket sid was resumed here as generation gen.
// A notice that does not arrive leaves the old socket to its ping timeout,
// as before.
func (c *client) notifyTakeover(nsp *Namespace, tn TakeoverNotifier, sid string, gen uint64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tn.NotifyTakeover(ctx, sid, gen); err != nil {
			c.srv.log.Warn("notify takeover of a resumed session", "nsp", nsp.name, "err", err)
		}
	}()
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
