// Package authclient is the benchmarks' cheap Socket.IO client for servers
// that require a token: just enough Engine.IO v4 / Socket.IO v5 to join the
// default namespace with {token}, answer pings and count one event.
// bench/fanout/loadclient is cheaper (epoll, many connections per goroutine)
// but sends a CONNECT without auth, which walcast serve refuses, so this is
// one goroutine per connection on gorilla/websocket; the benchmarks print
// their own CPU to show it did not starve the server.
package authclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Clients is a set of connected clients counting one event.
type Clients struct {
	conns     []*websocket.Conn
	prefix    []byte
	delivered atomic.Int64
	broken    atomic.Int64
	closing   atomic.Bool
	wg        sync.WaitGroup
}

// Dial connects n clients to wsURL (a websocket-only Engine.IO URL), at
// most parallel handshakes at a time, each joining "/" with {token}; it
// returns once every namespace CONNECT was acknowledged. Frames starting
// with `42["<event>"` are counted.
func Dial(ctx context.Context, wsURL, token, event string, n, parallel int) (*Clients, error) {
	cs := &Clients{conns: make([]*websocket.Conn, n), prefix: []byte(`42["` + event + `"`)}
	sem := make(chan struct{}, parallel)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := joinNamespace(ctx, wsURL, token)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			cs.conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		cs.Close()
		return nil, err
	}
	for _, c := range cs.conns {
		cs.wg.Add(1)
		go cs.read(c)
	}
	return cs, nil
}

// Delivered is how many counted events arrived, over all clients.
func (cs *Clients) Delivered() int64 { return cs.delivered.Load() }

// Broken is how many connections ended before Close.
func (cs *Clients) Broken() int64 { return cs.broken.Load() }

// joinNamespace opens the websocket, reads the Engine.IO open packet, sends
// the namespace CONNECT with the token as auth payload (as socket.io-client's
// io(url, {auth: {token}}) does) and waits for its acknowledgement.
func joinNamespace(ctx context.Context, wsURL, token string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 512}
	c, resp, err := d.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, open, err := c.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		c.Close()
		return nil, fmt.Errorf("engine.io open packet %q: %v", open, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+token+`"}`)); err != nil {
		c.Close()
		return nil, fmt.Errorf("send namespace connect: %w", err)
	}
	_, msg, err := c.ReadMessage()
	if err != nil || !bytes.HasPrefix(msg, []byte("40")) {
		c.Close()
		return nil, fmt.Errorf("namespace connect answered %q: %v", msg, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// read counts events from the first bytes of each frame; gorilla discards
// the rest of the frame unparsed when the next one is requested.
func (cs *Clients) read(c *websocket.Conn) {
	defer cs.wg.Done()
	var head [32]byte
	for {
		_, r, err := c.NextReader()
		if err != nil {
			if !cs.closing.Load() {
				cs.broken.Add(1)
			}
			return
		}
		// ReadFull: a frame split across TCP reads still shows its prefix.
		n, _ := io.ReadFull(r, head[:])
		msg := head[:n]
		switch {
		case bytes.HasPrefix(msg, cs.prefix):
			cs.delivered.Add(1)
		case n == 1 && msg[0] == '2': // Engine.IO ping
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				cs.broken.Add(1)
				return
			}
		}
	}
}

// Close ends every connection and waits for the readers.
func (cs *Clients) Close() {
	cs.closing.Store(true)
	for _, c := range cs.conns {
		if c != nil {
			c.Close()
		}
	}
	cs.wg.Wait()
}
