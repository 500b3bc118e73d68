package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/e2e/sioclient"
)

// startRecoveryServer serves one instance with connection state recovery on
// the shared stream: auth.token is the user, sockets join "user:<token>" and
// "chat", get a "welcome" broadcast at connect, and once a socket sent
// "arm", its disconnect makes this instance broadcast missed-1 (all),
// missed-2 (chat), other (elsewhere) and missed-3 (user:<token>).
func startRecoveryServer(t *testing.T, st *Streams) (*socketio.Server, string) {
	t.Helper()
	srv := socketio.NewServer(socketio.Config{
		NewAdapter: st.NewAdapter,
		Recovery: &socketio.Recovery{
			MaxDisconnection: 10 * time.Second,
			Owner:            func(s *socketio.Socket) string { u, _ := s.Data().(string); return u },
			KeepRoom:         func(r string) bool { return !strings.HasPrefix(r, "user:") },
		},
	})
	root := srv.Sockets()
	root.Use(func(s *socketio.Socket) error {
		var a struct{ Token string }
		if json.Unmarshal(s.Handshake().Auth, &a) != nil || a.Token == "" {
			return errors.New("no token")
		}
		s.SetData(a.Token)
		return nil
	})
	root.OnConnection(func(s *socketio.Socket) {
		user := s.Data().(string)
		s.Join("user:"+user, "chat")
		_ = root.To(s.ID()).Emit("welcome")
		s.On("arm", func(s *socketio.Socket, _ socketio.Args, ack socketio.AckFunc) {
			s.OnDisconnect(func(string) {
				_ = root.Emit("missed-1", 1)
				_ = root.To("chat").Emit("missed-2", 2)
				_ = root.To("elsewhere").Emit("other", 0)
				_ = root.To("user:"+user).Emit("missed-3", 3)
			})
			_ = ack()
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		_ = hs.Close()
	})
	return srv, "http://" + ln.Addr().String()
}

// TestStreamsRecoveryAcrossInstances: a client leaves instance A and
// resumes on instance B, which has never seen it, from the shared stream.
func TestStreamsRecoveryAcrossInstances(t *testing.T) {
	_, c := startRedis(t)
	_, urlA := startRecoveryServer(t, newStreams(t, c, StreamsOptions{}))
	_, urlB := startRecoveryServer(t, newStreams(t, c, StreamsOptions{}))
	_, final := sioclient.RunT(t, "scenarios/recovery-cross.mjs", sioclient.Options{URL: urlA}, urlB, "cut")
	var r struct {
		Recovered, SameID bool
		Names             []string
		Payloads          []int
	}
	if err := json.Unmarshal(final.Raw, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Recovered || !r.SameID {
		t.Fatalf("on B: recovered=%v sameId=%v, want both true", r.Recovered, r.SameID)
	}
	if want := []string{"missed-1", "missed-2", "missed-3"}; !slices.Equal(r.Names, want) {
		t.Fatalf("events on B %v, want exactly %v in order", r.Names, want)
	}
	if !slices.Equal(r.Payloads, []int{1, 2, 3}) {
		t.Fatalf("payloads %v, want [1 2 3]", r.Payloads)
	}
}

// TestStreamsRestoreRefusals: what must not be restored.
func TestStreamsRestoreRefusals(t *testing.T) {
	_, c := startRedis(t)
	st := newStreams(t, c, StreamsOptions{})
	srv := socketio.NewServer(socketio.Config{NewAdapter: st.NewAdapter, Recovery: &socketio.Recovery{}})
	t.Cleanup(srv.Close)
	ad := srv.Sockets().Adapter().(*StreamsAdapter)
	ctx := context.Background()
	id, err := ad.Publish(ctx, event("e", `1`), socketio.BroadcastOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess := socketio.SessionState{SID: "s1", PID: "p1", Owner: "alice", Rooms: []string{"s1", "user:alice"}}
	if err := ad.PersistSession(ctx, sess, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := ad.LoadSession(ctx, "p1")
	if err != nil || got == nil || got.SID != "s1" || got.Owner != "alice" {
		t.Fatalf("load: %+v %v", got, err)
	}
	if missed, ok, err := ad.MissedSince(ctx, got, id); err != nil || !ok || len(missed) != 0 {
		t.Fatalf("restore at the last entry: ok=%v missed=%d err=%v, want ok with nothing missed", ok, len(missed), err)
	}
	if st, err := ad.LoadSession(ctx, "nope"); st != nil || err != nil {
		t.Errorf("unknown pid: %+v %v, want nothing", st, err)
	}
	for _, tc := range []struct{ name, offset string }{
		{"offset not a stream id", "abc-1"},
		{"offset not in the stream", "1-1"},
	} {
		if _, ok, err := ad.MissedSince(ctx, got, tc.offset); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want not restorable without error", tc.name, ok, err)
		}
	}
	// a revocation since the offset makes the session unrecoverable
	if _, err := ad.PublishBatch(ctx, []BatchItem{{Disconnect: true, Opts: socketio.BroadcastOptions{Rooms: []string{"user:alice"}}}},
		Fence{MarkKey: "mark", Position: Position{LSN: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ad.MissedSince(ctx, got, id); ok {
		t.Fatal("restored a session whose user was disconnected since its offset")
	}
	if n, _ := c.Exists(ctx, "socket.io:session:/#p1").Result(); n != 1 {
		t.Fatal("the session key is not where the doc says")
	}
	if err := ad.DropSession(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, "socket.io:session:/#p1").Result(); n != 0 {
		t.Fatal("DropSession left the key")
	}
}
