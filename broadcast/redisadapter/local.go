package redisadapter

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
)

// NewClient opens a Redis client from a URL: redis:// or rediss:// (TLS),
// with an ACL user and password in the userinfo
// (rediss://user:password@host:6380/0), as go-redis ParseURL reads them.
// rootCAs, when not nil, replaces the system roots for verifying a rediss://
// server (e.g. a private CA); the server name checked is the URL's host.
func NewClient(url string, rootCAs *x509.CertPool) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	if opt.TLSConfig != nil && rootCAs != nil {
		opt.TLSConfig.RootCAs = rootCAs
	}
	return redis.NewClient(opt), nil
}

// local is what both adapters share: the namespace's memory adapter, which
// holds room membership and delivers to this instance's sockets.
type local struct {
	*socketio.MemoryAdapter
	ns *socketio.Namespace
}

// apply carries out on this instance's sockets what a message read back from
// Redis asks for.
// offset, when not empty, is the broadcast's offset for connection state
// recovery (its stream entry id).
func (l *local) apply(a *action, offset string, log *slog.Logger) {
	switch a.kind {
	case typeBroadcast:
		opts := a.opts
		opts.Flags.Local = true
		opts.Flags.Offset = offset
		if err := l.MemoryAdapter.Broadcast(a.packet, opts); err != nil {
			log.Warn("deliver broadcast from redis", "nsp", a.nsp, "err", err)
		}
	case typeSocketsJoin:
		for _, s := range l.selected(a.opts) {
			s.Join(a.rooms...)
		}
	case typeSocketsLeave:
		for _, s := range l.selected(a.opts) {
			for _, r := range a.rooms {
				s.Leave(r)
			}
		}
	case typeDisconnect:
		for _, s := range l.selected(a.opts) {
			s.Disconnect(a.close)
		}
	}
}

// selected lists the local sockets opts designates.
func (l *local) selected(opts socketio.BroadcastOptions) []*socketio.Socket {
	all := l.MemoryAdapter.Sockets(opts.Rooms)
	if len(opts.Except) == 0 {
		return all
	}
	out := all[:0]
	for _, s := range all {
		excluded := false
		for _, r := range l.MemoryAdapter.SocketRooms(s) {
			if slices.Contains(opts.Except, r) {
				excluded = true
				break
			}
		}
		if !excluded {
			out = append(out, s)
		}
	}
	return out
}

// subscribe opens a pub/sub connection on channels and patterns and waits for
// Redis to confirm each, so nothing published after it returns is missed.
// When Redis is unreachable it logs and returns the connection anyway:
// go-redis resubscribes once Redis is back.
func subscribe(ctx context.Context, client *redis.Client, log *slog.Logger, patterns, channels []string) *redis.PubSub {
	ps := client.Subscribe(ctx)
	want := 0
	if len(patterns) > 0 {
		if err := ps.PSubscribe(ctx, patterns...); err != nil {
			log.Warn("redis psubscribe", "patterns", patterns, "err", err)
			return ps
		}
		want += len(patterns)
	}
	if len(channels) > 0 {
		if err := ps.Subscribe(ctx, channels...); err != nil {
			log.Warn("redis subscribe", "channels", channels, "err", err)
			return ps
		}
		want += len(channels)
	}
	for got := 0; got < want; {
		m, err := ps.Receive(ctx)
		if err != nil {
			log.Warn("redis subscribe: waiting for confirmation", "err", err)
			return ps
		}
		if _, ok := m.(*redis.Subscription); ok {
			got++
		}
	}
	return ps
}
