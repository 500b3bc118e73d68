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
	held map[Resource]struct{}
	// conns counts the sockets attached (Connect minus Disconnect): a
	// socket that resumes the session may attach before the socket it
	// replaces has detached.
	conns int
	// away is set while the session's socket is gone from this instance
	// but its presence says it lives on elsewhere: its locks are kept (and
	// renewed) for it.
	away     bool
	presence Presence
	grace    *time.Timer
	// round numbers the grace timers: a timer that fired while Connect
	// stopped it acts only if no newer round began.
	round uint64
}

// Presence reports, for a session whose socket disconnected from this
// instance, how much longer that socket may still be connected or come back
// anywhere in the cluster: a Socket.IO session resumed on another instance
// keeps the socket id, but its new socket is not on this one. 0 means gone
// everywhere. The Service asks again when that time has passed.
type Presence func(ctx context.Context) (time.Duration, error)

// Connect returns the Session for a socket. key identifies the connection
// across a Socket.IO connection-state recovery (the socket id, which a
// recovered socket keeps): connecting again with the same key while the
// session is kept (within the grace window, or while it is away on another
// instance) returns the same Session, with its locks, and cancels the
// pending release.
func (s *Service) Connect(key string, c Caller) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[key]; sess != nil && sess.caller.UserID == c.UserID {
		if sess.grace != nil {
			sess.grace.Stop()
			sess.grace = nil
		}
		sess.round++
		sess.conns++
		sess.away = false
		sess.caller = c
		return sess
	}
	sess := &Session{svc: s, key: key, caller: c, held: make(map[Resource]struct{}), conns: 1}
	if !s.closed {
		s.sessions[key] = sess
	}
	return sess
}

// holderKey names this session among a lock's holders in the store, when
// the service releases locks on disconnect (the only reader of holders).
func (ss *Session) holderKey() string {
	if !ss.svc.releaseOnDisconnect {
		return ""
	}
	return ss.key
}

// SetPresence makes the release of this session's locks after a disconnect
// wait for as long as p says its socket may live on elsewhere (see
// Presence); without it the locks are released when the grace window
// passes. The latest call wins.
func (ss *Session) SetPresence(p Presence) {
	ss.svc.mu.Lock()
	ss.presence = p
	ss.svc.mu.Unlock()
}

// Acquire handles lock:acquire for this socket.
func (ss *Session) Acquire(ctx context.Context, payload json.RawMessage) Ack {
	ack, r := ss.svc.acquire(ctx, ss.caller, ss.holderKey(), payload)
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
// grace window unless Connect brings the session back first, or its
// Presence says it lives on elsewhere (then they are kept, and renewed,
// until it is gone everywhere); without it the locks stay until their TTL,
// as the contract says.
func (ss *Session) Disconnect() {
	s := ss.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.key] != ss || ss.conns == 0 {
		return
	}
	ss.conns--
	if ss.conns > 0 {
		return // another socket of the session is still here
	}
	if !s.releaseOnDisconnect && !s.renew {
		delete(s.sessions, ss.key) // nothing to come back to
		return
	}
	s.armLocked(ss, s.grace)
}

// armLocked starts a new round: expireSession runs after d.
func (s *Service) armLocked(ss *Session, d time.Duration) {
	ss.round++
	round := ss.round
	ss.grace = time.AfterFunc(d, func() { s.expireSession(ss, round) })
}

// keptLocked reports whether ss is still the kept, detached session of
// round: a Connect, a later Disconnect (which arms its own round) or
// shutdown meanwhile end it.
func (s *Service) keptLocked(ss *Session, round uint64) bool {
	return s.sessions[ss.key] == ss && ss.conns == 0 && ss.round == round && !s.closed
}

