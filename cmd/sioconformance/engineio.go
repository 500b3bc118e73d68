//go:build !sioconformance_stub

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
)

// runEngineIOEcho serves a bare Engine.IO server that sends every message
// straight back, set up the way the engine.io-protocol test suite expects
// (path /engine.io/, pingInterval 300ms, pingTimeout 200ms, maxPayload 1e6,
// any origin).
func runEngineIOEcho(ctx context.Context, addr string) error {
	srv := engineio.NewServer(engineio.Config{
		Path:           "/engine.io/",
		PingInterval:   300 * time.Millisecond,
		PingTimeout:    200 * time.Millisecond,
		MaxPayload:     1_000_000,
		AllowedOrigins: []string{"*"},
		Logger:         slog.Default(),
	}, func(s *engineio.Session) {
		s.SetHandlers(engineio.Handlers{
			OnMessage: func(data []byte, binary bool) {
				// data is only valid during the call; the packet keeps it.
				b := append([]byte(nil), data...)
				if binary {
					s.Send(engineio.NewBinaryMessage(b))
				} else {
					s.Send(engineio.NewMessage(b))
				}
			},
		})
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("engine.io echo: listen: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	slog.Info("engine.io echo server listening", "addr", ln.Addr().String())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("engine.io echo: serve: %w", err)
	}
	return nil
}
