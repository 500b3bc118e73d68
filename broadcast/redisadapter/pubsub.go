package redisadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// PubSubOptions configure the Redis pub/sub adapter. Zero values take the
// defaults of @socket.io/redis-adapter 8.
type PubSubOptions struct {
	// Key prefixes the channels ("<key>#<nsp>#", "<key>-request#<nsp>#");
	// default "socket.io".
	Key string
	// PublishTimeout bounds one PUBLISH; default 5 s.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	// OnState, when set, receives what PublishState published, from any
	// instance, this one included, in the order of the broadcasts and
	// disconnect requests around it (one subscription carries them all).
	// Like all of pub/sub it is lost for an instance cut off from Redis.
	OnState func(state []byte)

	// delivered, when set (tests and benchmarks), runs after each message read.
	delivered func()
}

// PubSub joins the instances of a cluster through Redis pub/sub, wire
// compatible with @socket.io/redis-adapter 8 and @socket.io/redis-emitter 5:
// a broadcast is published as the msgpack tuple [uid, packet, opts] on
// "<key>#<nsp>#", or "<key>#<nsp>#<room>#" when it targets exactly one room,
// and every instance, this one included, delivers what it receives on
// "<key>#<nsp>#*". Pub/sub keeps nothing: a message published while an
// instance is disconnected from Redis never reaches that instance's sockets.
type PubSub struct {
	client *redis.Client
	opts   PubSubOptions
	uid    string
	log    *slog.Logger
}

