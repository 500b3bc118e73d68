package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

// notifyingAdapter is the memory adapter plus a TakeoverNotifier that
// records the notices a cross-instance adapter would publish.
type notifyingAdapter struct {
	*MemoryAdapter
	mu      sync.Mutex
	notices []string
}

func (a *notifyingAdapter) NotifyTakeover(_ context.Context, sid string, gen uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notices = append(a.notices, fmt.Sprintf("%s#%d", sid, gen))
	return nil
}

func (a *notifyingAdapter) taken() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.notices...)
}

type session struct {
	c                *siotest.Conn
	SID, PID, offset string
}

// connectSession connects as user and reads one broadcast to learn an
// offset; pid and offset, when set, ask for a restore.
func connectSession(t *testing.T, srv *Server, addr, user, pid, offset string) *session {
	t.Helper()
	c, err := siotest.Dial(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	auth, _ := json.Marshal(map[string]string{"user": user, "pid": pid, "offset": offset})
	reply, err := c.Connect("/", string(auth))
	if err != nil {
		t.Fatal(err)
	}
	s := &session{c: c}
	if err := json.Unmarshal([]byte(reply[1:]), s); err != nil || s.SID == "" {
		t.Fatalf("CONNECT reply %s: %v", reply, err)
	}
	if err := srv.Sockets().To(s.SID).Emit("hello"); err != nil {
		t.Fatal(err)
	}
	for {
		text, err := c.ReadText(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for an offset: %v", err)
		}
		var args []string
		if json.Unmarshal([]byte(text[1:]), &args) == nil && len(args) == 2 && args[0] == "hello" {
			s.offset = args[1]
			return s
		}
	}
}

// waitClosed reads until the server closes c and fails on a DISCONNECT
// packet: a takeover is not a server-side disconnect (the client would not
// reconnect after one).
func waitClosed(t *testing.T, c *siotest.Conn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		text, err := c.ReadText(time.Until(deadline))
		if errors.Is(err, siotest.ErrClosed) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for the close: %v", err)
		}
		if strings.HasPrefix(text, "1") {
			t.Fatalf("taken-over socket got a DISCONNECT packet %q", text)
		}
	}
	t.Fatal("connection not closed")
}

