package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Recovery turns on connection state recovery (socket.io-client 4.6+): the
// CONNECT reply carries a private session id (pid), every broadcast EVENT
// carries an offset as its extra last argument, and a client that comes back
// within MaxDisconnection with {pid, offset} in its CONNECT auth gets its old
// socket id, its non-reserved rooms and, in order, every broadcast it missed;
// its socket.recovered is then true. Middlewares (authentication) run before
// anything is restored.
type Recovery struct {
	// MaxDisconnection is how long a session stays recoverable after its
	// transport is gone. Default 2 minutes.
	MaxDisconnection time.Duration
	// MaxHistoryBytes caps the memory adapter's broadcast history per
	// namespace (encoded size); older packets are dropped first and a client
	// whose offset was dropped is not recovered. Default 16 MiB.
	MaxHistoryBytes int
	// Owner names who a socket belongs to (e.g. the authenticated user id
	// set by a middleware). A session is restored only when the old and the
	// new socket have the same non-empty owner; nil refuses every restore,
	// because a pid alone must never hand a session to someone else.
	Owner func(*Socket) string
	// KeepRoom says which stored rooms a restored socket joins again. Rooms
	// the application derives from credentials (walcast's user:/role:) should
	// return false: OnConnection recomputes them. Nil keeps every room.
	KeepRoom func(room string) bool
	// Rooms, when set, lists the rooms OnConnection will join for this
	// socket from its credentials (it runs after the middlewares). A restore
	// then selects missed broadcasts with the kept stored rooms plus these,
	// never with stored rooms KeepRoom refuses: a client whose audience
	// changed (e.g. a new role) gets nothing its new token does not allow.
	Rooms func(*Socket) []string
	// Breaks, when it returns true for a missed broadcast (its Args hold
	// the event name, the arguments and the offset), makes the restore fail:
	// e.g. a notice that the history is not enough and the client must
	// refetch. Nil: every missed broadcast is replayed.
	Breaks func(p *parser.Packet) bool
}

// SessionState is what is kept of a socket for its recovery.
type SessionState struct {
	SID   string   `json:"sid"`
	PID   string   `json:"pid"`
	Owner string   `json:"owner"`
	Rooms []string `json:"rooms"`
	// Gen counts the restores of the session: a socket restored from
	// state of generation g is generation g+1. A takeover notice for
	// generation g closes only sockets of an older generation, so a late
	// notice never closes a socket that resumed the session after it.
	Gen uint64 `json:"gen,omitempty"`
}

// SessionStore keeps sessions and the broadcast history they are restored
// from. MemoryAdapter implements it per instance; an adapter with shared
// history (the Redis streams adapter) overrides it so any instance can
// restore. Persist runs when a socket connects, when its rooms change, when
// it disconnects recoverably, and periodically while it is connected, so the
// state survives an instance killed without seeing the disconnect.
//
// A restore is LoadSession, then (once the socket already receives live
// broadcasts into a buffer) MissedSince; whatever both deliver is sent once.
type SessionStore interface {
	PersistSession(ctx context.Context, st SessionState, ttl time.Duration) error
	DropSession(ctx context.Context, pid string) error
	// LoadSession returns the stored session, nil when there is none.
	LoadSession(ctx context.Context, pid string) (*SessionState, error)
	// MissedSince returns, oldest first, the broadcasts after offset that
	// st's rooms selected, each with its offset as last argument. ok is
	// false when offset is unknown or no longer in the history, or the
	// history says the session must not be restored.
	MissedSince(ctx context.Context, st *SessionState, offset string) (missed []MissedPacket, ok bool, err error)
}

// SessionLifetime is implemented by a SessionStore that can tell how long a
// stored session has left (Socket.SessionTTL).
type SessionLifetime interface {
	// SessionTTL returns how long the session pid stays stored; 0 when it
	// is not stored (expired, dropped, never saved).
	SessionTTL(ctx context.Context, pid string) (time.Duration, error)
}

