package e2e

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/e2e/sioclient"
)

// startRecoveryServer serves what scenarios/recovery.mjs expects, with
// connection state recovery on and the given window.
func startRecoveryServer(t *testing.T, window time.Duration) string {
	t.Helper()
	sio := socketio.NewServer(socketio.Config{Recovery: &socketio.Recovery{
		MaxDisconnection: window,
		Owner:            func(s *socketio.Socket) string { u, _ := s.Data().(string); return u },
		KeepRoom:         func(r string) bool { return !strings.HasPrefix(r, "user:") },
		Rooms:            func(s *socketio.Socket) []string { u, _ := s.Data().(string); return []string{"user:" + u} },
	}})
	root := sio.Of("/")
	root.Use(func(s *socketio.Socket) error {
		var a struct{ Token string }
		if err := json.Unmarshal(s.Handshake().Auth, &a); err != nil || a.Token == "" {
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
	hs := httptest.NewServer(sio)
	t.Cleanup(func() { sio.Close(); hs.Close() })
	return hs.URL
}

func TestRecovery(t *testing.T) {
	t.Run("recovered", func(t *testing.T) {
		url := startRecoveryServer(t, 5*time.Second)
		_, final := sioclient.RunT(t, "scenarios/recovery.mjs", sioclient.Options{URL: url}, "recover")
		var r struct {
			Recovered, SameID bool
			Names             []string
			Payloads          []int
			Offsets           []string
		}
		decode(t, final.Raw, &r)
		if !r.Recovered || !r.SameID {
			t.Fatalf("recovered=%v sameId=%v, want both true", r.Recovered, r.SameID)
		}
		if want := []string{"missed-1", "missed-2", "missed-3"}; !slices.Equal(r.Names, want) {
			t.Fatalf("events after reconnect %v, want exactly %v in order", r.Names, want)
		}
		if !slices.Equal(r.Payloads, []int{1, 2, 3}) {
			t.Fatalf("payloads %v, want [1 2 3] unchanged", r.Payloads)
		}
		if len(slices.Compact(slices.Clone(r.Offsets))) != len(r.Offsets) {
			t.Fatalf("offsets %v are not distinct", r.Offsets)
		}
	})
	t.Run("past the window", func(t *testing.T) {
		url := startRecoveryServer(t, time.Second)
		_, final := sioclient.RunT(t, "scenarios/recovery.mjs", sioclient.Options{URL: url}, "expired")
		var r struct {
			Recovered, SameID bool
			Names             []string
		}
		decode(t, final.Raw, &r)
		if r.Recovered || r.SameID {
			t.Fatalf("recovered=%v sameId=%v after the window, want both false", r.Recovered, r.SameID)
		}
		if slices.Contains(r.Names, "missed-1") {
			t.Fatalf("a fresh session got replayed events: %v", r.Names)
		}
	})
	t.Run("another user's pid", func(t *testing.T) {
		url := startRecoveryServer(t, 5*time.Second)
		_, final := sioclient.RunT(t, "scenarios/recovery.mjs", sioclient.Options{URL: url}, "foreign")
		var r struct {
			Bob struct {
				Recovered, SameID bool
				Events            []string
			}
			AliceRecovered, AliceSameID bool
		}
		decode(t, final.Raw, &r)
		if r.Bob.Recovered || r.Bob.SameID || slices.Contains(r.Bob.Events, "missed-3") {
			t.Fatalf("bob with alice's pid: %+v, want a fresh session without alice's events", r.Bob)
		}
		if !r.AliceRecovered || !r.AliceSameID {
			t.Fatalf("alice recovered=%v sameId=%v, want her session back", r.AliceRecovered, r.AliceSameID)
		}
	})
}
