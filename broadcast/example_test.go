package broadcast_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
)

// A hub with an auth middleware, per-user rooms, an acknowledged event and a
// broadcast of an already-encoded row.
func Example() {
	hub := broadcast.New(broadcast.Config{
		EngineIO: engineio.Config{AllowedOrigins: []string{"https://app.example.org"}},
	})
	defer hub.Close()

	main := hub.Namespace("/")
	main.Use(func(s *socketio.Socket) error {
		var auth struct{ Token string }
		if err := json.Unmarshal(s.Handshake().Auth, &auth); err != nil || auth.Token == "" {
			// the browser's connect_error handler sees exactly this message
			return errors.New("Authentication error: No token provided")
		}
		s.SetData(auth.Token)
		return nil
	})
	main.OnConnection(func(s *socketio.Socket) {
		s.Join("role:admin")
		s.On("lock:check", func(s *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
			_ = ack(map[string]any{"isLocked": false})
		})
	})
	http.Handle("/socket.io/", hub.Handler())

	row := json.RawMessage(`{"type":"UPDATE","data":{"id":1}}`)
	if err := hub.Emit(context.Background(), broadcast.Event{Rooms: []string{"role:admin"}, Name: "member:update", Payload: row}); err != nil {
		log.Print(err)
	}
}
