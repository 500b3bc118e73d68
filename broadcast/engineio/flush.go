package engineio

import (
	"sync"
	"time"
)

// flusher starts the writers of sessions whose writes were held back by
// Config.WriteDelay: one timer per server, not per session, armed by the
// first session that becomes due and firing once for all sessions due by
// then.
type flusher struct {
	delay time.Duration

	mu    sync.Mutex
	due   []*Session
	spare []*Session
	armed bool
	timer *time.Timer
}

func newFlusher(delay time.Duration) *flusher {
	f := &flusher{delay: delay}
	f.timer = time.AfterFunc(time.Hour, f.fire)
	f.timer.Stop()
	return f
}

// add queues s, whose writing flag its caller has set: the writer is
// reserved for the flusher, so every later Send and close leaves the
// writing to it, as they would to a running writer.
func (f *flusher) add(s *Session) {
	f.mu.Lock()
	f.due = append(f.due, s)
	if !f.armed {
		f.armed = true
		f.timer.Reset(f.delay)
	}
	f.mu.Unlock()
}

func (f *flusher) fire() {
	f.mu.Lock()
	due := f.due
	f.due = f.spare[:0]
	f.spare = nil
	f.armed = false
	f.mu.Unlock()
	for i, s := range due {
		s.mu.Lock()
		s.startWriterLocked(s.ws)
		s.mu.Unlock()
		due[i] = nil
	}
	f.mu.Lock()
	if f.spare == nil {
		f.spare = due[:0]
	}
	f.mu.Unlock()
}
