// Package loadclient is the benchmark's cheap Socket.IO client: thousands of
// WebSocket connections speaking just enough Engine.IO v4 / Socket.IO v5 to
// join the default namespace, answer pings and count "tick" events; or, for
// the Centrifuge reference server, just enough of Centrifuge's JSON protocol
// to connect, subscribe to the one channel, answer pings and count the
// pushes of tick publications.
//
// It exists so the client is not the bottleneck when a server's fan-out is
// measured on a small machine. Each worker goroutine owns many connections
// and waits on them with one epoll set (level-triggered), reading up to
// 64 KiB per wakeup into a shared buffer; a message is counted after looking
// at its first few dozen bytes, never JSON-parsed. Connections are raw
// non-blocking sockets, not net.Conn, so Go's own poller does no per-message
// work for them. Linux only, IPv4 loopback is what it is meant for.
package loadclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config says where to connect and how to spread the work.
type Config struct {
	Addr string // "127.0.0.1:port"
	// Protocol is SocketIO (the default) or Centrifuge.
	Protocol Protocol
	// Path is the WebSocket endpoint, default "/socket.io/" for Socket.IO
	// and "/connection/websocket" for Centrifuge.
	Path string
	// Workers is the number of epoll goroutines sharing the connections.
	// Default 2.
	Workers int
	// DialParallel bounds concurrent handshakes during the ramp. Default 64.
	DialParallel int
	// MaxRungs bounds the rung numbers counted separately; events of higher
	// rungs are counted as strays. Default 64.
	MaxRungs int
	// LatencyEvery makes every n-th connection record the send-to-receive
	// latency of each tick it gets (0: none).
	LatencyEvery int
	// ReadRate, when > 0, makes every connection a slow reader: it reads at
	// most this many bytes per second, through a small receive buffer, so a
	// server sending faster sees back-pressure within kilobytes. Such a
	// pool is served by a timer, not epoll.
	ReadRate int
	// Auth is the JSON object sent with the namespace CONNECT (for example
	// {"token":"..."} for a server that authenticates sockets); nil sends a
	// bare CONNECT.
	Auth []byte
	// Event, when set, counts every event of that name (any payload) in
	// Events, for servers whose events are not the benchmark's ticks.
	Event  string
	Logger *slog.Logger
}

// Protocol is what a pool's connections speak.
type Protocol int

const (
	// SocketIO is Engine.IO v4 / Socket.IO v5 on the default namespace.
	SocketIO Protocol = iota
	// Centrifuge is Centrifuge's JSON protocol (v2): connect, then
	// subscribe to channel "bench", whose publications are ticks.
	Centrifuge
)

// centrifugeJoin is what a Centrifuge client sends once upgraded: the
// connect and subscribe commands, newline-delimited in one frame.
const centrifugeJoin = `{"id":1,"connect":{}}` + "\n" + `{"id":2,"subscribe":{"channel":"bench"}}`