// expireSession runs when the grace window passes without a reconnect, and
// again each time the session's presence said to wait.
func (s *Service) expireSession(ss *Session, round uint64) {
	s.mu.Lock()
	if !s.keptLocked(ss, round) {
		s.mu.Unlock()
		return
	}
	ss.grace = nil
	presence := ss.presence
	s.mu.Unlock()
	if presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.opTimeout)
		left, err := presence(ctx)
		cancel()
		if err != nil {
			// Keeping is the safe side: the locks still expire by their TTL.
			// Debug: a Redis outage is logged where it is seen, and this
			// would repeat for every disconnected session.
			s.log.Debug("lock session presence unknown; keeping its locks and asking again", "retry_in", s.presenceRetry(), "err", err)
			left = s.presenceRetry()
		}
		if left > 0 {
			s.mu.Lock()
			if s.keptLocked(ss, round) {
				s.log.Debug("lock session kept: its socket may live on elsewhere", "key", ss.key, "recheck_in", left+presenceSlack)
				ss.away = true
				// Just past the moment it said, so a stored session that
				// expires then is seen gone.
				s.armLocked(ss, left+presenceSlack)
			}
			s.mu.Unlock()
			return
		}
	}
	s.mu.Lock()
	if !s.keptLocked(ss, round) {
		s.mu.Unlock()
		return
	}
	delete(s.sessions, ss.key)
	ss.away = false
	var held []Resource
	if s.releaseOnDisconnect {
		for r := range ss.held {
			held = append(held, r)
		}
	}
	s.mu.Unlock()
	s.log.Debug("lock session ended", "key", ss.key, "held", len(held))
	for _, r := range held {
		// The lock belongs to the user: another session of theirs that
		// also took it (another tab, on any instance) keeps it, and the
		// last of them to end releases it. Release-if-owner: if the lock
		// expired and someone else took it, this changes nothing.
		s.releaseSession(context.Background(), ss, r)
	}
}

// releaseSession releases r for the ended session ss unless another
// session still holds it, and announces a release.
func (s *Service) releaseSession(ctx context.Context, ss *Session, r Resource) {
	result := ResultUnavailable
	defer s.observe(OpReleaseOnDisconnect, &result, time.Now())
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	res, kept, err := s.store.ReleaseSession(ctx, r, ss.caller.UserID, ss.key)
	if err != nil {
		// The lock then lives out its TTL: released late, never stolen.
		s.storeFailed("release on disconnect", r, err)
		return
	}
	s.storeOK()
	switch {
	case kept:
		result = ResultKept
	case res.Outcome == Released:
		result = ResultReleased
		s.announceFree(r)
	case res.Outcome == WasFree:
		result = ResultWasFree
	default:
		result = ResultNotOwner
	}
}

// presenceSlack is added to the time a Presence says is left before asking
// again.
const presenceSlack = 100 * time.Millisecond

// presenceRetry is how long to wait before asking a Presence that failed
// again.
func (s *Service) presenceRetry() time.Duration { return min(s.grace, 10*time.Second) }

// RenewOnce extends every lock held through a connected session, or one
// away on another instance. Locks found lost (released elsewhere, expired
// and re-taken) are forgotten.
func (s *Service) RenewOnce(ctx context.Context) {
	type job struct {
		ss *Session
		r  Resource
	}
	var jobs []job
	s.mu.Lock()
	for _, ss := range s.sessions {
		if ss.conns == 0 && !ss.away {
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
		start := time.Now()
		octx, cancel := context.WithTimeout(ctx, s.opTimeout)
		o := j.ss.caller.owner()
		o.Session = j.ss.holderKey()
		res, err := s.store.Extend(octx, j.r, o)
		cancel()
		if err != nil {
			s.obs.LockOperation(OpRenew, ResultUnavailable, time.Since(start))
			s.storeFailed("renew", j.r, err)
			continue // try again next round; the TTL leaves room
		}
		s.storeOK()
		if res.Outcome == Refreshed {
			s.obs.LockOperation(OpRenew, ResultRefreshed, time.Since(start))
		} else {
			s.obs.LockOperation(OpRenew, ResultLost, time.Since(start))
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