func waitGen(t *testing.T, a *MemoryAdapter, pid string, gen uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := a.LoadSession(t.Context(), pid)
		if st != nil && st.Gen == gen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored session %+v, want generation %d", st, gen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTakeOverGenerations: Namespace.TakeOver (what a cross-instance adapter
// calls on a peer's notice) closes the socket of an older generation without
// a DISCONNECT packet and without dropping its session, and leaves alone a
// socket that resumed the session as that generation or later.
func TestTakeOverGenerations(t *testing.T) {
	srv, addr := recoveryServer(t, &Recovery{Owner: owner})
	nsp := srv.Sockets()
	ad := nsp.Adapter().(*MemoryAdapter)
	first := connectSession(t, srv, addr, "u1", "", "")
	waitGen(t, ad, first.PID, 0)
	if nsp.TakeOver(first.SID, 0) {
		t.Fatal("a notice of generation 0 closed the generation-0 socket")
	}
	if nsp.TakeOver("no-such-socket", 9) {
		t.Fatal("TakeOver of an unknown id reported a close")
	}
	if !nsp.TakeOver(first.SID, 1) {
		t.Fatal("a notice of generation 1 left the generation-0 socket")
	}
	waitClosed(t, first.c)
	if nsp.Socket(first.SID) != nil {
		t.Fatal("taken-over socket still registered")
	}
	// Neither dropped nor saved as a disconnect: the session is as it was.
	waitGen(t, ad, first.PID, 0)

	second := connectSession(t, srv, addr, "u1", first.PID, first.offset)
	if second.SID != first.SID || second.PID != first.PID {
		t.Fatalf("not restored: %+v, want sid %s", second, first.SID)
	}
	waitGen(t, ad, first.PID, 1)
	if nsp.TakeOver(first.SID, 1) {
		t.Fatal("a late notice of generation 1 closed the socket that resumed as generation 1")
	}
	if err := nsp.To(first.SID).Emit("still"); err != nil {
		t.Fatal(err)
	}
	for {
		text, err := second.c.ReadText(5 * time.Second)
		if err != nil {
			t.Fatalf("generation-1 socket: %v", err)
		}
		if strings.HasPrefix(text, `2["still"`) {
			break
		}
	}
}

// TestTakeoverNotice: a restore whose old socket is not on this instance
// asks the adapter to notify the others (generation + 1); one whose old
// socket is here closes it locally and notifies nobody.
func TestTakeoverNotice(t *testing.T) {
	var ad *notifyingAdapter
	srv := NewServer(Config{Recovery: &Recovery{Owner: owner}, NewAdapter: func(*Namespace) Adapter {
		ad = &notifyingAdapter{MemoryAdapter: NewMemoryAdapter()}
		return ad
	}})
	srv.Sockets().Use(func(s *Socket) error {
		var a struct{ User string }
		_ = json.Unmarshal(s.Handshake().Auth, &a)
		s.SetData(a.User)
		return nil
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	addr := strings.TrimPrefix(hs.URL, "http://")

	// Old socket still here: local takeover, no notice.
	first := connectSession(t, srv, addr, "u1", "", "")
	waitGen(t, ad.MemoryAdapter, first.PID, 0) // saved after the connect, off its path
	second := connectSession(t, srv, addr, "u1", first.PID, first.offset)
	if second.SID != first.SID {
		t.Fatal("not restored")
	}
	waitGen(t, ad.MemoryAdapter, first.PID, 1)
	waitClosed(t, first.c)
	if n := ad.taken(); len(n) != 0 {
		t.Fatalf("notices %v for a socket taken over locally", n)
	}

	// Old socket gone from here (it could be on another instance): notice.
	_ = second.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sockets().Socket(first.SID) != nil {
		if time.Now().After(deadline) {
			t.Fatal("closed socket still registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	third := connectSession(t, srv, addr, "u1", second.PID, second.offset)
	if third.SID != first.SID {
		t.Fatal("not restored the second time")
	}
	for {
		n := ad.taken()
		if len(n) == 1 && n[0] == first.SID+"#2" {
			break
		}
		if len(n) > 1 || time.Now().After(deadline) {
			t.Fatalf("notices %v, want one for %s generation 2", n, first.SID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionTTL: a connected socket's session has time left (it is saved
// again periodically); a recoverable disconnect leaves it about one window;
// with recovery off there is none.
func TestSessionTTL(t *testing.T) {
	const window = time.Minute
	srv, addr := recoveryServer(t, &Recovery{Owner: owner, MaxDisconnection: window})
	s := connectSession(t, srv, addr, "u1", "", "")
	sock := srv.Sockets().Socket(s.SID)
	ttl, err := sock.SessionTTL(t.Context())
	if err != nil || ttl <= 0 || ttl > window+window/4 {
		t.Fatalf("connected: ttl %v err %v, want (0, %v]", ttl, err, window+window/4)
	}
	_ = s.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ttl, err = sock.SessionTTL(t.Context())
		if err == nil && ttl > 0 && ttl <= window {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after disconnect: ttl %v err %v, want (0, %v]", ttl, err, window)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sock.DropRecovery()
	if ttl, err = sock.SessionTTL(t.Context()); ttl != 0 || err != nil {
		t.Fatalf("dropped session: ttl %v err %v, want 0", ttl, err)
	}

	off, offAddr := recoveryServer(t, nil)
	c, err := siotest.Dial(offAddr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Connect("/", `{"user":"u1"}`)
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ SID string }
	_ = json.Unmarshal([]byte(reply[1:]), &r)
	if ttl, err := off.Sockets().Socket(r.SID).SessionTTL(t.Context()); ttl != 0 || err != nil {
		t.Fatalf("recovery off: ttl %v err %v", ttl, err)
	}
}
