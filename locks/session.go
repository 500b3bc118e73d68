package locks

import (
	"context"
	"encoding/json"
	"time"
)

// Session is one socket's view of the Service. Going through a Session
// (rather than the Service directly) lets the Service know which locks a
// connected socket holds, for renewal and release-on-disconnect.
type Session struct {
	svc    *Service
	key    string
	caller Caller

	// The fields below are guarded by svc.mu.
	held      map[Resource]struct{}
	connected bool
	grace     *time.Timer
}

// Connect returns the Session for a socket. key identifies the connection
// across a Socket.IO connection-state recovery (the socket id, which a
// recovered socket keeps): connecting again with the same key within the
// grace window returns the same Session, with its locks, and cancels the
// pending release.
func (s *Service) Connect(key string, c Caller) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[key]; sess != nil && sess.caller.UserID == c.UserID {
		if sess.grace != nil {
			sess.grace.Stop()
			sess.grace = nil
		}
		sess.connected = true
		sess.caller = c
		return sess
	}
	sess := &Session{svc: s, key: key, caller: c, held: make(map[Resource]struct{}), connected: true}
	if !s.closed {
		s.sessions[key] = sess
	}
	return sess
}

// Acquire handles lock:acquire for this socket.
func (ss *Session) Acquire(ctx context.Context, payload json.RawMessage) Ack {
	ack, r := ss.svc.acquire(ctx, ss.caller, payload)
	if r != nil {
		ss.svc.mu.Lock()
		ss.held[*r] = struct{}{}
		ss.svc.mu.Unlock()
	}
	return ack
}

// Release handles lock:release for this socket.
func (ss *Session) Release(ctx context.Context, payload json.RawMessage) Ack {
	ack, r := ss.svc.release(ctx, ss.caller, payload)
	if r != nil {
		ss.svc.mu.Lock()
		delete(ss.held, *r)
		ss.svc.mu.Unlock()
	}
	return ack
}

// Check handles lock:check for this socket.
func (ss *Session) Check(ctx context.Context, payload json.RawMessage) CheckAck {
	return ss.svc.Check(ctx, ss.caller, payload)
}

// Caller is who this session belongs to.
func (ss *Session) Caller() Caller { return ss.caller }

// Held lists the resources this session took and has not released (some
// may have expired or been renewed away meanwhile).
func (ss *Session) Held() []Resource {
	ss.svc.mu.Lock()
	defer ss.svc.mu.Unlock()
	out := make([]Resource, 0, len(ss.held))
	for r := range ss.held {
		out = append(out, r)
	}
	return out
}

// Disconnect is called when the socket goes away. Renewal stops at once.
// With ReleaseOnDisconnect the session's locks are released after the
// grace window unless Connect brings the session back first; without it
// the locks stay until their TTL, as the contract says.
func (ss *Session) Disconnect() {
	s := ss.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.key] != ss || !ss.connected {
		return
	}
	ss.connected = false
	if !s.releaseOnDisconnect && !s.renew {
		delete(s.sessions, ss.key) // nothing to come back to
		return
	}
	ss.grace = time.AfterFunc(s.grace, func() { s.expireSession(ss) })
}

// expireSession runs when the grace window passes without a reconnect.
func (s *Service) expireSession(ss *Session) {
	s.mu.Lock()
	if s.sessions[ss.key] != ss || ss.connected || s.closed {
		s.mu.Unlock()
		return
	}
	delete(s.sessions, ss.key)
	ss.grace = nil
	var toRelease []Resource
	if s.releaseOnDisconnect {
		for r := range ss.held {
			// The lock belongs to the user: another open tab of theirs that
			// also took it keeps it.
			if !s.heldElsewhereLocked(ss, r) {
				toRelease = append(toRelease, r)
			}
		}
	}
	s.mu.Unlock()
	for _, r := range toRelease {
		// Release-if-owner: if the lock expired and someone else took it,
		// this changes nothing.
		s.releaseResource(context.Background(), ss.caller.UserID, r)
	}
}

func (s *Service) heldElsewhereLocked(ss *Session, r Resource) bool {
	for _, o := range s.sessions {
		if o != ss && o.connected && o.caller.UserID == ss.caller.UserID {
			if _, ok := o.held[r]; ok {
				return true
			}
		}
	}
	return false
}

// RenewOnce extends every lock held through a connected session. Locks
// found lost (released elsewhere, expired and re-taken) are forgotten.
func (s *Service) RenewOnce(ctx context.Context) {
	type job struct {
		ss *Session
		r  Resource
	}
	var jobs []job
	s.mu.Lock()
	for _, ss := range s.sessions {
		if !ss.connected {
			continue
		}
		for r := range ss.held {
			jobs = append(jobs, job{ss, r})
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		octx, cancel := context.WithTimeout(ctx, s.opTimeout)
		res, err := s.store.Extend(octx, j.r, j.ss.caller.owner())
		cancel()
		if err != nil {
			s.storeFailed("renew", j.r, err)
			continue // try again next round; the TTL leaves room
		}
		s.storeOK()
		if res.Outcome != Refreshed {
			s.mu.Lock()
			delete(j.ss.held, j.r)
			s.mu.Unlock()
		}
	}
}

// shutdown stops pending grace timers without releasing: a walcast that
// stops leaves locks to their TTL, as the contract's clients expect.
func (s *Service) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for k, ss := range s.sessions {
		if ss.grace != nil {
			ss.grace.Stop()
		}
		delete(s.sessions, k)
	}
}
