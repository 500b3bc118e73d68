//go:build linux

package engineio

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller waits for input on idle WebSocket connections, all of them in one
// epoll set, so an idle connection holds no goroutine and no stack: the
// reader of a connection starts when the first bytes of a frame arrive and
// ends once none are left (see Session.readLoop). A connection is armed
// one-shot: after it reports, it stays quiet until its reader, done,
// arms it again, so there is never more than one reader per connection.
//
// Go's own poller keeps watching the same descriptors: a reader that has
// the start of a frame reads the rest through net.Conn, waiting there as
// any Go reader does (read deadlines apply), while the connection is not
// idle.
type poller struct {
	epfd int
	stop int // eventfd that ends run

	mu     sync.Mutex
	conns  map[uint64]*wsConn
	nextID uint64
	closed bool
	done   chan struct{}
}

// stopID marks the eventfd's events; connection ids start at 1.
const stopID = 0

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventID(&ev, stopID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(stop)
		return nil, fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	p := &poller{epfd: epfd, stop: stop, conns: make(map[uint64]*wsConn), done: make(chan struct{})}
	go p.run()
	return p, nil
}

func setEventID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// armEvents: input, the peer's FIN or an error, reported once.
const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// watch arms c so its reader starts (its session's readLoop, on a new
// goroutine)
// once input arrives, and reports whether it did: it does not when the
// connection has no descriptor of its own, is closed, or the poller is.
// Only c's reader, as its last step, or whoever owns c before any reader
// ran may call it.
func (p *poller) watch(c *wsConn) bool {
	if c.rc == nil {
		return false
	}
	// Held across epoll_ctl, so close cannot release the epoll set
	// while it is used.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	op := unix.EPOLL_CTL_MOD
	if c.pollID == 0 {
		p.nextID++
		c.pollID = p.nextID
		p.conns[c.pollID] = c
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: armEvents}
	setEventID(&ev, c.pollID)
	var cerr error
	// Under Control the descriptor cannot be closed and its number
	// handed to a new connection while epoll_ctl uses it.
	if err := c.rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev) }); err != nil || cerr != nil {
		delete(p.conns, c.pollID)
		return false
	}
	return true
}

// forget drops c; its descriptor leaves the epoll set when it is closed.
func (p *poller) forget(c *wsConn) {
	p.mu.Lock()
	if c.pollID != 0 && p.conns[c.pollID] == c {
		delete(p.conns, c.pollID)
	}
	p.mu.Unlock()
}

// watching is how many connections the poller holds.
func (p *poller) watching() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Not expected with a valid set; the connections still
			// armed are closed by their sessions' heartbeats.
			return
		}
		p.mu.Lock()
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == stopID {
				p.mu.Unlock()
				return
			}
			if c := p.conns[id]; c != nil {
				go c.sess.readLoop(c)
			}
		}
		p.mu.Unlock()
	}
}

// close stops the poller; connections still armed are the sessions' to
// close.
func (p *poller) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.stop, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.stop)
}
