package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Transaction is what one committed database transaction sends: its events
// and then its revocations, delivered as a unit and in order.
type Transaction struct {
	// Position orders transactions; it must rise from one to the next
	// (walcast passes the transaction's END LSN). A fenced hub (Redis
	// streams) skips a transaction at or below the highest position already
	// published by any instance.
	Position uint64
	// Events go to the main namespace ("/").
	Events []Event
	// State, when set, reaches Cluster.OnState on every instance after the
	// events and before the revocations, in transaction order: walcast's
	// own bookkeeping (account changes), never seen by Node peers.
	State       []byte
	Revocations []Revocation
}

// Revocation disconnects, on every instance, the sockets of the main
// namespace that are in any of Rooms and in none of Except.
type Revocation struct {
	Rooms  []string
	Except []string
	// Without Close the sockets get a Socket.IO DISCONNECT ("io server
	// disconnect"), after which the official client stays offline. With
	// Close their connections are closed instead (socketio.Socket.Disconnect
	// (true)): the client reconnects by itself and its handshake meets the
	// authentication of the moment.
	Close bool
}

// ErrNotMainNamespace is returned by Publish for an event addressed to a
// namespace other than the main one.
var ErrNotMainNamespace = errors.New("transaction events go to the main namespace")

// Publish delivers committed transactions, in order, the way the hub's
// cluster carries them: in memory, as Redis pub/sub messages, or appended
// to the Redis stream with one fenced script call for all of them. It
// answers for each transaction it accepted, in order, whether this call
// delivered it (false: the fence found it published already, by this
// instance or another, and skipped it; it counts as accepted all the
// same). When it returns an error, the transactions from the first one it
// did not accept on were not accepted: the answer is shorter than txs.
func (h *Hub) Publish(ctx context.Context, txs []Transaction) (delivered []bool, err error) {
	for _, tx := range txs {
		for _, ev := range tx.Events {
			if ev.Namespace != "" && ev.Namespace != "/" {
				return nil, fmt.Errorf("publish %s at %X to %q: %w", ev.Name, tx.Position, ev.Namespace, ErrNotMainNamespace)
			}
		}
	}
	return h.carrier.publish(ctx, txs)
}

// GroupsTransactions reports whether Publish makes several transactions
// durable in one round trip (Redis streams): a caller that has several at
// hand should then pass them together. Elsewhere each Publish delivers as
// it goes, and passing one transaction at a time keeps a failure from
// holding back the ones before it.
func (h *Hub) GroupsTransactions() bool { return h.carrier.groups() }

// PublishedPosition returns the highest position a fenced hub has
// published (any instance, any process before this one); ok is false
// without a fence or before the first transaction.
func (h *Hub) PublishedPosition(ctx context.Context) (position uint64, ok bool, err error) {
	return h.carrier.publishedPosition(ctx)
}

// carrier is how a hub delivers transactions.
type carrier interface {
	publish(ctx context.Context, txs []Transaction) ([]bool, error)
	groups() bool
	publishedPosition(ctx context.Context) (uint64, bool, error)
}

// memoryCarrier emits each event through the namespace's adapter, hands
// the state to onState and disconnects this instance's revoked sockets.
type memoryCarrier struct {
	hub     *Hub
	onState func([]byte)
}

func (c memoryCarrier) publish(ctx context.Context, txs []Transaction) ([]bool, error) {
	return emitEach(ctx, c.hub, txs, func(_ context.Context, state []byte) error {
		if c.onState != nil {
			c.onState(state)
		}
		return nil
	}, func(_ context.Context, r Revocation) error {
		c.hub.srv.Sockets().To(r.Rooms...).Except(r.Except...).DisconnectSockets(r.Close)
		return nil
	})
}

func (memoryCarrier) groups() bool { return false }

func (memoryCarrier) publishedPosition(context.Context) (uint64, bool, error) { return 0, false, nil }

// pubsubCarrier publishes each event on the pub/sub adapter's channels and
// each revocation as a disconnect request every instance applies.
type pubsubCarrier struct {
	hub    *Hub
	pubsub *redisadapter.PubSub
}

func (c pubsubCarrier) publish(ctx context.Context, txs []Transaction) ([]bool, error) {
	return emitEach(ctx, c.hub, txs, func(ctx context.Context, state []byte) error {
		return c.pubsub.PublishState(ctx, "/", state)
	}, func(ctx context.Context, r Revocation) error {
		return c.pubsub.RequestDisconnect(ctx, "/", socketio.BroadcastOptions{Rooms: r.Rooms, Except: r.Except}, r.Close)
	})
}

