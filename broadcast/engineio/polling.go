package engineio

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// upgradeCheck is how long a poll pending during an upgrade probe waits
// before it is released with a noop.
const upgradeCheck = 100 * time.Millisecond

// handlePoll answers a long-polling GET: it waits until there is something
// to send, the session closes, or an upgrade needs the poll released.
func (s *Session) handlePoll(w http.ResponseWriter, r *http.Request) {
	s.checkHeartbeat()
	s.mu.Lock()
	if !s.onPolling {
		s.mu.Unlock()
		abort(w, r, errBadRequest)
		return
	}
	if s.closed && !s.lingering {
		s.mu.Unlock()
		abort(w, r, errUnknownSID)
		return
	}
	if s.polling {
		s.mu.Unlock()
		// Two polls at once mean a confused or hostile client; the
		// reference server ends the session and the pending poll gets the
		// close packet.
		s.srv.log.Debug("engine.io poll overlap", "sid", s.id)
		s.close("transport error", closeFrame)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.polling = true
	// Drain a stale wake-up left by a Send that a previous poll already
	// answered, so this poll does not return empty right away.
	select {
	case <-s.pollWake:
	default:
	}
	// Once the WebSocket probe succeeded the poll is released with a noop
	// after upgradeCheck, as the reference server's check interval does, so
	// the client can pause polling and send "upgrade".
	var release <-chan time.Time
	for (len(s.queue) == 0 || s.corked > 0) && !s.closed && s.onPolling {
		if s.probed && release == nil {
			t := time.NewTimer(upgradeCheck)
			defer t.Stop()
			release = t.C
		}
		s.mu.Unlock()
		released := false
		select {
		case <-s.pollWake:
		case <-release:
			released = true
		case <-r.Context().Done():
			s.mu.Lock()
			s.polling = false
			s.mu.Unlock()
			s.close("transport error", closeHard)
			return
		}
		s.mu.Lock()
		if released {
			break
		}
	}
	if !s.onPolling {
		// The upgrade completed under this poll. The official client never
		// does that (it waits for the poll to end before "upgrade"), so the
		// poll is answered like any poll for an upgraded session.
		s.polling = false
		s.mu.Unlock()
		abort(w, r, errBadRequest)
		return
	}
	var batch []*Packet
	if s.onPolling && (!s.closed || s.keepQueue) && (s.corked == 0 || s.closed) {
		batch = s.queue
		s.queue = s.spare[:0]
		s.spare = nil
	}
	final := (*Packet)(nil)
	if s.closed {
		final = s.finalPkt
	}
	collected := s.lingering
	s.lingering = false
	s.polling = false
	s.mu.Unlock()
	if collected {
		s.srv.unregister(s)
	}

	body := appendPayload(nil, batch)
	if final != nil {
		if len(body) > 0 {
			body = append(body, recordSeparator)
		}
		body = append(body, final.pollBytes()...)
	}
	if len(body) == 0 {
		// Released for an upgrade with nothing queued.
		body = append(body, s.srv.noopPkt.pollBytes()...)
	}
	delivered := len(batch)
	if final != nil {
		delivered++
	}
	clear(batch)
	s.mu.Lock()
	if s.spare == nil {
		s.spare = batch[:0]
	}
	s.countLocked(delivered, len(body), 0)
	s.mu.Unlock()
	s.srv.keepAliveIfAdmitted(w, r, s)
	s.srv.writeDeadline(w)
	if err := writePollResponse(w, body); err != nil {
		// The client did not take the answer within BodyTimeout (or is
		// gone): what it held is lost to it, so the session ends and
		// the client reconnects, and recovers what it can.
		s.srv.log.Debug("engine.io poll answer not written", "sid", s.id, "err", err)
		s.close("transport error", closeHard)
	}
}

// handlePost receives a long-polling payload. The whole body is decoded
// before anything is delivered, so a bad payload delivers nothing.
func (s *Session) handlePost(w http.ResponseWriter, r *http.Request) {
	s.checkHeartbeat()
	s.mu.Lock()
	if !s.onPolling {
		s.mu.Unlock()
		abort(w, r, errBadRequest)
		return
	}
	if s.closed {
		s.mu.Unlock()
		abort(w, r, errUnknownSID)
		return
	}
	if s.posting {
		s.mu.Unlock()
		s.close("transport error", closeFrame)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// v4 polling carries binary as base64 text only.
		s.close("transport error", closeFrame)
		abort(w, r, errBadRequest)
		return
	}
	limit := s.srv.cfg.MaxPayload
	if r.ContentLength > limit {
		s.srv.refused.tooLarge.Add(1)
		s.close("transport error", closeFrame)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	// The body must arrive whole within BodyTimeout: a client that
	// trickles it would otherwise hold the request, its connection and
	// what has arrived so far for as long as it likes.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.srv.cfg.BodyTimeout))
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.srv.refused.slowBody.Add(1)
			s.srv.log.Debug("engine.io polling body not whole within the body timeout", "sid", s.id, "timeout", s.srv.cfg.BodyTimeout)
		}
		s.close("transport error", closeHard)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	if int64(len(body)) > limit {
		s.srv.refused.tooLarge.Add(1)
		s.close("transport error", closeFrame)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	pkts, err := decodePayload(body, nil)
	if err != nil {
		s.srv.log.Debug("engine.io bad polling payload", "sid", s.id, "err", err)
		s.close("parse error", closeFrame)
		abort(w, r, errBadRequest)
		return
	}
	for _, p := range pkts {
		if !s.onPacket(p) {
			break
		}
	}
	s.srv.keepAliveIfAdmitted(w, r, s)
	s.srv.writeDeadline(w)
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(2))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}
