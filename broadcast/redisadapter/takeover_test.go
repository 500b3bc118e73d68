package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

type rawSession struct {
	c                *siotest.Conn
	SID, PID, offset string
}

// connectRaw connects to a startRecoveryServer instance as user alice
// (resuming pid at offset when given), and waits for its "welcome"
// broadcast, which carries an offset.
func connectRaw(t *testing.T, url, pid, offset string) (*rawSession, time.Duration) {
	t.Helper()
	c, err := siotest.Dial(strings.TrimPrefix(url, "http://"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	auth, _ := json.Marshal(map[string]string{"token": "alice", "pid": pid, "offset": offset})
	start := time.Now()
	reply, err := c.Connect("/", string(auth))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	s := &rawSession{c: c}
	if err := json.Unmarshal([]byte(reply[1:]), s); err != nil || s.SID == "" {
		t.Fatalf("CONNECT reply %s: %v", reply, err)
	}
	args := s.read(t, "welcome")
	if len(args) != 2 || json.Unmarshal(args[1], &s.offset) != nil {
		t.Fatalf("welcome without an offset: %s", args)
	}
	return s, took
}

// read returns the arguments of the next event named name.
func (s *rawSession) read(t *testing.T, name string) []json.RawMessage {
	t.Helper()
	want, _ := json.Marshal(name)
	for {
		text, err := s.c.ReadText(waitTimeout)
		if err != nil {
			t.Fatalf("waiting for %q: %v", name, err)
		}
		var args []json.RawMessage
		if strings.HasPrefix(text, "2") && json.Unmarshal([]byte(text[1:]), &args) == nil && len(args) > 0 && string(args[0]) == string(want) {
			return args
		}
	}
}

// TestStreamsTakeover: a client resumes on instance B the session whose old
// socket is still connected on instance A; A closes that socket within
// about a second (no DISCONNECT packet, the session kept), B keeps its new
// socket with the same id, and events reach it exactly once.
func TestStreamsTakeover(t *testing.T) {
	_, rc := startRedis(t)
	srvA, urlA := startRecoveryServer(t, newStreams(t, rc, StreamsOptions{}))
	srvB, urlB := startRecoveryServer(t, newStreams(t, rc, StreamsOptions{}))
	old, _ := connectRaw(t, urlA, "", "")

	closed := make(chan time.Time, 1)
	go func() {
		for {
			text, err := old.c.ReadText(waitTimeout)
			if errors.Is(err, siotest.ErrClosed) {
				closed <- time.Now()
				return
			}
			if err != nil || strings.HasPrefix(text, "1") {
				t.Errorf("old socket: %q %v, want the connection closed without a DISCONNECT packet", text, err)
				close(closed)
				return
			}
		}
	}()
	// The session was saved before the CONNECT reply left: a client that
	// knows its pid can resume at once.
	if st, err := srvA.Sockets().Adapter().(*StreamsAdapter).LoadSession(context.Background(), old.PID); err != nil || st == nil {
		t.Fatalf("session %s not stored when its CONNECT reply arrived: %v", old.PID, err)
	}
	start := time.Now()
	fresh, _ := connectRaw(t, urlB, old.PID, old.offset)
	if fresh.SID != old.SID || fresh.PID != old.PID {
		t.Fatalf("not resumed on B: sid %s pid %s, want %s %s", fresh.SID, fresh.PID, old.SID, old.PID)
	}
	var at time.Time
	select {
	case at = <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("A did not close the taken-over socket")
	}
	if at.IsZero() {
		return // reported above
	}
	took := at.Sub(start)
	t.Logf("A closed the old socket %v after the resume on B began", took)
	if took > 2*time.Second {
		t.Errorf("A took %v to close the old socket, want about a second at most", took)
	}
	if srvA.Sockets().Socket(old.SID) != nil {
		t.Error("the old socket is still registered on A")
	}
	// B's own notice must not touch B's socket, which has the same id.
	if err := srvA.Sockets().To(old.SID).Emit("after", 1); err != nil {
		t.Fatal(err)
	}
	fresh.read(t, "after")
	if err := srvB.Sockets().Emit("fence", 2); err != nil {
		t.Fatal(err)
	}
	fresh.read(t, "fence") // "after" came once: a second copy would arrive before this
	if srvB.Sockets().Socket(old.SID) == nil {
		t.Fatal("B's resumed socket was closed")
	}
	// Neither dropped nor overwritten by A: generation 1, B's save.
	ad := srvB.Sockets().Adapter().(*StreamsAdapter)
	deadline := time.Now().Add(waitTimeout)
	for {
		st, err := ad.LoadSession(context.Background(), old.PID)
		if err == nil && st != nil && st.Gen == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored session %+v %v, want generation 1", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ttl, err := ad.SessionTTL(context.Background(), old.PID); err != nil || ttl <= 0 {
		t.Fatalf("session ttl %v %v, want > 0 while connected", ttl, err)
	}
	if ttl, err := ad.SessionTTL(context.Background(), "no-such-pid"); err != nil || ttl != 0 {
		t.Fatalf("unknown session ttl %v %v, want 0", ttl, err)
	}
}

// TestTakeoverNoticeUnseenByNode: with a Node streams-adapter server and a
// Node redis-adapter (pub/sub) server on the same Redis, a takeover notice
// reaches the walcast instances only: PUBLISH counts every receiver,
// pattern subscribers included, and Node's channel and pattern
// subscriptions do not match the notice's channel.
func TestTakeoverNoticeUnseenByNode(t *testing.T) {
	redisSrv, rc := startRedis(t)
	srvA, _ := startRecoveryServer(t, newStreams(t, rc, StreamsOptions{}))
	startRecoveryServer(t, newStreams(t, rc, StreamsOptions{}))
	node1, _ := nodeServer(t, redisSrv.URL(), "streams")
	node2, _ := nodeServer(t, redisSrv.URL(), "pubsub")
	ctx := context.Background()
	// The Node servers are subscribed: the streams one on the public
	// channel (beside the two walcast instances), the pub/sub one with its
	// pattern. Node prints "ready" once it listens, and its adapters
	// subscribe without waiting for that, so the counts are polled.
	deadline := time.Now().Add(waitTimeout)
	for {
		subs, errSub := rc.PubSubNumSub(ctx, "socket.io#/#").Result()
		pats, errPat := rc.PubSubNumPat(ctx).Result()
		if errSub == nil && errPat == nil && subs["socket.io#/#"] == 3 && pats >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NUMSUB socket.io#/# = %v (%v), NUMPAT = %d (%v); want 3 and the Node pub/sub adapter's pattern", subs, errSub, pats, errPat)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ad := srvA.Sockets().Adapter().(*StreamsAdapter)
	ch := ad.streams.takeoverChannel("/")
	got, err := rc.Publish(ctx, ch, `{"uid":"x","sid":"none","gen":1}`).Result()
	if err != nil || got != 2 {
		t.Fatalf("takeover notice received by %d clients (%v), want the 2 walcast instances only", got, err)
	}
	if err := ad.NotifyTakeover(ctx, "none", 1); err != nil {
		t.Fatal(err)
	}
	// Both Node servers are still there and answering (socketsJoin goes
	// through the stream, or the pub/sub request channel).
	for _, p := range []*nodeProc{node1, node2} {
		p.do(map[string]any{"op": "join", "rooms": []string{"nobody"}, "join": []string{"r"}})
	}
}
