package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// probe is one extra websocket client that reads every donation:update in
// full and notes when the event of each transaction arrived; the writer's
// commit times turn that into commit-to-delivery lag. The counting clients
// (authclient) only look at a frame's first bytes, which keeps them cheap;
// one probe per instance is enough for the lag, the counters for the totals.
type probe struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	tag     []byte // `"notes":"<tag>:` of the current rung
	arrived []arrival
	done    chan struct{}
}

type arrival struct {
	seq int64
	at  time.Time
}

func dialProbe(ctx context.Context, wsURL, token string) (*probe, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		return nil, fmt.Errorf("probe dial: %w", err)
	}
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, open, err := c.ReadMessage(); err != nil || len(open) == 0 || open[0] != '0' {
		c.Close()
		return nil, fmt.Errorf("probe: engine.io open packet %q: %v", open, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+token+`"}`)); err != nil {
		c.Close()
		return nil, fmt.Errorf("probe: send namespace connect: %w", err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || !bytes.HasPrefix(msg, []byte("40")) {
		c.Close()
		return nil, fmt.Errorf("probe: namespace connect answered %q: %v", msg, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	p := &probe{conn: c, done: make(chan struct{})}
	go p.read()
	return p, nil
}

// expect starts a rung: events of tag are recorded from now on, earlier
// records are dropped.
func (p *probe) expect(tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tag = []byte(`"notes":"` + tag + `:`)
	p.arrived = p.arrived[:0]
}

// count is how many events of the current rung arrived.
func (p *probe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.arrived)
}

// arrivals is a copy of the current rung's records.
func (p *probe) arrivals() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]arrival(nil), p.arrived...)
}

func (p *probe) read() {
	defer close(p.done)
	for {
		_, msg, err := p.conn.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		if len(msg) == 1 && msg[0] == '2' { // Engine.IO ping
			if err := p.conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return
			}
			continue
		}
		p.mu.Lock()
		if seq, ok := seqOf(msg, p.tag); ok {
			p.arrived = append(p.arrived, arrival{seq: seq, at: at})
		}
		p.mu.Unlock()
	}
}

// seqOf finds the transaction number in an event frame whose notes start
// with tag (`"notes":"<tag>:`).
func seqOf(msg, tag []byte) (int64, bool) {
	if len(tag) == 0 {
		return 0, false
	}
	i := bytes.Index(msg, tag)
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(tag):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

func (p *probe) close() {
	_ = p.conn.Close()
	<-p.done
}