func (c *Config) applyDefaults() {
	if c.Path == "" {
		c.Path = "/socket.io/"
		if c.Protocol == Centrifuge {
			c.Path = "/connection/websocket"
		}
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.DialParallel <= 0 {
		c.DialParallel = 64
	}
	if c.MaxRungs <= 0 {
		c.MaxRungs = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Pool is a set of connected clients.
type Pool struct {
	cfg     Config
	workers []*worker

	connected atomic.Int64 // sessions that got the namespace CONNECT ("40")
	closed    atomic.Int64 // sessions the server closed or broke
	strays    atomic.Int64 // tick events of rungs >= MaxRungs, or unreadable

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Dial connects n clients to the default namespace and returns once every
// one of them has been acknowledged with "40", or fails when ctx ends first.
func Dial(ctx context.Context, cfg Config, n int) (*Pool, error) {
	cfg.applyDefaults()
	addr, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil || !addr.Addr().Is4() {
		return nil, fmt.Errorf("load client address %q: want an IPv4 ip:port", cfg.Addr)
	}
	p := &Pool{cfg: cfg}
	per := (n + cfg.Workers - 1) / cfg.Workers
	for i := 0; i < cfg.Workers; i++ {
		w, err := newWorker(p, per)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			w.run()
		}()
	}

	if err := p.ramp(ctx, addr, n); err != nil {
		p.Close()
		return nil, err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.connected.Load() < int64(n) {
		select {
		case <-ctx.Done():
			got := p.connected.Load()
			p.Close()
			return nil, fmt.Errorf("connect %d clients: only %d joined the namespace (%d closed): %w", n, got, p.closed.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return p, nil
}

// ramp performs the HTTP upgrades in parallel batches and hands each socket
// to a worker, round robin.
func (p *Pool) ramp(ctx context.Context, addr netip.AddrPort, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(p.cfg.DialParallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				rcvbuf := 0
				if p.cfg.ReadRate > 0 {
					rcvbuf = 4096 // the kernel doubles it
				}
				fd, leftover, err := handshakeRetrying(ctx, addr, p.cfg.Protocol, p.cfg.Path, rcvbuf, p.cfg.Auth)
				if err != nil {
					cancel(fmt.Errorf("client %d: %w", i, err))
					continue
				}
				w := p.workers[i%len(p.workers)]
				if err := w.add(fd, leftover, p.cfg.LatencyEvery > 0 && i%p.cfg.LatencyEvery == 0); err != nil {
					syscall.Close(fd)
					cancel(fmt.Errorf("client %d: %w", i, err))
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("connect %d clients: %w", n, err)
	}
	return nil
}

// Connected is the number of sessions that joined the namespace.
func (p *Pool) Connected() int64 { return p.connected.Load() }

// Closed is the number of sessions the server closed (or that broke).
func (p *Pool) Closed() int64 { return p.closed.Load() }

// Strays is the number of tick events that could not be given a rung.
func (p *Pool) Strays() int64 { return p.strays.Load() }

// Delivered is the number of tick events of rung received so far, summed
// over all connections.
func (p *Pool) Delivered(rung int) int64 {
	if rung < 0 || rung >= p.cfg.MaxRungs {
		return 0
	}
	var sum int64
	for _, w := range p.workers {
		sum += w.delivered[rung].Load()
	}
	return sum
}

// Events is the number of events named Config.Event received so far,
// summed over all connections.
func (p *Pool) Events() int64 {
	var sum int64
	for _, w := range p.workers {
		sum += w.events.Load()
	}
	return sum
}

// Latencies returns the send-to-receive latencies recorded for rung by the
// sampling connections, sorted ascending.
func (p *Pool) Latencies(rung int) []time.Duration {
	var all []time.Duration
	for _, w := range p.workers {
		w.mu.Lock()
		all = append(all, w.latencies[rung]...)
		w.mu.Unlock()
	}
	slices.Sort(all)
	return all
}

// Close closes every connection and stops the workers.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		for _, w := range p.workers {
			w.stop.Store(true)
		}
		p.wg.Wait()
		for _, w := range p.workers {
			w.closeAll()
		}
	})
}

// handshake opens a TCP socket, performs the WebSocket upgrade for an
// Engine.IO websocket-only session, sends the namespace CONNECT and returns
// the socket in non-blocking mode with the bytes read past the open packet.
// For Centrifuge it upgrades and sends the connect and subscribe commands.
// rcvbuf > 0 sets SO_RCVBUF before connecting; auth, when set, travels in
// the CONNECT packet.
func handshake(addr netip.AddrPort, proto Protocol, path string, rcvbuf int, auth []byte) (fd int, leftover []byte, err error) {
	fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if err != nil {
			syscall.Close(fd)
		}
	}()
	if rcvbuf > 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf); err != nil {
			return -1, nil, fmt.Errorf("set receive buffer: %w", err)
		}
	}
	tv := syscall.NsecToTimeval(int64(10 * time.Second))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return -1, nil, fmt.Errorf("set receive timeout: %w", err)
	}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv); err != nil {
		return -1, nil, fmt.Errorf("set send timeout: %w", err)
	}
	if err := connect(fd, addr); err != nil {
		return -1, nil, fmt.Errorf("connect %v: %w", addr, err)
	}
	key, accept := newWebSocketKey()
	target := path + "?EIO=4&transport=websocket"
	if proto == Centrifuge {
		target = path
	}
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + addr.String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if err := writeAll(fd, []byte(req)); err != nil {
		return -1, nil, fmt.Errorf("send upgrade request: %w", err)
	}
	resp, rest, err := readResponseHead(fd)
	if err != nil {
		return -1, nil, fmt.Errorf("read upgrade response: %w", err)
	}
	if err := checkUpgradeResponse(resp, accept); err != nil {
		return -1, nil, err
	}
	if proto == Centrifuge {
		// The replies are read by the worker.
		if err := writeAll(fd, appendClientFrame(nil, opText, []byte(centrifugeJoin), [4]byte{1, 2, 3, 4})); err != nil {
			return -1, nil, fmt.Errorf("send connect and subscribe: %w", err)
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			return -1, nil, fmt.Errorf("set non-blocking: %w", err)
		}
		return fd, rest, nil
	}
	// Join the default namespace once the Engine.IO open packet is in, as
	// socket.io-client does; the namespace's answer is read by the worker.
	rest, err = readOpenPacket(fd, rest)
	if err != nil {
		return -1, nil, err
	}
	if err := writeAll(fd, appendClientFrame(nil, opText, append([]byte("40"), auth...), [4]byte{1, 2, 3, 4})); err != nil {
		return -1, nil, fmt.Errorf("send namespace connect: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return -1, nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, rest, nil
}

// errTryLater marks a handshake the server refused for now (429, 503):
// too many connections not yet authenticated, overall or from this
// address, as a burst of handshakes from one load client can be.
var errTryLater = errors.New("server busy, try later")

// handshakeRetrying retries a handshake refused for now, as the official
// client does after its reconnection delay, for up to a minute.
func handshakeRetrying(ctx context.Context, addr netip.AddrPort, proto Protocol, path string, rcvbuf int, auth []byte) (int, []byte, error) {
	delay := 50 * time.Millisecond
	for deadline := time.Now().Add(time.Minute); ; {
		fd, leftover, err := handshake(addr, proto, path, rcvbuf, auth)
		if err == nil || !errors.Is(err, errTryLater) || time.Now().After(deadline) {
			return fd, leftover, err
		}
		select {
		case <-ctx.Done():
			return -1, nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// connect connects the blocking socket fd. The Go runtime's preemption
// signals interrupt a blocking connect (EINTR is not restarted for it); the
// connection then completes on its own, and asking again answers EALREADY
// while it is under way and EISCONN once it is up.
func connect(fd int, addr netip.AddrPort) error {
	sa := &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := syscall.Connect(fd, sa)
		switch {
		case err == nil, err == syscall.EISCONN:
			return nil
		case err != syscall.EINTR && err != syscall.EALREADY:
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("still connecting after 10 s: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// readOpenPacket reads (blocking) until the first frame is complete, checks
// it is the Engine.IO open packet and returns the bytes after it.
func readOpenPacket(fd int, b []byte) ([]byte, error) {
	for {
		op, payload, used, err := nextFrame(b)
		if err != nil {
			return nil, fmt.Errorf("read open packet: %w", err)
		}
		if used > 0 {
			if op != opText || len(payload) == 0 || payload[0] != '0' {
				return nil, fmt.Errorf("first frame is not the Engine.IO open packet: %q", payload)
			}
			return b[used:], nil
		}
		more := make([]byte, 4096)
		n, err := syscall.Read(fd, more)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return nil, fmt.Errorf("read open packet: n=%d err=%v", n, err)
		}
		b = append(b, more[:n]...)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readResponseHead reads until the blank line ending the HTTP response head.
func readResponseHead(fd int) (head, rest []byte, err error) {
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= 16<<10 {
				return nil, nil, errors.New("response head over 16 KiB")
			}
			buf = slices.Grow(buf, len(buf))
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("connection closed after %d bytes: %q", len(buf), buf)
		}
		buf = buf[:len(buf)+n]
		if i := indexHeadEnd(buf); i >= 0 {
			return buf[:i], slices.Clone(buf[i:]), nil
		}
	}
}

func indexHeadEnd(b []byte) int {
	for i := 0; i+4 <= len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 4
		}
	}
	return -1
}
