package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// loadClients are the cheap websocket clients: enough Engine.IO v4 /
// Socket.IO v5 to authenticate, answer pings and count events. The fan-out
// benchmark's epoll client (bench/fanout/loadclient) cannot send a CONNECT
// with auth, which walcast requires, so this one is a goroutine per
// connection on gorilla/websocket.
type loadClients struct {
	conns     []*websocket.Conn
	delivered atomic.Int64 // donation:update events received
	broken    atomic.Int64 // connections that ended before Close
	closing   atomic.Bool
	wg        sync.WaitGroup
}

var eventPrefix = []byte(`42["donation:update"`)

func dialLoad(ctx context.Context, wsURL, token string, n, parallel int) (*loadClients, error) {
	lc := &loadClients{conns: make([]*websocket.Conn, n)}
	sem := make(chan struct{}, parallel)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialOne(ctx, wsURL, token)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			lc.conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		lc.Close()
		return nil, err
	}
	for _, c := range lc.conns {
		lc.wg.Add(1)
		go lc.read(c)
	}
	return lc, nil
}

// dialOne opens a websocket, reads the Engine.IO open packet, joins the
// default namespace with {token} and waits for the namespace's CONNECT.
func dialOne(ctx context.Context, wsURL, token string) (*websocket.Conn, error) {
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
		return nil, fmt.Errorf("send connect: %w", err)
	}
	_, msg, err := c.ReadMessage()
	if err != nil || !bytes.HasPrefix(msg, []byte("40")) {
		c.Close()
		return nil, fmt.Errorf("namespace connect answered %q: %v", msg, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func (lc *loadClients) read(c *websocket.Conn) {
	defer lc.wg.Done()
	var head [32]byte
	for {
		_, r, err := c.NextReader()
		if err != nil {
			if !lc.closing.Load() {
				lc.broken.Add(1)
			}
			return
		}
		n, _ := r.Read(head[:])
		msg := head[:n]
		switch {
		case bytes.HasPrefix(msg, eventPrefix):
			lc.delivered.Add(1)
		case len(msg) == 1 && msg[0] == '2': // Engine.IO ping
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				lc.broken.Add(1)
				return
			}
		}
	}
}

func (lc *loadClients) Close() {
	lc.closing.Store(true)
	for _, c := range lc.conns {
		if c != nil {
			c.Close()
		}
	}
	lc.wg.Wait()
}
