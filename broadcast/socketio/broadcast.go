package socketio

import (
	"slices"

	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// BroadcastOperator selects the receivers of a broadcast. It is a value:
// each method returns a new operator and never changes the receiver.
type BroadcastOperator struct {
	nsp    *Namespace
	rooms  []string
	except []string
	flags  BroadcastFlags
}

// To adds rooms to the target rooms (a socket in several gets the packet
// once).
func (b BroadcastOperator) To(rooms ...string) BroadcastOperator {
	b.rooms = append(slices.Clip(b.rooms), rooms...)
	return b
}

// In is To.
func (b BroadcastOperator) In(rooms ...string) BroadcastOperator { return b.To(rooms...) }

// Except excludes the sockets in rooms.
func (b BroadcastOperator) Except(rooms ...string) BroadcastOperator {
	b.except = append(slices.Clip(b.except), rooms...)
	return b
}

// Local keeps the broadcast on this instance (no forwarding by the adapter).
func (b BroadcastOperator) Local() BroadcastOperator {
	b.flags.Local = true
	return b
}

// Emit encodes event once and delivers it to every selected socket.
func (b BroadcastOperator) Emit(event string, args ...any) error {
	p, err := eventPacket(b.nsp.name, event, parser.NoID, args)
	if err != nil {
		return err
	}
	return b.nsp.adapter.Broadcast(p, BroadcastOptions{Rooms: b.rooms, Except: b.except, Flags: b.flags})
}

// Sockets returns the selected local sockets.
func (b BroadcastOperator) Sockets() []*Socket {
	all := b.nsp.adapter.Sockets(b.rooms)
	if len(b.except) == 0 {
		return all
	}
	excluded := make(map[*Socket]bool)
	for _, s := range b.nsp.adapter.Sockets(b.except) {
		excluded[s] = true
	}
	out := all[:0]
	for _, s := range all {
		if !excluded[s] {
			out = append(out, s)
		}
	}
	return out
}

// SocketsJoin makes the selected local sockets join rooms.
func (b BroadcastOperator) SocketsJoin(rooms ...string) {
	for _, s := range b.Sockets() {
		s.Join(rooms...)
	}
}

// SocketsLeave makes the selected local sockets leave room.
func (b BroadcastOperator) SocketsLeave(room string) {
	for _, s := range b.Sockets() {
		s.Leave(room)
	}
}

// DisconnectSockets disconnects the selected local sockets.
func (b BroadcastOperator) DisconnectSockets(closeConn bool) {
	for _, s := range b.Sockets() {
		s.Disconnect(closeConn)
	}
}
