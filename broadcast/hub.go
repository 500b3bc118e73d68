// Package broadcast is walcast's Socket.IO hub: the one type the rest of
// walcast uses to serve browsers and push events to them.
//
//	hub := broadcast.New(broadcast.Config{EngineIO: engineio.Config{AllowedOrigins: origins}})
//	hub.Namespace("/").Use(authMiddleware)           // refuse with an error; its message reaches connect_error
//	hub.Namespace("/").OnConnection(func(s *socketio.Socket) { s.Join("user:" + id); s.On("lock:acquire", ...) })
//	http.Handle("/socket.io/", hub.Handler())
//	err := hub.Emit(ctx, broadcast.Event{Rooms: []string{"role:admin"}, Name: "member:update", Payload: rowJSON})
//	defer hub.Close()
//
// Emit passes Payload through as already-encoded JSON (the change-data path
// encodes a row once) and the socketio layer encodes the packet once for all
// receivers.
//
// Open builds a hub for a Cluster (memory, Redis streams or Redis pub/sub);
// its Publish takes committed transactions (position, events, revocations)
// and delivers them the way that cluster carries them, fenced by position
// on the Redis stream.
package broadcast

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
)

// DefaultPath is the Engine.IO path the official client uses unless told
// otherwise, and the hub's when Config.EngineIO.Path is empty.
const DefaultPath = "/socket.io/"

// Config configures the hub: the Socket.IO server settings, including the
// Engine.IO ones (path, heartbeat, CORS origins, send queue) in EngineIO.
type Config = socketio.Config

// Event is one event to push to browsers.
type Event struct {
	Namespace string   // "" means "/"
	Rooms     []string // receivers: sockets in any of these; all when empty
	Except    []string // minus sockets in any of these
	Name      string   // event name, e.g. "member:update"
	// Payload is the event's single argument as encoded JSON, sent as is.
	// Empty means the event has no argument.
	Payload json.RawMessage
}

// Hub serves Socket.IO and broadcasts events. Safe for concurrent use.
type Hub struct {
	srv     *socketio.Server
	carrier carrier
	streams *redisadapter.Streams // closed with the hub; nil without the stream adapter
}

// New returns a hub on cfg's adapter (cfg.NewAdapter, memory by default);
// namespace "/" exists, others are added by Namespace. Its Publish emits
// each event through that adapter and disconnects revoked sockets of this
// instance; Open returns a hub whose Publish fits a cluster.
func New(cfg Config) *Hub {
	h := &Hub{srv: socketio.NewServer(cfg)}
	h.carrier = memoryCarrier{hub: h}
	return h
}

// Handler serves the Engine.IO endpoint; mount it at the configured path
// (default "/socket.io/").
func (h *Hub) Handler() http.Handler { return h.srv }

// Namespace returns the namespace name ("" or "/" for the main one),
// creating it, for registering middlewares and handlers.
func (h *Hub) Namespace(name string) *socketio.Namespace { return h.srv.Of(name) }

// Server is the underlying Socket.IO server.
func (h *Hub) Server() *socketio.Server { return h.srv }

// Emit broadcasts ev to its audience. It does not wait for delivery; sockets
// too slow to take it are cut by the transport. It fails on a namespace that
// was never registered, an empty name or a payload that is not valid JSON,
// and then sends nothing. ctx bounds adapters that forward to other
// instances; the memory adapter does not block.
func (h *Hub) Emit(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("emit %q: %w", ev.Name, err)
	}
	if ev.Name == "" {
		return fmt.Errorf("emit: empty event name")
	}
	nsp := h.srv.Lookup(ev.Namespace)
	if nsp == nil {
		return fmt.Errorf("emit %q to namespace %q: %w", ev.Name, ev.Namespace, socketio.ErrBadNamespace)
	}
	op := nsp.To(ev.Rooms...).Except(ev.Except...)
	var err error
	if len(ev.Payload) == 0 {
		err = op.Emit(ev.Name)
	} else {
		err = op.Emit(ev.Name, ev.Payload)
	}
	if err != nil {
		return fmt.Errorf("emit to namespace %q: %w", nsp.Name(), err)
	}
	return nil
}

// Close disconnects every socket with reason "server shutting down" and
// stops reading from Redis.
func (h *Hub) Close() {
	h.srv.Close()
	if h.streams != nil {
		_ = h.streams.Close()
	}
}
