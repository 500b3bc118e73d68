package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cross-instance takeover of a resumed session (streams adapter).
//
// When a client resumes its session on instance B while its old socket is
// still connected on instance A (A has not yet seen the old transport die),
// B publishes a takeover notice and A closes the old socket at once, as a
// restore on A itself would (socketio.Namespace.TakeOver): otherwise it
// lingers until its ping timeout, receiving broadcasts for a client that is
// gone and holding the socket id.
//
// The notice is JSON {"uid", "sid", "gen"} published on a channel of its own,
// "<ChannelPrefix>-walcast#<nsp>#", which only walcast instances subscribe
// to. That is what makes it safe with Node peers sharing the Redis: the
// streams adapter 0.3.1 subscribes exactly to "<prefix>#<nsp>#" and
// "<prefix>#<nsp>#<uid>#"; @socket.io/redis-adapter 8 subscribes to the
// pattern "<key>#<nsp>#*" and exactly to "<key>-request#<nsp>#" and
// "<key>-response#<nsp>#[<uid>#]"; none of them matches "socket.io-walcast#",
// so no Node peer ever receives the notice (PUBSUB NUMSUB on the public
// channel, by which Node counts servers, is unchanged too). It is not a
// stream entry either, so Node's restoreSession and stream reader never see
// it. With an ACL limited to the channels "socket.io*" it is allowed.
//
// The pub/sub adapter sends no notices: its sessions are kept in each
// instance's memory, so a session can only be resumed on the instance that
// holds it, where the old socket is closed locally.

// takeoverChannel is where takeover notices of namespace nsp go.
func (s *Streams) takeoverChannel(nsp string) string {
	return s.opts.ChannelPrefix + "-walcast#" + nsp + "#"
}

type takeoverNotice struct {
	UID string `json:"uid"`
	SID string `json:"sid"`
	Gen uint64 `json:"gen"`
}

// decodeTakeoverNotice reads a notice off the channel: Redis is a trust
// boundary, so anything malformed is refused.
func decodeTakeoverNotice(b []byte) (takeoverNotice, error) {
	var n takeoverNotice
	if err := json.Unmarshal(b, &n); err != nil {
		return takeoverNotice{}, fmt.Errorf("takeover notice: %w", err)
	}
	if n.UID == "" || n.SID == "" || len(n.SID) > 64 || len(n.UID) > 64 {
		return takeoverNotice{}, fmt.Errorf("takeover notice: uid %q, sid %q: want both, at most 64 bytes", n.UID, n.SID)
	}
	return n, nil
}

// NotifyTakeover tells the other instances that the session of socket sid
// was resumed here as generation gen (socketio.TakeoverNotifier).
func (a *StreamsAdapter) NotifyTakeover(ctx context.Context, sid string, gen uint64) error {
	s := a.streams
	b, err := json.Marshal(takeoverNotice{UID: s.uid, SID: sid, Gen: gen})
	if err != nil {
		return fmt.Errorf("encode takeover notice: %w", err)
	}
	channel := s.takeoverChannel(a.ns.Name())
	if err := s.client.Publish(ctx, channel, b).Err(); err != nil {
		return fmt.Errorf("publish takeover notice to %q: %w", channel, err)
	}
	return nil
}

// onTakeover closes the old socket a peer's notice designates. Its own
// notices are skipped: the socket with that id here is the new one.
func (a *StreamsAdapter) onTakeover(payload []byte) {
	n, err := decodeTakeoverNotice(payload)
	if err != nil {
		a.streams.log.Warn("skip takeover notice", "nsp", a.ns.Name(), "err", err)
		return
	}
	if n.UID == a.streams.uid {
		return
	}
	if a.ns.TakeOver(n.SID, n.Gen) {
		a.streams.log.Debug("closed a socket whose session was resumed on another instance", "nsp", a.ns.Name(), "socket", n.SID, "by", n.UID)
	}
}

// SessionTTL returns how long the stored session pid has left; 0 when it is
// not stored (socketio.SessionLifetime).
func (a *StreamsAdapter) SessionTTL(ctx context.Context, pid string) (time.Duration, error) {
	d, err := a.streams.client.PTTL(ctx, a.sessionKey(pid)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read session ttl: %w", err)
	}
	switch {
	case d == -1:
		// a key without expiry is not one walcast wrote; treat it as
		// stored for a whole window rather than forever
		return a.streams.opts.Window, nil
	case d <= 0:
		return 0, nil
	}
	return d, nil
}
