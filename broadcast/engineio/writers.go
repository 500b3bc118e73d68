package engineio

import (
	"sync"
	"time"
)

// writeShard is one of the server's writer goroutines (one per CPU). A
// WebSocket session with something new to send is marked due on its shard,
// whose goroutine writes the session's queue without waiting
// (Session.drainLocked): a delivery costs one system call and no goroutine
// of its own, and a broadcast's writes run on every CPU at once. While the
// shard works through one broadcast the next ones queue in the sessions,
// so under load each socket gets several packets per system call, the
// batching a per-socket writer would have had. A socket whose kernel
// buffer is full is handed to a goroutine of its own that waits for the
// client.
//
// With Config.WriteDelay the shard waits that long before each pass, so
// events that follow within it leave in the same write.
type writeShard struct {
	delay time.Duration
	raw   *rawWriter // the goroutine's scratch space for writing

	mu      sync.Mutex
	due     []*Session
	spare   []*Session
	running bool // the goroutine is awake and will see what is added
	started bool // the goroutine exists: from the first add on
	closed  bool
	wake    chan struct{}
}

func newWriteShards(n int, delay time.Duration) []*writeShard {
	shards := make([]*writeShard, n)
	for i := range shards {
		shards[i] = &writeShard{delay: delay, raw: newRawWriter(), wake: make(chan struct{}, 1)}
	}
	return shards
}

// add marks s due; its caller holds s.mu and has set s.writing for the
// shard. It reports false once the server closed the shard: the caller
// then starts a writer goroutine itself.
func (w *writeShard) add(s *Session) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.due = append(w.due, s)
	idle := !w.running
	w.running = true
	if !w.started {
		w.started = true
		go w.run()
	}
	w.mu.Unlock()
	if idle {
		// Sent only on the change to running, so never more than one is
		// pending and this never blocks.
		w.wake <- struct{}{}
	}
	return true
}

func (w *writeShard) run() {
	for range w.wake {
		for {
			if w.delay > 0 {
				time.Sleep(w.delay)
			}
			w.mu.Lock()
			due := w.due
			if len(due) == 0 {
				w.running = false
				closed := w.closed
				w.mu.Unlock()
				if closed {
					return
				}
				break
			}
			w.due = w.spare[:0]
			w.spare = nil
			w.mu.Unlock()
			for i, s := range due {
				s.mu.Lock()
				s.drainLocked(s.ws, w.raw)
				due[i] = nil
			}
			w.mu.Lock()
			if w.spare == nil {
				w.spare = due[:0]
			}
			w.mu.Unlock()
		}
	}
}

// close ends the goroutine once what is due is written.
func (w *writeShard) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	idle := w.started && !w.running
	w.running = true
	w.mu.Unlock()
	if idle {
		w.wake <- struct{}{}
	}
}
