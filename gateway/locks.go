package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/locks"
)

// handleLocks answers the contract's lock events. They run on the
// socket's read loop, so one client's acquire and release apply in the
// order it sent them; each store call is bounded by the lock service's
// timeout (2 s), so a sick Redis cannot stall a socket for long. The
// three share the socket's token bucket: past it a call is answered
// {success: false, error: "rate limited"} and touches nothing, so one
// socket cannot make walcast announce more than the bucket's rate of
// lock:update events to everyone.
func (g *Gateway) handleLocks(sock *socketio.Socket, st *socketState) {
	limited := func(call func(json.RawMessage) any) socketio.EventHandler {
		return func(_ *socketio.Socket, args socketio.Args, ack socketio.AckFunc) {
			if !st.lockCalls.take(time.Now()) {
				g.refused("lock_rate")
				_ = ack(map[string]any{"success": false, "error": ErrRateLimited})
				return
			}
			_ = ack(call(firstArg(args)))
		}
	}
	sock.On("lock:acquire", limited(func(p json.RawMessage) any { return st.lock.Acquire(context.Background(), p) }))
	sock.On("lock:release", limited(func(p json.RawMessage) any { return st.lock.Release(context.Background(), p) }))
	sock.On("lock:check", limited(func(p json.RawMessage) any { return st.lock.Check(context.Background(), p) }))
}

func firstArg(args socketio.Args) json.RawMessage {
	if args.Len() == 0 {
		return nil
	}
	return args.JSON[0]
}

// announceLock queues a lock:update for every client. The lock service
// calls it before it acks; with Redis, delivering it is a round trip of its
// own, so sendLockUpdates sends the queue in order and the ack does not
// wait for it.
func (g *Gateway) announceLock(u locks.Update) {
	select {
	case g.lockUpdates <- u:
	case <-g.stopping:
	}
}

// sendLockUpdates delivers queued lock announcements, in order, until ctx
// ends; what is queued by then is still sent.
func (g *Gateway) sendLockUpdates(ctx context.Context) {
	send := func(u locks.Update) {
		payload, err := json.Marshal(u.Payload)
		if err != nil {
			g.log.Error("encode lock update", "err", err)
			return
		}
		ev := broadcast.Event{Namespace: g.cfg.Namespace, Name: u.Event(), Payload: payload}
		if err := g.hub.Emit(context.WithoutCancel(ctx), ev); err != nil {
			g.log.Error("announce lock update", "event", u.Event(), "err", err)
			return
		}
		g.cfg.Observer.EventEmitted(EventLockUpdate, 1)
	}
	for {
		select {
		case u := <-g.lockUpdates:
			send(u)
		case <-ctx.Done():
			close(g.stopping)
			for {
				select {
				case u := <-g.lockUpdates:
					send(u)
				default:
					return
				}
			}
		}
	}
}