// TakeoverNotifier is implemented by adapters whose SessionStore several
// instances share, so that a session may be restored on another instance
// than the one where its old socket is still connected (its transport not
// yet known to be dead). After such a restore the namespace calls
// NotifyTakeover; the adapter tells the other instances, which call
// Namespace.TakeOver(sid, gen) on their side. The instance that restored
// must not act on its own notice: its new socket has the same id.
type TakeoverNotifier interface {
	NotifyTakeover(ctx context.Context, sid string, gen uint64) error
}

// MissedPacket is one broadcast to replay and its offset.
type MissedPacket struct {
	Offset string
	Packet *parser.Packet
}

// recoverable lists the disconnect reasons after which the client
// reconnects by itself, as the reference server's list does: a client that
// left, was sent away, or was cut for being too slow starts afresh.
var recoverable = map[string]bool{
	ReasonTransportError:     true,
	ReasonTransportClose:     true,
	ReasonForcedClose:        true,
	ReasonPingTimeout:        true,
	ReasonServerShuttingDown: true,
	ReasonForcedServerClose:  true,
}

func newPID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// recoveryAuth reads pid and offset from a CONNECT auth object; anything
// else in it is the application's.
func recoveryAuth(auth json.RawMessage) (pid, offset string) {
	var v struct {
		PID    any `json:"pid"`
		Offset any `json:"offset"`
	}
	if json.Unmarshal(auth, &v) != nil {
		return "", ""
	}
	pid, _ = v.PID.(string)
	offset, _ = v.Offset.(string)
	if len(pid) > 64 || len(offset) > 64 {
		return "", ""
	}
	return pid, offset
}

// history is the memory adapter's recent broadcasts, oldest first, bounded
// by age and bytes.
type history struct {
	mu       sync.Mutex
	prefix   string // random per process: offsets of another run are unknown
	next     uint64
	entries  []histEntry
	bytes    int
	maxBytes int
	maxAge   time.Duration
	sessions map[string]memSession
}

type histEntry struct {
	offset string
	at     time.Time
	p      *parser.Packet
	opts   BroadcastOptions
	size   int
}

type memSession struct {
	st      SessionState
	expires time.Time
}

func newHistory(maxAge time.Duration, maxBytes int) *history {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &history{
		prefix: base64.RawURLEncoding.EncodeToString(b[:]) + "-", maxAge: maxAge, maxBytes: maxBytes,
		sessions: make(map[string]memSession),
	}
}

// add gives p its offset (appended as last argument) and keeps it.
func (h *history) add(p *parser.Packet, opts BroadcastOptions) (*parser.Packet, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	off := h.prefix + strconv.FormatUint(h.next, 36)
	q := withOffset(p, off)
	size := 64 + len(off)
	for _, a := range q.Args {
		size += len(a)
	}
	for _, a := range q.Attachments {
		size += len(a)
	}
	now := time.Now()
	h.entries = append(h.entries, histEntry{offset: off, at: now, p: q, opts: opts, size: size})
	h.bytes += size
	h.trimLocked(now)
	return q, off
}

func (h *history) trimLocked(now time.Time) {
	drop := 0
	for drop < len(h.entries) && (h.bytes > h.maxBytes || now.Sub(h.entries[drop].at) > h.maxAge) {
		h.bytes -= h.entries[drop].size
		drop++
	}
	if drop > 0 {
		clear(h.entries[:drop])
		h.entries = h.entries[drop:]
	}
}

// withOffset copies p with off as an extra last argument; p is shared with
// other callers and stays unchanged.
func withOffset(p *parser.Packet, off string) *parser.Packet {
	q := *p
	q.Args = append(slices.Clip(p.Args), parser.AppendJSONString(nil, off))
	return &q
}

// Selects reports whether a broadcast sent with opts reached a socket in
// rooms, as the adapters decide it.
func (opts BroadcastOptions) Selects(rooms []string) bool {
	for _, r := range opts.Except {
		if slices.Contains(rooms, r) {
			return false
		}
	}
	if len(opts.Rooms) == 0 {
		return true
	}
	for _, r := range opts.Rooms {
		if slices.Contains(rooms, r) {
			return true
		}
	}
	return false
}

