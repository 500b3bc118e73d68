package loadclient

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walcast/walcast/bench/fanout/tick"
)

// readBuf is the per-wakeup read size: large enough that a socket with a
// backlog is drained in a few calls, small enough to stay in cache.
const readBuf = 64 << 10

type conn struct {
	fd        int
	pending   []byte // an incomplete frame carried to the next read
	joined    bool
	dead      bool
	sampleLat bool
}

type worker struct {
	pool  *Pool
	epfd  int
	conns []atomic.Pointer[conn] // index travels in the epoll event
	next  atomic.Int32
	stop  atomic.Bool

	delivered []atomic.Int64 // per rung
	events    atomic.Int64   // events named Config.Event
	eventHead []byte         // `42["<Config.Event>"`

	mu        sync.Mutex
	latencies map[int][]time.Duration // per rung, sampling connections only

	// scratch, owned by the run goroutine
	buf    []byte
	counts []int64
	nEvent int64
	out    []byte
}

func newWorker(p *Pool, capacity int) (*worker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var head []byte
	if p.cfg.Event != "" {
		head = []byte(`42["` + p.cfg.Event + `"`)
	}
	return &worker{
		pool:      p,
		eventHead: head,
		epfd:      epfd,
		conns:     make([]atomic.Pointer[conn], capacity),
		delivered: make([]atomic.Int64, p.cfg.MaxRungs),
		latencies: map[int][]time.Duration{},
		buf:       make([]byte, readBuf+maxFramePayload+14),
		counts:    make([]int64, p.cfg.MaxRungs),
	}, nil
}

// add registers an upgraded socket. leftover holds bytes read past the
// HTTP response (the Engine.IO open packet may already be among them).
func (w *worker) add(fd int, leftover []byte, sampleLat bool) error {
	i := int(w.next.Add(1) - 1)
	if i >= len(w.conns) {
		return fmt.Errorf("worker full (%d connections)", len(w.conns))
	}
	c := &conn{fd: fd, pending: leftover, sampleLat: sampleLat}
	w.conns[i].Store(c)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (w *worker) run() {
	if w.pool.cfg.ReadRate > 0 {
		w.runThrottled()
		return
	}
	events := make([]syscall.EpollEvent, 256)
	for !w.stop.Load() {
		n, err := syscall.EpollWait(w.epfd, events, 100)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.pool.cfg.Logger.Error("load client epoll_wait", "err", err)
			return
		}
		for _, ev := range events[:n] {
			c := w.conns[ev.Fd].Load()
			if c == nil || c.dead {
				continue
			}
			w.readFrom(c, readBuf)
		}
		w.flushCounts()
	}
}

// runThrottled serves slow clients: every 50 ms each connection may read
// its share of ReadRate, no more, whatever is waiting. Pings are answered
// when reading reaches them, as a browser on a thin link would.
func (w *worker) runThrottled() {
	const step = 50 * time.Millisecond
	budget := max(1, w.pool.cfg.ReadRate*int(step)/int(time.Second))
	t := time.NewTicker(step)
	defer t.Stop()
	for !w.stop.Load() {
		<-t.C
		n := min(int(w.next.Load()), len(w.conns))
		for i := 0; i < n; i++ {
			if c := w.conns[i].Load(); c != nil && !c.dead {
				w.readFrom(c, min(budget, readBuf))
			}
		}
		w.flushCounts()
	}
}

func (w *worker) flushCounts() {
	if w.nEvent != 0 {
		w.events.Add(w.nEvent)
		w.nEvent = 0
	}
	for r, n := range w.counts {
		if n != 0 {
			w.delivered[r].Add(n)
			w.counts[r] = 0
		}
	}
}

// readFrom reads at most limit bytes from c and handles the whole frames.
func (w *worker) readFrom(c *conn, limit int) {
	// Carry the incomplete frame to the front so a frame is always parsed
	// from one contiguous buffer; at most one frame's bytes are copied.
	k := copy(w.buf, c.pending)
	n, err := syscall.Read(c.fd, w.buf[k:k+limit])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err != nil || n == 0 {
		w.kill(c, fmt.Sprintf("read: n=%d err=%v", n, err))
		return
	}
	w.parse(c, w.buf[:k+n])
}

// parse consumes every complete frame in b and keeps the tail for later.
func (w *worker) parse(c *conn, b []byte) {
	for {
		op, payload, used, err := nextFrame(b)
		if err != nil {
			w.kill(c, err.Error())
			return
		}
		if used == 0 {
			break
		}
		b = b[used:]
		if !w.handle(c, op, payload) {
			return
		}
	}
	c.pending = append(c.pending[:0], b...)
}

