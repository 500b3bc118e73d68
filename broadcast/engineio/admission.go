package engineio

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Sessions that have not been admitted yet (see Session.Admit) are
// "pending": a handshake is all it takes to open one, so their number is
// capped, overall and per client address (Config.MaxPending,
// MaxPendingPerAddress), and the Socket.IO layer closes each one that is
// not admitted within its connect timeout. The server keeps them in a map
// of its own rather than a field in every session: only the few pending
// ones pay for it.

// pendingSet is the server's pending sessions; it is guarded by Server.mu.
type pendingSet struct {
	sessions map[*Session]netip.Prefix // each with its address key
	byAddr   map[netip.Prefix]int
}

// Why a handshake was refused, for the refusal's answer and counters.
const (
	refuseNone = iota
	refusePendingOverall
	refusePendingAddress
)

// addPendingLocked counts sess as pending for the client address key,
// unless a cap is reached: then it reports which.
func (s *Server) addPendingLocked(sess *Session, key netip.Prefix) int {
	p := &s.pending
	if max := s.cfg.MaxPending; max > 0 && len(p.sessions) >= max {
		return refusePendingOverall
	}
	if max := s.cfg.MaxPendingPerAddress; max > 0 && p.byAddr[key] >= max {
		return refusePendingAddress
	}
	if p.sessions == nil {
		p.sessions = make(map[*Session]netip.Prefix)
		p.byAddr = make(map[netip.Prefix]int)
	}
	p.sessions[sess] = key
	p.byAddr[key]++
	return refuseNone
}

// dropPendingLocked forgets sess as pending, if it was; the caller holds
// s.mu.
func (s *Server) dropPendingLocked(sess *Session) {
	p := &s.pending
	key, ok := p.sessions[sess]
	if !ok {
		return
	}
	delete(p.sessions, sess)
	if p.byAddr[key] <= 1 {
		delete(p.byAddr, key)
	} else {
		p.byAddr[key]--
	}
}

// Admit marks the session as admitted by the application (the Socket.IO
// layer calls it when a namespace accepts a CONNECT): it no longer counts
// against the caps on pending sessions, and its polling requests keep
// their connections alive.
func (s *Session) Admit() {
	s.srv.mu.Lock()
	s.srv.dropPendingLocked(s)
	s.srv.mu.Unlock()
}

// isPending reports whether sess has not been admitted.
func (s *Server) isPending(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending.sessions[sess]
	return ok
}

// refuse answers a handshake refused for a cap on pending sessions: 503
// (the server as a whole is full) or 429 (this address has too many),
// with Retry-After; the official client retries with its backoff.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, why int, client netip.Addr) {
	status, msg := http.StatusServiceUnavailable, "Too many pending sessions"
	if why == refusePendingAddress {
		status, msg = http.StatusTooManyRequests, "Too many pending sessions from this address"
		s.refused.pendingAddress.Add(1)
		if r.Header.Get("X-Forwarded-For") != "" {
			s.hintProxy(r, client)
		}
	} else {
		s.refused.pendingOverall.Add(1)
	}
	s.log.Debug("engine.io handshake refused", "client", client, "reason", msg)
	h := w.Header()
	h.Set("Retry-After", "1")
	h.Set("Connection", "close")
	if isWebSocketUpgrade(r) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(msg))
		return
	}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{errBadRequest, msg})
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// hintProxy tells the operator, once per peer (the first 64), that a peer
// refused for its address sends X-Forwarded-For: if it is the operator's
// own proxy, every client behind it shares one address's cap until the
// proxy is trusted.
func (s *Server) hintProxy(r *http.Request, client netip.Addr) {
	s.mu.Lock()
	hint := s.hinted.first(client)
	s.mu.Unlock()
	if hint {
		s.log.Warn("refused handshakes from an address over its cap on pending sessions; it sends X-Forwarded-For: "+
			"if it is your proxy, trust it (TrustedProxies) so the clients behind it are told apart",
			"peer", client, "x_forwarded_for", r.Header.Get("X-Forwarded-For"))
	}
}

// clientAddr is the address a request comes from: its peer, or, when the
// peer is a trusted proxy, the right-most address in X-Forwarded-For that
// is not a trusted proxy itself (a proxy appends the address it saw, so
// the ones left of the last untrusted hop are the client's to write). The
// zero Addr when the peer's address cannot be read.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !s.trusted(addr) {
		return addr
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		hops := strings.Split(vals[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				// Not an address: the client is whoever the last
				// trusted hop was talking to, which it did not say.
				return addr
			}
			addr = hop.Unmap()
			if !s.trusted(addr) {
				return addr
			}
		}
	}
	return addr
}

// trusted reports whether addr is one of the trusted proxies.
func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// addrKey is what a client address counts against: an IPv4 address, or
// an IPv6 address's /64, which one subscriber usually holds whole.
func addrKey(a netip.Addr) netip.Prefix {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	p, _ := a.Prefix(a.BitLen())
	return p
}

// keepAliveIfAdmitted lets the connection of a polling request live on
// after its answer only for an admitted session or a trusted proxy: a
// client that has not authenticated gets no idle connection to hold, and
// opens a new one for its next request (a legitimate client does so two
// or three times while it connects).
func (s *Server) keepAliveIfAdmitted(w http.ResponseWriter, r *http.Request, sess *Session) {
	if !s.isPending(sess) {
		return
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && s.trusted(ap.Addr().Unmap()) {
		return
	}
	w.Header().Set("Connection", "close")
}

// writeDeadline bounds the writing of a polling answer: a client that does
// not read it cannot hold the request for longer than BodyTimeout.
func (s *Server) writeDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.BodyTimeout))
}