// NewPubSub returns the cluster membership; pass its NewAdapter as
// socketio.Config.NewAdapter.
func NewPubSub(client *redis.Client, opts PubSubOptions) *PubSub {
	if opts.Key == "" {
		opts.Key = "socket.io"
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &PubSub{
		client: client,
		opts:   opts,
		// The Node adapter's uids are 6 random characters; any unique string works.
		uid: randomUID()[:6],
		log: opts.Logger.With("component", "redis-adapter"),
	}
}

// UID is this instance's id in the messages it publishes.
func (p *PubSub) UID() string { return p.uid }

// NewAdapter builds the adapter of ns; it fits socketio.Config.NewAdapter.
// It returns once Redis confirmed the subscriptions (or after PublishTimeout
// when Redis is away; go-redis subscribes again when it is back).
func (p *PubSub) NewAdapter(ns *socketio.Namespace) socketio.Adapter {
	a := &PubSubAdapter{
		local:    local{MemoryAdapter: socketio.NewMemoryAdapter(), ns: ns},
		pubsub:   p,
		channel:  p.opts.Key + "#" + ns.Name() + "#",
		requests: p.opts.Key + "-request#" + ns.Name() + "#",
		states:   p.stateChannel(ns.Name()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.PublishTimeout)
	defer cancel()
	response := p.opts.Key + "-response#" + ns.Name() + "#"
	a.sub = subscribe(ctx, p.client, p.log,
		[]string{a.channel + "*"},
		[]string{a.requests, response, response + p.uid + "#", a.states})
	a.done = make(chan struct{})
	go a.read()
	return a
}

// PubSubAdapter is one namespace's adapter in a PubSub cluster.
type PubSubAdapter struct {
	local
	pubsub   *PubSub
	channel  string
	requests string
	states   string
	sub      *redis.PubSub
	done     chan struct{}
}

// stateChannel carries walcast-only state messages (PublishState) for
// namespace nsp: "<key>-walcast#<nsp>#", which no Node adapter subscribes
// to (@socket.io/redis-adapter 8 psubscribes "<key>#<nsp>#*" and subscribes
// exactly to "<key>-request#<nsp>#" and "<key>-response#<nsp>#[<uid>#]").
func (p *PubSub) stateChannel(nsp string) string { return p.opts.Key + "-walcast#" + nsp + "#" }

// PublishState hands state to OnState on every instance subscribed to
// namespace nsp, this one included, in order with what this instance
// published before and after it.
func (p *PubSub) PublishState(ctx context.Context, nsp string, state []byte) error {
	channel := p.stateChannel(nsp)
	ctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
	defer cancel()
	if err := p.client.Publish(ctx, channel, state).Err(); err != nil {
		return fmt.Errorf("publish state to %q: %w", channel, err)
	}
	return nil
}

// Broadcast publishes the packet; local sockets get it when this instance
// receives its own message back, like every other instance. With Flags.Local
// it is only delivered here.
func (a *PubSubAdapter) Broadcast(p *parser.Packet, opts socketio.BroadcastOptions) error {
	if opts.Flags.Local {
		return a.MemoryAdapter.Broadcast(p, opts)
	}
	q := *p
	q.Namespace = a.ns.Name()
	msg, err := encodePubSubBroadcast(a.pubsub.uid, &q, opts)
	if err != nil {
		return fmt.Errorf("encode broadcast: %w", err)
	}
	channel := a.channel
	if len(opts.Rooms) == 1 {
		channel += opts.Rooms[0] + "#"
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.pubsub.opts.PublishTimeout)
	defer cancel()
	if err := a.pubsub.client.Publish(ctx, channel, msg).Err(); err != nil {
		return fmt.Errorf("publish to %q: %w", channel, err)
	}
	return nil
}

// RequestDisconnect asks every instance, this one included, to disconnect
// the sockets opts designates in the adapter's namespace
// (PubSub.RequestDisconnect, without closing their transport).
func (a *PubSubAdapter) RequestDisconnect(ctx context.Context, opts socketio.BroadcastOptions) error {
	return a.pubsub.RequestDisconnect(ctx, a.ns.Name(), opts, false)
}

// RequestDisconnect asks every instance, this one included, to disconnect
// the sockets opts designates in namespace nsp: a disconnectSockets request
// on "<key>-request#<nsp>#", as @socket.io/redis-emitter sends it, so Node
// peers apply it too. The sockets get a DISCONNECT packet ("io server
// disconnect"); with closeConn their connections are closed too. Like all of
// pub/sub, an instance cut off from Redis when it is published never sees
// it.
func (p *PubSub) RequestDisconnect(ctx context.Context, nsp string, opts socketio.BroadcastOptions, closeConn bool) error {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":`...)
	b = strconv.AppendInt(b, requestRemoteDisconnect, 10)
	b = append(b, `,"opts":{"rooms":`...)
	b = appendJSONStrings(b, opts.Rooms)
	b = append(b, `,"except":`...)
	b = appendJSONStrings(b, opts.Except)
	b = append(b, `},"close":`...)
	b = strconv.AppendBool(b, closeConn)
	b = append(b, '}')
	channel := p.opts.Key + "-request#" + nsp + "#"
	ctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
	defer cancel()
	if err := p.client.Publish(ctx, channel, b).Err(); err != nil {
		return fmt.Errorf("publish disconnect request to %q: %w", channel, err)
	}
	return nil
}

// Client is the Redis client the adapter uses (for health checks).
func (p *PubSub) Client() *redis.Client { return p.client }

func (a *PubSubAdapter) read() {
	defer close(a.done)
	log := a.pubsub.log
	for m := range a.sub.Channel() {
		var act *action
		var err error
		switch {
		case strings.HasPrefix(m.Channel, a.channel):
			act, err = decodePubSubBroadcast([]byte(m.Payload))
			if err == nil && act.nsp != a.ns.Name() {
				err = badf("packet for namespace %q on channel %q", act.nsp, m.Channel)
			}
		case m.Channel == a.requests:
			if a.answer([]byte(m.Payload)) {
				continue
			}
			act, err = decodePubSubRequest([]byte(m.Payload))
		case m.Channel == a.states:
			if a.pubsub.opts.OnState != nil {
				a.pubsub.opts.OnState([]byte(m.Payload))
			}
		default:
			// Responses to requests walcast never makes.
			continue
		}
		if err != nil {
			log.Warn("skip redis message", "channel", m.Channel, "err", err)
			continue
		}
		if act != nil {
			act.nsp = a.ns.Name()
			a.apply(act, "", log)
		}
		if a.pubsub.opts.delivered != nil {
			a.pubsub.opts.delivered()
		}
	}
}

// answer replies to the queries of Node peers (fetchSockets, allRooms,
// sockets) on the response channel, and reports whether m was one.
func (a *PubSubAdapter) answer(m []byte) bool {
	log := a.pubsub.log
	req, err := decodePubSubQuery(m)
	if err != nil {
		log.Warn("skip redis request", "err", err)
		return true
	}
	if req == nil {
		return false
	}
	resp := map[string]any{"requestId": req.RequestID}
	switch req.Type {
	case requestRemoteFetch:
		opts, err := req.Opts.options()
		if err != nil {
			log.Warn("skip redis request", "err", err)
			return true
		}
		resp["sockets"] = a.fetch(opts)
	case requestSockets:
		ids := []string{}
		for _, s := range a.MemoryAdapter.Sockets(req.Rooms) {
			ids = append(ids, s.ID())
		}
		resp["sockets"] = ids
	case requestAllRooms:
		resp["rooms"] = a.roomList()
	}
	b, err := json.Marshal(resp)
	if err != nil {
		log.Warn("encode redis response", "err", err)
		return true
	}
	channel := a.pubsub.opts.Key + "-response#" + a.ns.Name() + "#"
	ctx, cancel := context.WithTimeout(context.Background(), a.pubsub.opts.PublishTimeout)
	defer cancel()
	if err := a.pubsub.client.Publish(ctx, channel, b).Err(); err != nil {
		log.Warn("publish redis response", "channel", channel, "err", err)
	}
	return true
}

// Close leaves the channels.
func (a *PubSubAdapter) Close() error {
	err := a.sub.Close()
	<-a.done
	return err
}