// handle acts on one frame; false when the connection is gone.
func (w *worker) handle(c *conn, op byte, payload []byte) bool {
	switch op {
	case opText:
	case opPing:
		return w.send(c, opPong, payload)
	case opClose:
		w.kill(c, "close frame")
		return false
	default:
		return true // pong, binary: nothing to do
	}
	if len(payload) == 0 {
		return true
	}
	if w.pool.cfg.Protocol == Centrifuge {
		// Several messages may share a frame, one per line.
		for len(payload) > 0 {
			msg, rest, _ := bytes.Cut(payload, []byte{'\n'})
			if !w.handleCentrifuge(c, msg) {
				return false
			}
			payload = rest
		}
		return true
	}
	switch payload[0] {
	case '4': // Engine.IO message: a Socket.IO packet follows
		if len(payload) > 1 && payload[1] == '2' {
			if w.eventHead != nil && bytes.HasPrefix(payload, w.eventHead) {
				w.nEvent++
				return true
			}
			w.countTick(c, payload)
			return true
		}
		if len(payload) > 1 && payload[1] == '0' && !c.joined {
			c.joined = true
			w.pool.connected.Add(1)
			return true
		}
		if len(payload) > 1 && (payload[1] == '4' || payload[1] == '1') {
			w.kill(c, fmt.Sprintf("socket.io packet %q", payload))
			return false
		}
		return true
	case '2': // Engine.IO ping
		return w.send(c, opText, []byte("3"))
	case '1': // Engine.IO close
		w.kill(c, "engine.io close")
		return false
	}
	return true
}

// handleCentrifuge acts on one Centrifuge JSON message; false when the
// connection is gone.
func (w *worker) handleCentrifuge(c *conn, msg []byte) bool {
	switch {
	case bytes.HasPrefix(msg, []byte(`{"push":{"channel":`)):
		rung, ts, err := tick.PushHeader(msg)
		w.count(c, rung, ts, err, bytes.HasPrefix(msg, []byte(tick.PushPrefix)))
	case string(msg) == "{}": // server ping: the pong is an empty command
		return w.send(c, opText, []byte("{}"))
	case bytes.HasPrefix(msg, []byte(`{"id":2,"subscribe":`)) && !c.joined:
		c.joined = true
		w.pool.connected.Add(1)
	case bytes.HasPrefix(msg, []byte(`{"id":1,"connect":`)):
	case bytes.HasPrefix(msg, []byte(`{"push":{"disconnect":`)), bytes.Contains(msg, []byte(`"error":`)):
		w.kill(c, fmt.Sprintf("centrifuge message %q", msg))
		return false
	}
	return true
}

func (w *worker) countTick(c *conn, payload []byte) {
	rung, ts, err := tick.Header(payload)
	w.count(c, rung, ts, err, bytes.HasPrefix(payload, []byte(`42["tick"`)))
}

// count counts one tick of rung, sent at ts (wall clock, ns). A message
// that claims to be a tick (ours) but cannot be read, or whose rung is out
// of range, is a stray; one that is not a tick at all is ignored.
func (w *worker) count(c *conn, rung int, ts int64, err error, ours bool) {
	if err != nil || rung >= len(w.counts) {
		if ours {
			w.pool.strays.Add(1)
		}
		return
	}
	w.counts[rung]++
	if c.sampleLat {
		d := time.Duration(time.Now().UnixNano() - ts)
		w.mu.Lock()
		w.latencies[rung] = append(w.latencies[rung], d)
		w.mu.Unlock()
	}
}

func (w *worker) send(c *conn, op byte, payload []byte) bool {
	key := rand.Uint32()
	w.out = appendClientFrame(w.out[:0], op, payload, [4]byte{byte(key), byte(key >> 8), byte(key >> 16), byte(key >> 24)})
	// A few bytes into a socket buffer we keep empty: a short write means the
	// peer stopped reading, which the benchmark treats like a broken socket.
	n, err := syscall.Write(c.fd, w.out)
	if err != nil || n != len(w.out) {
		w.kill(c, fmt.Sprintf("write: n=%d err=%v", n, err))
		return false
	}
	return true
}

func (w *worker) kill(c *conn, reason string) {
	if c.dead {
		return
	}
	c.dead = true
	c.pending = nil
	syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	syscall.Close(c.fd)
	if !w.stop.Load() {
		w.pool.closed.Add(1)
		w.pool.cfg.Logger.Debug("load client connection closed", "reason", reason)
	}
}

// closeAll runs after run has returned.
func (w *worker) closeAll() {
	for i := range w.conns {
		if c := w.conns[i].Load(); c != nil && !c.dead {
			c.dead = true
			syscall.Close(c.fd)
		}
	}
	syscall.Close(w.epfd)
}
