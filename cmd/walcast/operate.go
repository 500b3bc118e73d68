package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/walcast/walcast/broadcast/adminui"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/metrics"
)

// adminUI reports whether the Admin UI is configured.
func (s *settings) adminUI() bool { return s.AdminUIUsername != "" }

// metricSources are what the metrics read from this server. They are
// read only once it runs, when every part exists.
func (s *server) metricSources() metrics.Sources {
	src := metrics.Sources{
		Reader:    func() cdc.ReaderStatus { return s.reader.Status() },
		Slot:      func() (cdc.SlotHealth, bool) { return s.sampler.Last() },
		Delivery:  func() (metrics.DeliveryStats, bool) { return metrics.DeliveryOf(s.hub.Server())() },
		Rooms:     func() map[string]int { return metrics.RoomsOf(s.hub.Server())() },
		Ready:     func(context.Context) bool { ok, _, _ := s.ready(); return ok },
		LocksHeld: func(ctx context.Context) (int, error) { return s.gateway.LocksHeld(ctx) },
	}
	if s.cfg.RedisURL != "" {
		src.Redis = s.redisStatus
	}
	return src
}

// redisStatus asks Redis whether it answers and how long the events
// stream is.
func (s *server) redisStatus(ctx context.Context) metrics.RedisStatus {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st := metrics.RedisStatus{StreamLength: -1}
	if err := s.redis.Ping(ctx).Err(); err != nil {
		return st
	}
	st.Up = true
	if n, ok, err := s.hub.StreamLength(ctx); err == nil && ok {
		st.StreamLength = n
	}
	return st
}

// listenAdmin binds the operator listener, so that a taken address stops
// walcast at start rather than leaving it unobservable.
func (s *server) listenAdmin() error {
	if s.metrics == nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("--admin-listen (WALCAST_ADMIN_LISTEN) %s: %w (give another address, or off)", s.cfg.AdminListen, err)
	}
	s.adminLn = ln
	s.admin = &http.Server{
		Handler:           s.metrics.Handler(metrics.HandlerOptions{Pprof: s.cfg.AdminPprof, Logger: s.log}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return nil
}

// attachAdminUI serves the Admin UI's namespace when configured. Its
// origins may connect with credentials (the UI's client sets
// withCredentials), but the main namespace still admits only the origins
// it admitted before.
func (s *server) attachAdminUI() error {
	if !s.cfg.adminUI() {
		return nil
	}
	eio := s.hub.Server().EngineIO()
	ui, err := adminui.Attach(s.hub.Server(), adminui.Config{
		// The Engine.IO server counts what it sends, not what it receives:
		// the UI's charts show packets and bytes out.
		Traffic: func() adminui.Traffic {
			st := eio.Stats()
			return adminui.Traffic{PacketsOut: st.Delivered, BytesOut: st.BytesWritten}
		},
		Username:     s.cfg.AdminUIUsername,
		PasswordHash: s.cfg.AdminUIPasswordHash,
		AllowChanges: s.cfg.AdminUIAllowChanges,
		ServerID:     s.cfg.InstanceID,
		Logger:       s.log,
	})
	if err != nil {
		return fmt.Errorf("admin ui: %w", err)
	}
	s.adminUI = ui
	uiOnly := slices.DeleteFunc(slices.Clone(s.cfg.AdminUIOrigins), func(o string) bool {
		return slices.Contains(s.cfg.CORSOrigins, o) || slices.Contains(s.cfg.CORSOrigins, "*")
	})
	if len(uiOnly) > 0 {
		s.hub.Namespace("/").Use(func(sock *socketio.Socket) error {
			if slices.Contains(uiOnly, sock.Handshake().Header.Get("Origin")) {
				return &socketio.ConnectError{Message: "origin not allowed"}
			}
			return nil
		})
	}
	s.log.Info("admin ui", "namespace", adminui.DefaultNamespace, "user", s.cfg.AdminUIUsername,
		"allow_changes", s.cfg.AdminUIAllowChanges, "origins", s.cfg.AdminUIOrigins)
	return nil
}
