// Command server is walcast's side of the fan-out benchmark: the broadcast
// hub with default settings, mounted at /socket.io/, plus the control
// endpoints every benchmark server has (bench/fanout/benchserver). It runs
// as its own process so /proc measures the hub alone.
//
//	go run ./bench/fanout/server [-addr 127.0.0.1:0] [-cpuprofile f] [-memprofile f] [-metrics]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/walcast/walcast/bench/fanout/benchserver"
	"github.com/walcast/walcast/bench/fanout/tick"
	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/metrics"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile at exit to this file")
	writeDelay := flag.Duration("write-delay", 0, "engine.io write delay (walcast serve --write-delay): an idle socket's writes wait this long for more events")
	withMetrics := flag.Bool("metrics", false, "count as walcast serve does with its operator listener on (its metrics and observers), gathered every second as a scrape would")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(*addr, *cpuProfile, *memProfile, *writeDelay, *withMetrics, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
}

func run(addr, cpuProfile, memProfile string, writeDelay time.Duration, withMetrics bool, log *slog.Logger) error {
	hub := broadcast.New(broadcast.Config{Logger: log, EngineIO: engineio.Config{WriteDelay: writeDelay}})
	defer hub.Close()
	if withMetrics {
		stop := instrument(hub.Server(), log)
		defer stop()
	}
	err := benchserver.Run(benchserver.Options{
		Addr:       addr,
		CPUProfile: cpuProfile,
		Path:       "/socket.io/",
		Handler:    hub.Handler(),
		Sockets:    hub.Namespace("/").Len,
		Emit: func(ctx context.Context, payload []byte) error {
			return hub.Emit(ctx, broadcast.Event{Name: tick.Event, Payload: payload})
		},
	})
	if err != nil {
		return err
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	return nil
}

// instrument gives srv the metrics walcast serve gives its hub with the
// operator listener on, and gathers them every second, more often than
// Prometheus would scrape, so the cost of both is in this process's CPU.
func instrument(srv *socketio.Server, log *slog.Logger) (stop func()) {
	m := metrics.New(metrics.Options{Sources: metrics.Sources{
		Delivery: metrics.DeliveryOf(srv),
		Rooms:    metrics.RoomsOf(srv),
	}})
	srv.AddObserver(m.SocketObserver())
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := m.Registry().Gather(); err != nil {
					log.Warn("gather metrics", "err", err)
				}
			}
		}
	}()
	return func() { close(done) }
}