func (h *history) persist(st SessionState, ttl time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.sessions[st.PID] = memSession{st: st, expires: now.Add(ttl)}
	// Sweeping on write keeps the map bounded by the sessions of the last
	// window without a timer of its own.
	if len(h.sessions)%64 == 0 {
		for k, v := range h.sessions {
			if now.After(v.expires) {
				delete(h.sessions, k)
			}
		}
	}
}

func (h *history) drop(pid string) {
	h.mu.Lock()
	delete(h.sessions, pid)
	h.mu.Unlock()
}

func (h *history) load(pid string) *SessionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms, ok := h.sessions[pid]
	if !ok || time.Now().After(ms.expires) {
		return nil
	}
	st := ms.st
	st.Rooms = slices.Clone(st.Rooms)
	return &st
}

func (h *history) ttl(pid string) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms, ok := h.sessions[pid]
	if !ok {
		return 0
	}
	return max(time.Until(ms.expires), 0)
}

func (h *history) missedSince(st *SessionState, offset string) ([]MissedPacket, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trimLocked(time.Now())
	i := slices.IndexFunc(h.entries, func(e histEntry) bool { return e.offset == offset })
	if i < 0 {
		return nil, false
	}
	var missed []MissedPacket
	for _, e := range h.entries[i+1:] {
		if e.opts.Selects(st.Rooms) {
			missed = append(missed, MissedPacket{Offset: e.offset, Packet: e.p})
		}
	}
	return missed, true
}

// PersistSession keeps st in memory for ttl.
func (a *MemoryAdapter) PersistSession(_ context.Context, st SessionState, ttl time.Duration) error {
	if h := a.hist.Load(); h != nil {
		h.persist(st, ttl)
	}
	return nil
}

// DropSession forgets a session.
func (a *MemoryAdapter) DropSession(_ context.Context, pid string) error {
	if h := a.hist.Load(); h != nil {
		h.drop(pid)
	}
	return nil
}

// LoadSession returns a session kept in memory.
func (a *MemoryAdapter) LoadSession(_ context.Context, pid string) (*SessionState, error) {
	if h := a.hist.Load(); h != nil {
		return h.load(pid), nil
	}
	return nil, nil
}

// SessionTTL returns how long a session kept in memory has left.
func (a *MemoryAdapter) SessionTTL(_ context.Context, pid string) (time.Duration, error) {
	if h := a.hist.Load(); h != nil {
		return h.ttl(pid), nil
	}
	return 0, nil
}

// MissedSince reads what st missed from this instance's history.
func (a *MemoryAdapter) MissedSince(_ context.Context, st *SessionState, offset string) ([]MissedPacket, bool, error) {
	h := a.hist.Load()
	if h == nil {
		return nil, false, nil
	}
	missed, ok := h.missedSince(st, offset)
	return missed, ok, nil
}

// EnableRecovery makes the adapter give every broadcast an offset and keep
// a history of them; NewServer calls it when Config.Recovery is set.
func (a *MemoryAdapter) EnableRecovery(maxAge time.Duration, maxBytes int) {
	a.hist.CompareAndSwap(nil, newHistory(maxAge, maxBytes))
}

// catchup buffers the live broadcasts of a socket being restored until its
// missed ones were sent, so none is lost or sent twice.
type catchup struct {
	mu   sync.Mutex
	done bool
	buf  []buffered
}

type buffered struct {
	offset string
	pkts   []*engineio.Packet
}

// hold buffers pkts unless the catch-up is over.
func (c *catchup) hold(pkts []*engineio.Packet, offset string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return false
	}
	c.buf = append(c.buf, buffered{offset, pkts})
	return true
}

// finish sends what was buffered, minus what missed already sent, and ends
// buffering.
func (c *catchup) finish(s *Socket, missed []MissedPacket) {
	sent := make(map[string]bool, len(missed))
	for _, m := range missed {
		sent[m.Offset] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.buf {
		if b.offset == "" || !sent[b.offset] {
			s.client.sess.Send(b.pkts...)
		}
	}
	c.buf = nil
	c.done = true
}
