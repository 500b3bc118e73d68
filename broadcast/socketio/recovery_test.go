package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

func recoveryServer(t *testing.T, rec *Recovery) (*Server, string) {
	t.Helper()
	srv := NewServer(Config{Recovery: rec})
	srv.Sockets().Use(func(s *Socket) error {
		var a struct{ User string }
		if json.Unmarshal(s.Handshake().Auth, &a) != nil || a.User == "" {
			return errors.New("no user")
		}
		s.SetData(a.User)
		return nil
	})
	srv.Sockets().OnConnection(func(s *Socket) {
		s.On("ask", func(s *Socket, _ Args, ack AckFunc) { _ = ack("answer") })
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return srv, strings.TrimPrefix(hs.URL, "http://")
}

func owner(s *Socket) string { u, _ := s.Data().(string); return u }

// TestOffsetOnlyOnBroadcasts: with recovery on, CONNECT carries a pid and
// broadcasts an extra last argument (the offset); direct emits and acks are
// unchanged. Without recovery nothing changes.
func TestOffsetOnlyOnBroadcasts(t *testing.T) {
	for _, on := range []bool{true, false} {
		var rec *Recovery
		if on {
			rec = &Recovery{Owner: owner}
		}
		srv, addr := recoveryServer(t, rec)
		c, err := siotest.Dial(addr, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := c.Connect("/", `{"user":"u1"}`)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(reply, `"pid":"`); got != on {
			t.Fatalf("recovery %v: CONNECT reply %s", on, reply)
		}
		var sid struct{ SID string }
		_ = json.Unmarshal([]byte(reply[1:]), &sid)
		s := srv.Sockets().Socket(sid.SID)
		if err := s.Emit("direct", 1); err != nil {
			t.Fatal(err)
		}
		if err := srv.Sockets().Emit("broadcast", 2); err != nil {
			t.Fatal(err)
		}
		if err := c.SendText(`21["ask"]`); err != nil {
			t.Fatal(err)
		}
		wantBroadcast := `2["broadcast",2]`
		if on {
			wantBroadcast = `2["broadcast",2,"`
		}
		for _, want := range []string{`2["direct",1]`, wantBroadcast, `31["answer"]`} {
			got, err := c.ReadText(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got != want && !(strings.HasSuffix(want, `"`) && strings.HasPrefix(got, want) && strings.HasSuffix(got, `"]`)) {
				t.Fatalf("recovery %v: got %s, want %s", on, got, want)
			}
		}
		_ = c.Close()
	}
}

// TestHistoryBounds: the memory history forgets by age and by bytes, and a
// restore from a forgotten offset fails.
func TestHistoryBounds(t *testing.T) {
	ev := func(arg string) *parser.Packet {
		return &parser.Packet{Type: parser.Event, Namespace: "/", ID: parser.NoID,
			Args: []json.RawMessage{json.RawMessage(`"e"`), json.RawMessage(arg)}}
	}
	st := &SessionState{SID: "s", PID: "p", Owner: "o", Rooms: []string{"s", "r"}}
	for _, tc := range []struct {
		name     string
		maxAge   time.Duration
		maxBytes int
		sleep    time.Duration
		wantOK   bool
		wantN    int
	}{
		{"kept", time.Minute, 1 << 20, 0, true, 2},
		{"aged out", 20 * time.Millisecond, 1 << 20, 50 * time.Millisecond, false, 0},
		{"over the byte cap", time.Minute, 300, 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(tc.maxAge, tc.maxBytes)
			_, first := h.add(ev(`0`), BroadcastOptions{})
			h.add(ev(`1`), BroadcastOptions{Rooms: []string{"r"}})
			h.add(ev(`2`), BroadcastOptions{Rooms: []string{"other"}})
			h.add(ev(`3`), BroadcastOptions{Except: []string{"r"}})
			h.add(ev(`"`+strings.Repeat("x", 200)+`"`), BroadcastOptions{})
			time.Sleep(tc.sleep)
			missed, ok := h.missedSince(st, first)
			if ok != tc.wantOK || len(missed) != tc.wantN {
				t.Fatalf("ok=%v missed=%d, want %v %d", ok, len(missed), tc.wantOK, tc.wantN)
			}
			if ok && string(missed[0].Packet.Args[1]) != `1` {
				t.Fatalf("first missed %s, want the room broadcast", missed[0].Packet.Args[1])
			}
		})
	}
}

// TestNoRestoreWithoutOwner: without an Owner hook no session is restored,
// whatever the client presents.
func TestNoRestoreWithoutOwner(t *testing.T) {
	srv, addr := recoveryServer(t, &Recovery{})
	c1, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c1.Connect("/", `{"user":"u1"}`)
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ SID, PID string }
	_ = json.Unmarshal([]byte(reply[1:]), &r)
	_ = srv.Sockets().Emit("e")
	text, err := c1.ReadText(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	_ = json.Unmarshal([]byte(text[1:]), &args)
	_ = c1.Close()
	c2, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	auth, _ := json.Marshal(map[string]string{"user": "u1", "pid": r.PID, "offset": args[len(args)-1]})
	reply, err = c2.Connect("/", string(auth))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(reply, r.SID) || strings.Contains(reply, r.PID) {
		t.Fatalf("restored without an owner hook: %s", reply)
	}
}

func FuzzRecoveryAuth(f *testing.F) {
	for _, s := range []string{`{}`, `{"pid":"a","offset":"b"}`, `{"pid":1,"offset":null}`, `[]`, `{"pid":"` + strings.Repeat("x", 100) + `","offset":"1-1"}`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, off := recoveryAuth(b)
		if len(pid) > 64 || len(off) > 64 {
			t.Fatalf("accepted oversized pid/offset %q %q", pid, off)
		}
	})
}

// TestSlowConsumerNotRecovered: a socket cut for being too slow loses its
// session: what it missed may be more than the history, and its client
// must refetch.
func TestSlowConsumerNotRecovered(t *testing.T) {
	srv := NewServer(Config{Recovery: &Recovery{Owner: owner}, EngineIO: engineio.Config{SendQueue: 2}})
	srv.Sockets().Use(func(s *Socket) error { s.SetData("u1"); return nil })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	addr := strings.TrimPrefix(hs.URL, "http://")
	c1, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	reply, err := c1.Connect("/", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ SID, PID string }
	_ = json.Unmarshal([]byte(reply[1:]), &r)
	_ = srv.Sockets().Emit("e")
	text, err := c1.ReadText(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	_ = json.Unmarshal([]byte(text[1:]), &args)
	offset := args[len(args)-1]
	big := strings.Repeat("x", 256<<10)
	for i := 0; i < 64 && srv.Sockets().Socket(r.SID) != nil; i++ {
		_ = srv.Sockets().Emit("big", big)
	}
	ad := srv.Sockets().Adapter().(*MemoryAdapter)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := ad.LoadSession(t.Context(), r.PID)
		if st == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow consumer's session is still restorable")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c2, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	auth, _ := json.Marshal(map[string]string{"pid": r.PID, "offset": offset})
	if reply, err = c2.Connect("/", string(auth)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(reply, r.SID) || strings.Contains(reply, r.PID) {
		t.Fatalf("a slow consumer's session was restored: %s", reply)
	}
}

// countingStore counts the sessions a memory adapter is asked to save.
type countingStore struct {
	*MemoryAdapter
	saves atomic.Int64
	last  atomic.Pointer[SessionState]
}

func (c *countingStore) PersistSession(ctx context.Context, st SessionState, ttl time.Duration) error {
	c.saves.Add(1)
	c.last.Store(&st)
	return c.MemoryAdapter.PersistSession(ctx, st, ttl)
}

// TestRoomChangesSavedAtMostOncePerInterval: a client changing rooms in a
// loop costs one session save per RoomSaveInterval, the first change
// saved at once and the last one saved in the end.
func TestRoomChangesSavedAtMostOncePerInterval(t *testing.T) {
	var store *countingStore
	srv := NewServer(Config{Recovery: &Recovery{Owner: owner}, NewAdapter: func(*Namespace) Adapter {
		store = &countingStore{MemoryAdapter: NewMemoryAdapter()}
		return store
	}})
	srv.Sockets().Use(func(s *Socket) error { s.SetData("u1"); return nil })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	c, err := siotest.Dial(strings.TrimPrefix(hs.URL, "http://"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Connect("/", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	var sid struct{ SID string }
	_ = json.Unmarshal([]byte(reply[1:]), &sid)
	s := srv.Sockets().Socket(sid.SID)
	atConnect := store.saves.Load()
	s.Join("first") // saved at once: the save at connect does not count
	waitUntil(t, func() bool { return store.saves.Load() == atConnect+1 })
	start := time.Now()
	for i := range 10000 {
		s.Join(fmt.Sprint("r", i%7))
		s.Leave(fmt.Sprint("r", i%7))
	}
	s.Join("last")
	elapsed := time.Since(start)
	waitUntil(t, func() bool {
		st := store.last.Load()
		return st != nil && slices.Contains(st.Rooms, "last")
	})
	saves := store.saves.Load() - atConnect - 1
	if max := int64(elapsed/RoomSaveInterval) + 2; saves > max {
		t.Errorf("20,001 room changes in %s saved the session %d times, want at most %d", elapsed, saves, max)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
