package gateway

import (
	"context"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
	"github.com/walcast/walcast/route"
)

// Connection state recovery (socket.io-client 4.6+): a client that was
// away for up to the recovery window gets its session back
// (socket.recovered) and every event it missed; otherwise it gets
// recovered === false and must refetch. Every broadcast carries an offset
// as an extra last argument; a quiet tab would never learn one, so every
// socket gets the event EventOffset (no payload, only the offset) at
// connect and every OffsetInterval.
const (
	OffsetInterval = 30 * time.Second
	EventOffset    = "walcast:offset"
)

// DefaultRecoveryWindow is how long a disconnected client may come back
// unless told otherwise.
const DefaultRecoveryWindow = 2 * time.Minute

// Recovery returns the contract's recovery rules for a window, nil (off)
// when window is not positive: a session is restored only for a token of
// the same user, with the token rooms of the new token (the stored session
// keeps only rooms that are not reserved), and not across a RESYNC notice
// it missed.
func Recovery(window time.Duration, reserved route.ReservedRooms) *socketio.Recovery {
	if window <= 0 {
		return nil
	}
	return &socketio.Recovery{
		MaxDisconnection: window,
		Owner:            recoveryOwner,
		KeepRoom:         func(room string) bool { return !reserved.Contains(room) },
		Rooms:            recoveryRooms,
		Breaks:           missedResync,
	}
}

// recoveryOwner makes a session restorable only with a token of the same user.
func recoveryOwner(sock *socketio.Socket) string {
	if st := stateOf(sock); st != nil {
		return st.id.IDString
	}
	return ""
}

// recoveryRooms: a restored session's missed events are selected with the
// token rooms of the new token, not the stored ones.
func recoveryRooms(sock *socketio.Socket) []string {
	if st := stateOf(sock); st != nil {
		return tokenRooms(st.id)
	}
	return nil
}

// missedResync: a client that missed a RESYNC notice must refetch anyway,
// so its session is not restored.
func missedResync(p *parser.Packet) bool {
	return len(p.Args) > 2 && route.IsResyncNotice(p.Args[1])
}

func (g *Gateway) sendOffset(op socketio.BroadcastOperator) {
	if err := op.Emit(EventOffset); err != nil {
		g.log.Debug("send offset event", "err", err)
	}
}

// sendOffsets broadcasts EventOffset to every socket every OffsetInterval
// until ctx ends.
func (g *Gateway) sendOffsets(ctx context.Context) {
	t := time.NewTicker(OffsetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sendOffset(g.ns.Except())
		}
	}
}
