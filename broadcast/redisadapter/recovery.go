package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/parser"
)

// Connection state recovery across instances: the stream is the shared
// history. A broadcast's offset is its stream entry id, and a session's
// state is a key "<StreamName>:session:<nsp>#<pid>" (JSON, expiring after the
// window), so any instance can restore a session another one (even a
// SIGKILLed one) held. The pub/sub adapter has no shared history: it
// inherits the memory adapter's per-instance recovery.

var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// restoreScanCount is the page size when reading the missed entries.
const restoreScanCount = 500

func (a *StreamsAdapter) sessionKey(pid string) string {
	// per namespace: a pid presented to another namespace finds nothing
	return a.streams.opts.StreamName + ":session:" + a.ns.Name() + "#" + pid
}

// PersistSession stores st for ttl.
func (a *StreamsAdapter) PersistSession(ctx context.Context, st socketio.SessionState, ttl time.Duration) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	if err := a.streams.client.Set(ctx, a.sessionKey(st.PID), b, ttl).Err(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// DropSession deletes a stored session.
func (a *StreamsAdapter) DropSession(ctx context.Context, pid string) error {
	if err := a.streams.client.Del(ctx, a.sessionKey(pid)).Err(); err != nil {
		return fmt.Errorf("drop session: %w", err)
	}
	return nil
}

// LoadSession reads the stored session of pid; nil when it expired.
func (a *StreamsAdapter) LoadSession(ctx context.Context, pid string) (*socketio.SessionState, error) {
	b, err := a.streams.client.Get(ctx, a.sessionKey(pid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	var st socketio.SessionState
	if err := json.Unmarshal(b, &st); err != nil || st.PID != pid || st.SID == "" || len(st.SID) > 64 {
		return nil, fmt.Errorf("read session %q: malformed state", a.sessionKey(pid))
	}
	return &st, nil
}

// MissedSince reads the broadcasts of this namespace appended after offset
// that st's rooms select. Not restorable (ok false): offset is not a stream
// id or is no longer in the stream (trimmed), or a disconnect entry since
// then designates the session (its user was revoked).
func (a *StreamsAdapter) MissedSince(ctx context.Context, st *socketio.SessionState, offset string) ([]socketio.MissedPacket, bool, error) {
	if !streamIDPattern.MatchString(offset) {
		return nil, false, nil
	}
	c := a.streams.client
	stream := a.streams.opts.StreamName
	first, err := c.XRangeN(ctx, stream, offset, offset, 1).Result()
	if err != nil {
		return nil, false, fmt.Errorf("read stream at offset: %w", err)
	}
	if len(first) == 0 {
		return nil, false, nil // trimmed, or never ours
	}
	var missed []socketio.MissedPacket
	for from := "(" + offset; ; {
		msgs, err := c.XRangeN(ctx, stream, from, "+", restoreScanCount).Result()
		if err != nil {
			return nil, false, fmt.Errorf("read missed entries: %w", err)
		}
		for _, m := range msgs {
			if field(m, "nsp") != a.ns.Name() {
				continue
			}
			act, err := decodeStreamEntry(field(m, "uid"), a.ns.Name(), field(m, "type"), field(m, "data"))
			if err != nil || act == nil {
				continue
			}
			switch act.kind {
			case typeBroadcast:
				if act.opts.Selects(st.Rooms) {
					q := *act.packet
					q.Namespace = a.ns.Name()
					q.Args = append(slices.Clip(q.Args), parser.AppendJSONString(nil, m.ID))
					missed = append(missed, socketio.MissedPacket{Offset: m.ID, Packet: &q})
				}
			case typeDisconnect:
				if act.opts.Selects(st.Rooms) {
					return nil, false, nil
				}
			}
		}
		if len(msgs) < restoreScanCount {
			break
		}
		from = "(" + msgs[len(msgs)-1].ID
	}
	return missed, true, nil
}
