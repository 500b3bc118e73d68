package redisadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// DefaultStreamWindow is how long entries stay in the stream unless
// StreamsOptions.Window says otherwise.
const DefaultStreamWindow = 10 * time.Minute

// PositionField is the extra stream entry field carrying an event's position.
// Node adapters ignore fields they do not know.
const PositionField = "walcast-pos"

// StateField carries the payload of a walcast-only state entry (a
// transaction's account changes): an entry with fields uid, StateField and
// PositionField and no nsp. Node's streams adapter hands only entries with
// an nsp to its namespaces (startPolling: if (message.nsp)), and its
// restoreSession keeps only entries of its namespace, so Node peers sharing
// the stream never see it.
const StateField = "walcast-state"

// ErrFenced is returned by Publish when the event's position is not above the
// high-water mark: an older (or already published) event, nothing appended.
var ErrFenced = errors.New("position not above the high-water mark")

// Position orders events: the commit LSN of their transaction, then their index
// in it. Its String form is fixed-width hex, so Redis compares positions as
// strings.
type Position struct {
	LSN   uint64
	Index uint32
}

func (p Position) String() string { return fmt.Sprintf("%016X/%08X", p.LSN, p.Index) }

// ParsePosition reads the String form back, e.g. a mark read from Redis.
func ParsePosition(s string) (Position, error) {
	lsn, idx, ok := strings.Cut(s, "/")
	if !ok || len(lsn) != 16 || len(idx) != 8 {
		return Position{}, fmt.Errorf("position %q: want 16 and 8 hex digits around /", s)
	}
	l, err := strconv.ParseUint(lsn, 16, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	i, err := strconv.ParseUint(idx, 16, 32)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	p := Position{LSN: l, Index: uint32(i)}
	if p.String() != s {
		// Lowercase hex would order differently in the Lua fence's string
		// comparison: only the form String writes is a position.
		return Position{}, fmt.Errorf("position %q: want uppercase hex, as %q", s, p.String())
	}
	return p, nil
}

// Fence asks Publish to append only if Position is above the mark stored at
// MarkKey, raising the mark in the same step.
type Fence struct {
	MarkKey  string
	Position Position
}

// publishScript appends one fenced entry to the stream, trimming by age with
// MINID computed from Redis's own clock, only if the position is above the
// mark, raising it. Lua scripts run atomically: the check, the append and the
// raise are one step. The mark is raised after XADD so a failing XADD leaves
// it. (Unfenced broadcasts are a plain XADD: see Publish.)
//
// KEYS[1] stream, KEYS[2] mark
// ARGV[1] window in ms, ARGV[2] position, ARGV[3..] field, value...
var publishScript = redis.NewScript(`
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local mark = redis.call('GET', KEYS[2])
if mark and mark >= ARGV[2] then
  return false
end
local args = {'XADD', KEYS[1], 'MINID', '~', string.format('%d', minid), '*'}
for i = 3, #ARGV do
  args[#args + 1] = ARGV[i]
end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], ARGV[2])
return id
`)

// StreamsOptions configure the Redis Streams adapter. Zero values take the
// defaults noted, which are those of @socket.io/redis-streams-adapter 0.3.
type StreamsOptions struct {
	// StreamName is the stream's key; default "socket.io".
	StreamName string
	// ChannelPrefix names the pub/sub channels for requests and responses
	// ("<prefix>#<nsp>#" and "<prefix>#<nsp>#<uid>#"); default "socket.io".
	ChannelPrefix string
	// Window is how long entries stay in the stream: every append trims
	// entries older than that (XADD MINID ~). Default DefaultStreamWindow.
	Window time.Duration
	// ReadCount is the number of entries per XREAD; default 100.
	ReadCount int64
	// BlockTime bounds one blocking XREAD; default 5 s.
	BlockTime time.Duration
	// PublishTimeout bounds one append when Broadcast is called without a
	// context; default 5 s.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	// OnState, when set, receives the payload of every state entry
	// (BatchItem.State) read from the stream, this instance's included, in
	// stream order with the broadcasts around it, on the goroutine that
	// delivers them. Set it here: entries are read from NewStreams on.
	OnState func(state []byte)

	// delivered, when set (tests and benchmarks), sees each entry id after
	// its delivery.
	delivered func(id string)
}

func (o *StreamsOptions) defaults() {
	if o.StreamName == "" {
		o.StreamName = "socket.io"
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = "socket.io"
	}
	if o.Window <= 0 {
		o.Window = DefaultStreamWindow
	}
	if o.ReadCount <= 0 {
		o.ReadCount = 100
	}
	if o.BlockTime <= 0 {
		o.BlockTime = 5 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Streams joins the instances of a cluster through one Redis stream, like
// @socket.io/redis-streams-adapter: each broadcast is appended to the stream,
// and every instance, this one included, delivers to its own sockets what it
// reads back, in stream order. One Streams serves every namespace of a
// server; pass its NewAdapter as socketio.Config.NewAdapter.
type Streams struct {
	client *redis.Client
	opts   StreamsOptions
	uid    string
	log    *slog.Logger

	mu       sync.RWMutex
	adapters map[string]*StreamsAdapter

	// readerID is the Redis client id of the reader's connection: neither
	// context cancellation nor closing the connection interrupts a blocking
	// XREAD, so Close sends CLIENT UNBLOCK to it.
	readerID atomic.Int64
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewStreams starts reading the stream after its current last entry, so
// everything appended once NewStreams returns is delivered. It fails when
// Redis cannot be reached.
func NewStreams(ctx context.Context, client *redis.Client, opts StreamsOptions) (*Streams, error) {
	opts.defaults()
	last, err := lastStreamID(ctx, client, opts.StreamName)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s := &Streams{
		client:   client,
		opts:     opts,
		uid:      randomUID(),
		log:      opts.Logger.With("component", "redis-streams-adapter"),
		adapters: make(map[string]*StreamsAdapter),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go s.read(rctx, last)
	return s, nil
}

func lastStreamID(ctx context.Context, client *redis.Client, stream string) (string, error) {
	msgs, err := client.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("read last id of stream %q: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

func randomUID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// UID is this instance's id in the cluster messages it writes.
func (s *Streams) UID() string { return s.uid }

// Adapter returns the adapter NewAdapter built for namespace nsp, nil when
// there is none.
func (s *Streams) Adapter(nsp string) *StreamsAdapter {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.adapters[nsp]
}

// NewAdapter builds the adapter of ns; it fits socketio.Config.NewAdapter.
func (s *Streams) NewAdapter(ns *socketio.Namespace) socketio.Adapter {
	a := &StreamsAdapter{
		local:   local{MemoryAdapter: socketio.NewMemoryAdapter(), ns: ns},
		streams: s,
	}
	// Node peers count servers with PUBSUB NUMSUB on the public channel and
	// address requests and responses there: be a member like they are.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.PublishTimeout)
	defer cancel()
	prefix := s.opts.ChannelPrefix + "#" + ns.Name() + "#"
	a.sub = subscribe(ctx, s.client, s.log, nil, []string{prefix, prefix + s.uid + "#", s.takeoverChannel(ns.Name())})
	go a.readRequests()
	s.mu.Lock()
	s.adapters[ns.Name()] = a
	s.mu.Unlock()
	return a
}

// Close stops reading; adapters close their own subscriptions.
func (s *Streams) Close() error {
	s.cancel()
	for {
		if id := s.readerID.Load(); id != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.client.ClientUnblock(ctx, id).Err()
			cancel()
		}
		select {
		case <-s.done:
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Streams) read(ctx context.Context, last string) {
	defer close(s.done)
	// A connection of its own, so the blocking read holds no pooled one.
	conn := s.client.Conn()
	defer func() { _ = conn.Close() }()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if s.readerID.Load() == 0 {
			if id, err := conn.ClientID(ctx).Result(); err == nil {
				s.readerID.Store(id)
			}
		}
		res, err := conn.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.opts.StreamName, last},
			Count:   s.opts.ReadCount,
			Block:   s.opts.BlockTime,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// A broken connection stays broken: take a new one (new id).
			s.readerID.Store(0)
			_ = conn.Close()
			conn = s.client.Conn()
			// Reading resumes from the same id: nothing within the window is
			// lost while Redis is away.
			s.log.Warn("read stream", "stream", s.opts.StreamName, "after", last, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, st := range res {
			for _, m := range st.Messages {
				last = m.ID
				s.dispatch(m)
			}
		}
	}
}

func field(m redis.XMessage, name string) string {
	v, _ := m.Values[name].(string)
	return v
}

// dispatch delivers one entry; bad entries are logged and skipped.
func (s *Streams) dispatch(m redis.XMessage) {
	nsp := field(m, "nsp")
	if nsp == "" {
		if state, ok := m.Values[StateField].(string); ok && s.opts.OnState != nil {
			s.opts.OnState([]byte(state))
		}
		if s.opts.delivered != nil {
			s.opts.delivered(m.ID)
		}
		return
	}
	s.mu.RLock()
	a := s.adapters[nsp]
	s.mu.RUnlock()
	if a != nil {
		act, err := decodeStreamEntry(field(m, "uid"), nsp, field(m, "type"), field(m, "data"))
		switch {
		case err != nil:
			s.log.Warn("skip stream entry", "id", m.ID, "err", err)
		case act != nil:
			a.apply(act, m.ID, s.log)
		}
	}
	if s.opts.delivered != nil {
		s.opts.delivered(m.ID)
	}
}

// StreamsAdapter is one namespace's adapter in a Streams cluster.
type StreamsAdapter struct {
	local
	streams *Streams
	sub     *redis.PubSub
}

// Broadcast appends the packet to the stream; it reaches local sockets when
// read back, like everyone else's. With Flags.Local it is only delivered here.
// When Redis refuses the append nothing is delivered anywhere and the error is
// returned.
func (a *StreamsAdapter) Broadcast(p *parser.Packet, opts socketio.BroadcastOptions) error {
	if opts.Flags.Local {
		return a.MemoryAdapter.Broadcast(p, opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.streams.opts.PublishTimeout)
	defer cancel()
	_, err := a.Publish(ctx, p, opts, nil)
	return err
}

// Publish appends a broadcast to the stream and returns its entry id. With a
// fence, the entry carries the position (field walcast-pos) and is appended
// only if the position is above the mark at fence.MarkKey, which is raised to
// it in the same script; otherwise nothing changes and ErrFenced is returned.
func (a *StreamsAdapter) Publish(ctx context.Context, p *parser.Packet, opts socketio.BroadcastOptions, fence *Fence) (string, error) {
	q := *p
	q.Namespace = a.ns.Name()
	data, err := encodeClusterData(&q, opts)
	if err != nil {
		return "", fmt.Errorf("encode broadcast: %w", err)
	}
	s := a.streams
	if fence == nil {
		// A plain XADD: a Lua script costs Redis several times the command
		// itself, on the thread every lock operation waits for. The trim
		// bound comes from this host's clock; skew between hosts only moves
		// by that much when entries a --stream-window old go.
		id, err := s.client.XAdd(ctx, &redis.XAddArgs{
			Stream: s.opts.StreamName,
			MinID:  strconv.FormatInt(time.Now().Add(-s.opts.Window).UnixMilli(), 10),
			Approx: true,
			Values: []any{"uid", s.uid, "nsp", a.ns.Name(), "type", strconv.Itoa(typeBroadcast), "data", data},
		}).Result()
		if err != nil {
			return "", fmt.Errorf("append to stream %q: %w", s.opts.StreamName, err)
		}
		return id, nil
	}
	keys := []string{s.opts.StreamName, fence.MarkKey}
	pos := fence.Position.String()
	args := []any{
		strconv.FormatInt(s.opts.Window.Milliseconds(), 10), pos,
		"uid", s.uid, "nsp", a.ns.Name(), "type", strconv.Itoa(typeBroadcast), "data", data, PositionField, pos,
	}
	id, err := publishScript.Run(ctx, s.client, keys, args...).Text()
	if errors.Is(err, redis.Nil) {
		return "", ErrFenced
	}
	if err != nil {
		return "", fmt.Errorf("append to stream %q: %w", s.opts.StreamName, err)
	}
	return id, nil
}

// BatchItem is one entry of a PublishBatch: a broadcast of Packet; or, with
// Disconnect, a disconnectSockets request (type 6, as the Node adapter writes
// it) for the sockets Opts designates, which every instance applies to its
// own sockets when it reads it back (socketio.Socket.Disconnect(Close)); or,
// with State set, a walcast-only state entry (StateField) that every
// walcast instance hands to StreamsOptions.OnState and Node peers skip.
type BatchItem struct {
	Packet     *parser.Packet
	Opts       socketio.BroadcastOptions
	Disconnect bool
	Close      bool
	State      []byte
}

// publishBatchScript appends batches (each one committed transaction's
// events), each whole or not at all: a batch is appended only if its first
// position is above the mark, which is then raised to its last position,
// all in one atomic step. A batch cut in two by a crash between two appends
// could otherwise be half-published by one reader and wholly by the next,
// and a new reader's events for the same transaction may differ in number
// from the old one's (the router's noise suppression is per process), so
// per-event fencing would misalign; per-transaction fencing cannot. Several
// batches in one call are fenced one by one, in order, as if each had its
// own call: a reader that re-sends transactions after a crash may group
// already-published ones with new ones.
//
// KEYS[1] stream, KEYS[2] mark
// ARGV[1] window in ms, ARGV[2] uid, then per batch: first position, last
// position, entry count, then per entry: nsp, type, data, position; an
// entry with an empty nsp is a state entry (uid, walcast-state = data,
// position), which Node adapters skip for its lack of nsp.
// Returns one 1 (appended) or 0 (fenced) per batch.
var publishBatchScript = redis.NewScript(`
local mark = redis.call('GET', KEYS[2])
local t = redis.call('TIME')
local minid = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1]))
local trimmed = false
local moved = false
local out = {}
local i = 3
while i <= #ARGV do
  local first, last, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  if mark and mark >= first then
    out[#out + 1] = 0
  else
    for e = i, i + 4 * (n - 1), 4 do
      local add = {'XADD', KEYS[1]}
      if not trimmed then
        add[#add + 1] = 'MINID'
        add[#add + 1] = '~'
        add[#add + 1] = minid
        trimmed = true
      end
      add[#add + 1] = '*'
      add[#add + 1] = 'uid'
      add[#add + 1] = ARGV[2]
      if ARGV[e] == '' then
        add[#add + 1] = '` + StateField + `'
        add[#add + 1] = ARGV[e + 2]
      else
        add[#add + 1] = 'nsp'
        add[#add + 1] = ARGV[e]
        add[#add + 1] = 'type'
        add[#add + 1] = ARGV[e + 1]
        add[#add + 1] = 'data'
        add[#add + 1] = ARGV[e + 2]
      end
      add[#add + 1] = '` + PositionField + `'
      add[#add + 1] = ARGV[e + 3]
      redis.call(unpack(add))
    end
    mark = last
    moved = true
    out[#out + 1] = 1
  end
  i = i + 4 * n
end
if moved then
  redis.call('SET', KEYS[2], mark)
end
return out
`)

// FencedBatch is one transaction's entries for PublishBatches: entry i
// carries position {Position.LSN, Position.Index + i}.
type FencedBatch struct {
	Items    []BatchItem
	Position Position
}

// PublishBatch appends items to the stream as one fenced unit: all of them,
// only if fence.Position is above the mark at fence.MarkKey, or none. Entry
// i carries position {fence.Position.LSN, fence.Position.Index + i} in field
// walcast-pos, and the mark is raised to the last one, so a later batch must
// start above it. appended is false when the batch was fenced (already
// published, or older than what was): nothing changed, and that is not an
// error. An empty batch appends nothing but still raises the mark when it is
// above it. Entries are read back and delivered like any other broadcast,
// here and on every peer; Node peers ignore the extra field.
func (a *StreamsAdapter) PublishBatch(ctx context.Context, items []BatchItem, fence Fence) (appended bool, err error) {
	got, err := a.PublishBatches(ctx, []FencedBatch{{Items: items, Position: fence.Position}}, fence.MarkKey)
	if err != nil {
		return false, err
	}
	return got[0], nil
}

// PublishBatches publishes several transactions' batches, in order, in one
// Redis call, each fenced as PublishBatch fences it alone (so a transaction
// already published is skipped while the ones after it are appended).
// appended[i] says whether batches[i] was appended. Positions must rise from
// one batch to the next.
func (a *StreamsAdapter) PublishBatches(ctx context.Context, batches []FencedBatch, markKey string) (appended []bool, err error) {
	if markKey == "" {
		return nil, errors.New("publish batch: empty mark key")
	}
	if len(batches) == 0 {
		return nil, nil
	}
	s := a.streams
	args := make([]any, 0, 2+8*len(batches))
	args = append(args, strconv.FormatInt(s.opts.Window.Milliseconds(), 10), s.uid)
	var prev Position
	for bi, b := range batches {
		if uint64(b.Position.Index)+uint64(max(len(b.Items), 1))-1 > uint64(^uint32(0)) {
			return nil, fmt.Errorf("publish batch: %d items overflow the position index", len(b.Items))
		}
		first := b.Position
		last := Position{LSN: first.LSN, Index: first.Index + uint32(max(len(b.Items), 1)) - 1}
		if bi > 0 && first.String() <= prev.String() {
			return nil, fmt.Errorf("publish batches: batch %d at %s does not follow %s", bi, first, prev)
		}
		prev = last
		args = append(args, first.String(), last.String(), strconv.Itoa(len(b.Items)))
		for i, it := range b.Items {
			typ, data, nsp := typeBroadcast, "", a.ns.Name()
			switch {
			case it.State != nil:
				typ, data, nsp = 0, string(it.State), ""
			case it.Disconnect:
				typ, data = typeDisconnect, encodeDisconnectData(it.Opts, it.Close)
			default:
				if it.Packet == nil {
					return nil, fmt.Errorf("encode broadcast %d of batch at %s: no packet", i, first)
				}
				q := *it.Packet
				q.Namespace = a.ns.Name()
				if data, err = encodeClusterData(&q, it.Opts); err != nil {
					return nil, fmt.Errorf("encode broadcast %d of batch at %s: %w", i, first, err)
				}
			}
			args = append(args, nsp, strconv.Itoa(typ), data, Position{LSN: first.LSN, Index: first.Index + uint32(i)}.String())
		}
	}
	res, err := publishBatchScript.Run(ctx, s.client, []string{s.opts.StreamName, markKey}, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("append %d batches from %s to stream %q: %w", len(batches), batches[0].Position, s.opts.StreamName, err)
	}
	if len(res) != len(batches) {
		return nil, fmt.Errorf("append batches: script answered %d results for %d batches", len(res), len(batches))
	}
	appended = make([]bool, len(res))
	for i, r := range res {
		appended[i] = r == 1
	}
	return appended, nil
}

// ReadMark returns the high-water mark stored at key; ok is false when there
// is none yet.
func ReadMark(ctx context.Context, client *redis.Client, key string) (p Position, ok bool, err error) {
	v, err := client.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("read mark %q: %w", key, err)
	}
	p, err = ParsePosition(v)
	if err != nil {
		return Position{}, false, fmt.Errorf("read mark %q: %w", key, err)
	}
	return p, true, nil
}

// Client is the Redis client the adapter uses (for health checks).
func (s *Streams) Client() *redis.Client { return s.client }

// readRequests answers the cluster requests of Node peers on the namespace's
// pub/sub channels: fetchSockets with this instance's sockets, and
// acknowledged broadcasts by delivering the packet (without asking the
// clients for acknowledgements) and reporting 0 clients to wait for. Other
// requests (serverSideEmit) go unanswered. Takeover notices of walcast
// peers arrive here too (takeover.go).
func (a *StreamsAdapter) readRequests() {
	s := a.streams
	takeovers := s.takeoverChannel(a.ns.Name())
	for m := range a.sub.Channel() {
		if m.Channel == takeovers {
			a.onTakeover([]byte(m.Payload))
			continue
		}
		req, err := decodeClusterRequest([]byte(m.Payload))
		if err != nil {
			s.log.Warn("skip cluster request", "channel", m.Channel, "err", err)
			continue
		}
		if req == nil || req.uid == s.uid || req.nsp != a.ns.Name() {
			continue
		}
		var resp []byte
		switch req.typ {
		case typeFetchSockets:
			resp, err = encodeClusterResponse(s.uid, req.nsp, typeFetchSocketsResponse, map[string]any{
				"requestId": req.requestID, "sockets": a.fetch(req.opts),
			})
		case typeBroadcast:
			opts := req.opts
			opts.Flags.Local = true
			if err := a.MemoryAdapter.Broadcast(req.packet, opts); err != nil {
				s.log.Warn("deliver acknowledged broadcast", "err", err)
			}
			resp, err = encodeClusterResponse(s.uid, req.nsp, typeBroadcastClientCount, map[string]any{
				"requestId": req.requestID, "clientCount": 0,
			})
		}
		if err != nil {
			s.log.Warn("encode cluster response", "err", err)
			continue
		}
		channel := s.opts.ChannelPrefix + "#" + req.nsp + "#" + req.uid + "#"
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.PublishTimeout)
		if err := s.client.Publish(ctx, channel, resp).Err(); err != nil {
			s.log.Warn("publish cluster response", "channel", channel, "err", err)
		}
		cancel()
	}
}

// Close leaves the namespace's channels and stops delivering stream entries to it.
func (a *StreamsAdapter) Close() error {
	a.streams.mu.Lock()
	if a.streams.adapters[a.ns.Name()] == a {
		delete(a.streams.adapters, a.ns.Name())
	}
	a.streams.mu.Unlock()
	return a.sub.Close()
}
