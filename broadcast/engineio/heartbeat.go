package engineio

import (
	"sync"
	"time"
)

// heartbeats schedules every session's next ping and pong deadline with
// two queues and one timer each, instead of a timer per session (a timer
// is the largest thing an idle session would hold after its buffers).
// Every session waits the same PingInterval for its ping and, from when
// its ping was due, the same PingTimeout for its pong, so each queue is in
// deadline order as it is appended to.
//
// A session has at most one live entry, in one of the queues; rescheduling
// bumps the session's hbGen, which leaves the old entry stale, and closing
// clears the entry so a closed session is not kept alive until its
// deadline.
type heartbeats struct {
	ping, pong hbQueue
}

func newHeartbeats(onPing, onPongDue func(*Session, uint32)) *heartbeats {
	h := &heartbeats{}
	h.ping.init(onPing)
	h.pong.init(onPongDue)
	return h
}

// hbQueue is one deadline queue: entries in order of due, each naming a
// session and the generation of its schedule it belongs to.
type hbQueue struct {
	base time.Time // dues are nanoseconds since base (monotonic)
	fn   func(*Session, uint32)

	mu      sync.Mutex
	items   []hbItem
	head    int
	first   uint64 // sequence number of items[0]
	timer   *time.Timer
	armedAt int64 // due the timer is set for; -1 when it is stopped
}

type hbItem struct {
	s   *Session // nil once cancelled
	gen uint32
	due int64
}

func (q *hbQueue) init(fn func(*Session, uint32)) {
	q.base = time.Now()
	q.fn = fn
	q.armedAt = -1
	q.timer = time.AfterFunc(time.Hour, q.fire)
	q.timer.Stop()
}

// push schedules fn(s, gen) at due and returns the entry's sequence number
// (for cancel). Dues must not decrease from one push to the next, give or
// take the moment between taking the time and pushing: an entry waits for
// the ones before it.
func (q *hbQueue) push(s *Session, gen uint32, due time.Time) uint64 {
	d := int64(due.Sub(q.base))
	q.mu.Lock()
	defer q.mu.Unlock()
	seq := q.first + uint64(len(q.items))
	q.items = append(q.items, hbItem{s: s, gen: gen, due: d})
	if q.armedAt < 0 || d < q.armedAt {
		q.armedAt = d
		q.timer.Reset(time.Until(due))
	}
	return seq
}

// cancel forgets the entry seq of s, if it is still queued.
func (q *hbQueue) cancel(s *Session, seq uint64) {
	q.mu.Lock()
	if seq >= q.first+uint64(q.head) && seq < q.first+uint64(len(q.items)) {
		if it := &q.items[seq-q.first]; it.s == s {
			it.s = nil
		}
	}
	q.mu.Unlock()
}

func (q *hbQueue) fire() {
	now := int64(time.Since(q.base))
	var due []hbItem
	q.mu.Lock()
	// Cancelled entries go whatever their due: they must not hold back
	// the live ones behind them.
	for q.head < len(q.items) && (q.items[q.head].due <= now || q.items[q.head].s == nil) {
		if it := q.items[q.head]; it.s != nil {
			due = append(due, it)
		}
		q.items[q.head] = hbItem{}
		q.head++
	}
	if q.head == len(q.items) {
		q.first += uint64(len(q.items))
		q.items, q.head = q.items[:0], 0
		q.armedAt = -1
	} else {
		if q.head > len(q.items)/2 {
			n := copy(q.items, q.items[q.head:])
			clear(q.items[n:])
			q.first += uint64(q.head)
			q.items, q.head = q.items[:n], 0
		}
		q.armedAt = q.items[q.head].due
		q.timer.Reset(time.Duration(q.armedAt - now))
	}
	q.mu.Unlock()
	for _, it := range due {
		q.fn(it.s, it.gen)
	}
}
