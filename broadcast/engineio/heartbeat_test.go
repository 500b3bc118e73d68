package engineio

import (
	"sync"
	"testing"
	"time"
)

func TestHeartbeatQueueFiresInOrderAndSkipsCancelled(t *testing.T) {
	var mu sync.Mutex
	var fired []uint32
	done := make(chan struct{})
	var q hbQueue
	q.init(func(_ *Session, gen uint32) {
		mu.Lock()
		fired = append(fired, gen)
		if len(fired) == 3 {
			close(done)
		}
		mu.Unlock()
	})
	sessions := make([]*Session, 4)
	seqs := make([]uint64, 4)
	start := time.Now()
	for i := range sessions {
		sessions[i] = &Session{}
		seqs[i] = q.push(sessions[i], uint32(i), start.Add(time.Duration(10*(i+1))*time.Millisecond))
	}
	q.cancel(sessions[2], seqs[2])
	q.cancel(sessions[1], seqs[0]) // another session's entry: no effect
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("entries did not fire")
	}
	time.Sleep(30 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(fired) != 3 || fired[0] != 0 || fired[1] != 1 || fired[2] != 3 {
		t.Fatalf("fired %v, want [0 1 3]", fired)
	}
	if elapsed := time.Since(start); elapsed < 40*time.Millisecond {
		t.Fatalf("the last entry fired after %v, before its due", elapsed)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) != 0 || q.armedAt != -1 {
		t.Fatalf("queue not empty after firing: %d items, armed %d", len(q.items), q.armedAt)
	}
}

// TestHeartbeatQueueLetsClosedSessionsGo: a cancelled entry no longer
// refers to its session, and the queue stays bounded by the live entries
// while it keeps firing.
func TestHeartbeatQueueLetsClosedSessionsGo(t *testing.T) {
	var q hbQueue
	fired := make(chan uint32, 1000)
	q.init(func(_ *Session, gen uint32) { fired <- gen })
	s := &Session{}
	seq := q.push(s, 1, time.Now().Add(time.Hour))
	q.cancel(s, seq)
	q.mu.Lock()
	if q.items[0].s != nil {
		t.Fatal("a cancelled entry still refers to its session")
	}
	q.mu.Unlock()
	for i := range 200 {
		q.push(&Session{}, uint32(i), time.Now().Add(time.Millisecond))
		<-fired
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 2 {
		t.Fatalf("%d entries kept for one live schedule", len(q.items))
	}
}
