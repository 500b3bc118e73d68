package socketio

import (
	"sync"
	"sync/atomic"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// BroadcastFlags modify a broadcast.
type BroadcastFlags struct {
	// Local keeps the broadcast on this instance: an adapter that forwards
	// broadcasts to other instances (Redis) must not forward it. Broadcasts
	// received from other instances are delivered with Local set.
	Local bool
	// Offset, when recovery is on, is the offset an adapter with a shared
	// history (a stream entry id) assigned to this broadcast; empty lets the
	// memory adapter number it and keep it in its own history.
	Offset string
}

// BroadcastOptions select the receivers of a broadcast: sockets in any of
// Rooms (every socket of the namespace when Rooms is empty) that are in none
// of Except.
type BroadcastOptions struct {
	Rooms  []string
	Except []string
	Flags  BroadcastFlags
}

// Adapter keeps a namespace's room membership and delivers broadcasts, like
// socket.io-adapter. The memory adapter is the default. An adapter spanning
// several instances (e.g. over Redis) embeds *MemoryAdapter, overrides
// Broadcast to publish the packet (parser.AppendHeader + Attachments) unless
// opts.Flags.Local, then calls MemoryAdapter.Broadcast for the local sockets;
// packets received from other instances go to MemoryAdapter.Broadcast with
// Flags.Local set.
//
// Connection-state recovery: MemoryAdapter.Broadcast appends the offset
// (Flags.Offset, or its own number kept in its history) as the packet's last
// argument; adapters may implement SessionStore to restore from shared history.
type Adapter interface {
	AddAll(s *Socket, rooms []string)
	Del(s *Socket, room string)
	DelAll(s *Socket)
	Broadcast(p *parser.Packet, opts BroadcastOptions) error
	// Sockets returns the sockets in any of rooms (all when rooms is empty).
	Sockets(rooms []string) []*Socket
	SocketRooms(s *Socket) []string
	Close() error
}

// MemoryAdapter is the in-process Adapter.
//
// A socket's own-id room is held in one map from id to socket rather than
// as a room of its own: most sockets are in no other room, and a one-member
// room costs a map per socket, the largest part of an idle socket's memory.
type MemoryAdapter struct {
	// mu is held across a whole delivery: Session.Send never blocks, and
	// holding it lets the per-socket stamp do dedup and except-filtering
	// without any per-broadcast set allocation.
	mu    sync.Mutex
	rooms map[string]map[*Socket]struct{}
	// sids has every added socket; its value lists the rooms other than
	// the socket's own, nil while there are none.
	sids map[*Socket]map[string]struct{}
	// own maps a socket id to the socket while it is in its own room.
	own map[string]*Socket
	seq uint64
	// Counters for Server.Stats.
	broadcasts, receivers uint64
	// hist is set by EnableRecovery: broadcasts then carry offsets.
	hist atomic.Pointer[history]
}

// NewMemoryAdapter returns an empty memory adapter.
func NewMemoryAdapter() *MemoryAdapter {
	return &MemoryAdapter{
		rooms: make(map[string]map[*Socket]struct{}),
		sids:  make(map[*Socket]map[string]struct{}),
		own:   make(map[string]*Socket),
	}
}

// AddAll puts s in every room of rooms.
func (a *MemoryAdapter) AddAll(s *Socket, rooms []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	own, added := a.sids[s]
	if !added {
		a.sids[s] = nil
	}
	for _, r := range rooms {
		if r == s.id {
			a.own[r] = s
			continue
		}
		if own == nil {
			own = make(map[string]struct{}, len(rooms))
			a.sids[s] = own
		}
		own[r] = struct{}{}
		m := a.rooms[r]
		if m == nil {
			m = make(map[*Socket]struct{})
			a.rooms[r] = m
		}
		m[s] = struct{}{}
	}
}

// Del removes s from room.
func (a *MemoryAdapter) Del(s *Socket, room string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if room == s.id {
		if a.own[room] == s {
			delete(a.own, room)
		}
		return
	}
	if own := a.sids[s]; own != nil {
		delete(own, room)
	}
	a.delFromRoom(s, room)
}

func (a *MemoryAdapter) delFromRoom(s *Socket, room string) {
	if m := a.rooms[room]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(a.rooms, room)
		}
	}
}

