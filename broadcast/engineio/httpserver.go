package engineio

import (
	"net/http"
	"time"
)

// HTTPServer returns an http.Server for h (the engine, or a mux that mounts
// it) with the limits of its Config, so a client cannot make a connection
// cost more than a request is worth:
//
//   - a request's line and headers over MaxHeaderBytes are answered 431,
//     and must arrive within HeaderTimeout;
//   - a keep-alive connection idle for IdleTimeout is closed (and the
//     engine keeps none alive for a client that has not been admitted);
//   - a request body must arrive within BodyTimeout of the request's
//     start, whichever handler reads it, including the unread rest that
//     net/http drains after the handler to keep the connection.
//
// There is no whole-request read or write timeout: a long poll waits up to
// the ping interval for something to send, and the engine bounds its own
// writes. Set ErrorLog and the like on the result before serving.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	timeout := s.cfg.BodyTimeout
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Only requests with a body: the deadline would also fall
			// on net/http's background read of a bodiless request,
			// which ends the request's context when it expires.
			if r.ContentLength != 0 {
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
			}
			h.ServeHTTP(w, r)
		}),
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
	}
}