func (pubsubCarrier) groups() bool { return false }

func (pubsubCarrier) publishedPosition(context.Context) (uint64, bool, error) { return 0, false, nil }

// emitEach delivers transactions one after the other: events through
// Hub.Emit, then the state through state, then revocations through revoke.
func emitEach(ctx context.Context, h *Hub, txs []Transaction, state func(context.Context, []byte) error, revoke func(context.Context, Revocation) error) ([]bool, error) {
	delivered := make([]bool, 0, len(txs))
	for _, tx := range txs {
		for _, ev := range tx.Events {
			if err := h.Emit(ctx, ev); err != nil {
				return delivered, fmt.Errorf("transaction at %X: %w", tx.Position, err)
			}
		}
		if tx.State != nil {
			if err := state(ctx, tx.State); err != nil {
				return delivered, fmt.Errorf("transaction at %X: %w", tx.Position, err)
			}
		}
		for _, r := range tx.Revocations {
			if err := revoke(ctx, r); err != nil {
				return delivered, fmt.Errorf("transaction at %X: revoke sockets in %v: %w", tx.Position, r.Rooms, err)
			}
		}
		delivered = append(delivered, true)
	}
	return delivered, nil
}

// streamsCarrier appends transactions to the Redis stream, each fenced by
// its position against the mark at markKey, all in one script call.
type streamsCarrier struct {
	streams *redisadapter.Streams
	client  *redis.Client
	markKey string
	log     *slog.Logger
}

func (c *streamsCarrier) groups() bool { return true }

func (c *streamsCarrier) publishedPosition(ctx context.Context) (uint64, bool, error) {
	mark, ok, err := redisadapter.ReadMark(ctx, c.client, c.markKey)
	return mark.LSN, ok, err
}

func (c *streamsCarrier) publish(ctx context.Context, txs []Transaction) ([]bool, error) {
	adapter := c.streams.Adapter("/")
	if adapter == nil {
		return nil, errors.New("publish transactions: the main namespace has no stream adapter")
	}
	batches := make([]redisadapter.FencedBatch, 0, len(txs))
	which := make([]int, 0, len(txs)) // index in txs of each batch
	entries := 0
	for i, tx := range txs {
		items, err := batchItems(tx)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			continue // nothing to append; the mark need not move for it
		}
		batches = append(batches, redisadapter.FencedBatch{Items: items, Position: redisadapter.Position{LSN: tx.Position}})
		which = append(which, i)
		entries += len(items)
	}
	delivered := make([]bool, len(txs))
	for i := range delivered {
		delivered[i] = true
	}
	if len(batches) == 0 {
		return delivered, nil
	}
	appended, err := adapter.PublishBatches(ctx, batches, c.markKey)
	if err != nil {
		first, last := batches[0].Position, batches[len(batches)-1].Position
		return nil, fmt.Errorf("publish %d transactions (end %s to %s): %w", len(batches), first, last, err)
	}
	for b, ok := range appended {
		delivered[which[b]] = ok
	}
	c.log.Debug("published to the stream", "transactions", len(batches), "entries", entries)
	return delivered, nil
}

// batchItems turns one transaction's events, state and revocations into
// the entries of its fenced batch, in that order.
func batchItems(tx Transaction) ([]redisadapter.BatchItem, error) {
	items := make([]redisadapter.BatchItem, 0, len(tx.Events)+1+len(tx.Revocations))
	for _, ev := range tx.Events {
		if ev.Name == "" {
			return nil, fmt.Errorf("publish transaction at %X: empty event name", tx.Position)
		}
		if len(ev.Payload) != 0 && !json.Valid(ev.Payload) {
			return nil, fmt.Errorf("publish %s at %X: invalid JSON payload", ev.Name, tx.Position)
		}
		p := &parser.Packet{Type: parser.Event, Namespace: "/", ID: parser.NoID, Name: ev.Name,
			Args: []json.RawMessage{parser.AppendJSONString(nil, ev.Name)}}
		if len(ev.Payload) != 0 {
			p.Args = append(p.Args, ev.Payload)
		}
		items = append(items, redisadapter.BatchItem{Packet: p, Opts: socketio.BroadcastOptions{Rooms: ev.Rooms, Except: ev.Except}})
	}
	if tx.State != nil {
		items = append(items, redisadapter.BatchItem{State: tx.State})
	}
	for _, r := range tx.Revocations {
		items = append(items, redisadapter.BatchItem{Disconnect: true, Close: r.Close, Opts: socketio.BroadcastOptions{Rooms: r.Rooms, Except: r.Except}})
	}
	return items, nil
}