// DelAll removes s from every room and from the adapter.
func (a *MemoryAdapter) DelAll(s *Socket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for r := range a.sids[s] {
		a.delFromRoom(s, r)
	}
	delete(a.sids, s)
	if a.own[s.id] == s {
		delete(a.own, s.id)
	}
}

// stampRoomLocked calls fn for each socket of room not yet stamped with
// seq, stamping it.
func (a *MemoryAdapter) stampRoomLocked(room string, seq uint64, fn func(*Socket)) {
	if s := a.own[room]; s != nil && s.stamp != seq {
		s.stamp = seq
		fn(s)
	}
	for s := range a.rooms[room] {
		if s.stamp != seq {
			s.stamp = seq
			fn(s)
		}
	}
}

// Broadcast encodes p once and sends the same Engine.IO packets to every
// selected local socket.
func (a *MemoryAdapter) Broadcast(p *parser.Packet, opts BroadcastOptions) error {
	off := ""
	if h := a.hist.Load(); h != nil && (p.Type == parser.Event || p.Type == parser.BinaryEvent) && p.ID == parser.NoID {
		if off = opts.Flags.Offset; off != "" {
			p = withOffset(p, off)
		} else {
			p, off = h.add(p, opts)
		}
	}
	pkts := encode(p)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.broadcasts++
	a.seq++
	seq := a.seq
	// Stamping the excluded sockets first makes them look already served.
	for _, r := range opts.Except {
		if s := a.own[r]; s != nil {
			s.stamp = seq
		}
		for s := range a.rooms[r] {
			s.stamp = seq
		}
	}
	if len(opts.Rooms) == 0 {
		for s := range a.sids {
			if s.stamp != seq {
				a.receivers++
				s.deliver(pkts, off)
			}
		}
		return nil
	}
	for _, r := range opts.Rooms {
		if s := a.own[r]; s != nil && s.stamp != seq {
			s.stamp = seq
			a.receivers++
			s.deliver(pkts, off)
		}
		for s := range a.rooms[r] {
			if s.stamp != seq {
				s.stamp = seq
				a.receivers++
				s.deliver(pkts, off)
			}
		}
	}
	return nil
}

// Sockets returns the sockets in any of rooms, each once.
func (a *MemoryAdapter) Sockets(rooms []string) []*Socket {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*Socket
	if len(rooms) == 0 {
		for s := range a.sids {
			out = append(out, s)
		}
		return out
	}
	a.seq++
	seq := a.seq
	for _, r := range rooms {
		a.stampRoomLocked(r, seq, func(s *Socket) { out = append(out, s) })
	}
	return out
}

// SocketRooms returns the rooms s is in.
func (a *MemoryAdapter) SocketRooms(s *Socket) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.sids[s])+1)
	if a.own[s.id] == s {
		out = append(out, s.id)
	}
	for r := range a.sids[s] {
		out = append(out, r)
	}
	return out
}

// Close releases nothing for the memory adapter.
func (a *MemoryAdapter) Close() error { return nil }

// encode turns a packet into its Engine.IO messages: the text header, then
// one binary message per attachment. The result is shared by all receivers.
func encode(p *parser.Packet) []*engineio.Packet {
	size := 8 + len(p.Namespace)
	for _, a := range p.Args {
		size += len(a) + 1
	}
	size += len(p.Data)
	pkts := make([]*engineio.Packet, 1, 1+len(p.Attachments))
	pkts[0] = engineio.NewMessage(parser.AppendHeader(make([]byte, 0, size), p))
	for _, b := range p.Attachments {
		pkts = append(pkts, engineio.NewBinaryMessage(b))
	}
	return pkts
}
