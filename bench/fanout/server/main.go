// Command server is walcast's side of the fan-out benchmark: the broadcast
// hub with default settings, mounted at /socket.io/, plus the control
// endpoints every benchmark server has (see bench/fanout/serverproc). It runs
// as its own process so /proc measures the hub alone.
//
//	go run ./bench/fanout/server [-addr 127.0.0.1:0] [-cpuprofile f] [-memprofile f] [-metrics]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

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
	if err := raiseFileLimit(); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	hub := broadcast.New(broadcast.Config{Logger: log, EngineIO: engineio.Config{WriteDelay: writeDelay}})
	defer hub.Close()
	if withMetrics {
		stop := instrument(hub.Server(), log)
		defer stop()
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", hub.Handler())
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		// Where idle memory goes, beside the RSS the driver reads from /proc.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		reply(w, http.StatusOK, map[string]uint64{
			"sockets":     uint64(hub.Namespace("/").Len()),
			"goroutines":  uint64(runtime.NumGoroutine()),
			"heap_inuse":  ms.HeapInuse,
			"stack_inuse": ms.StackInuse,
		})
	})
	mux.HandleFunc("POST /bench/broadcast", func(w http.ResponseWriter, r *http.Request) {
		req, err := parseBroadcast(r)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		sent, err := pace(r.Context(), req, func(seq int) error {
			payload := tick.Append(make([]byte, 0, req.size), req.rung, seq, time.Now().UnixNano(), req.size)
			return hub.Emit(r.Context(), broadcast.Event{Name: tick.Event, Payload: payload})
		})
		if err != nil {
			reply(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "sent": sent})
			return
		}
		reply(w, http.StatusOK, map[string]int{"sent": sent})
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
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

type broadcastReq struct {
	rate     float64
	duration time.Duration
	rung     int
	size     int
}

func parseBroadcast(r *http.Request) (broadcastReq, error) {
	q := r.URL.Query()
	rate, err1 := strconv.ParseFloat(q.Get("rate"), 64)
	ms, err2 := strconv.Atoi(q.Get("duration_ms"))
	rung, err3 := strconv.Atoi(q.Get("rung"))
	size := 300
	var err4 error
	if s := q.Get("size"); s != "" {
		size, err4 = strconv.Atoi(s)
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil || rate <= 0 || ms <= 0 || rung < 0 || size <= 0 || size > 1<<20 {
		return broadcastReq{}, fmt.Errorf("rate, duration_ms and size (<= 1 MiB) must be > 0 and rung an integer >= 0")
	}
	return broadcastReq{rate: rate, duration: time.Duration(ms) * time.Millisecond, rung: rung, size: size}, nil
}

// pace calls emit rate times per second for the duration. Each 5 ms step
// emits whatever is due by then, so a busy process shows up as bursts rather
// than a lower offered rate, the same catch-up the Node server does.
func pace(ctx context.Context, req broadcastReq, emit func(seq int) error) (int, error) {
	total := int(req.rate * req.duration.Seconds())
	start := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	sent := 0
	for {
		for due := dueBy(req, total, time.Since(start)); sent < due; sent++ {
			if err := emit(sent); err != nil {
				return sent, fmt.Errorf("emit tick %d: %w", sent, err)
			}
		}
		if sent >= total {
			return sent, nil
		}
		select {
		case <-ctx.Done():
			return sent, fmt.Errorf("broadcast cut short: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// dueBy is how many events should have been emitted after elapsed.
func dueBy(req broadcastReq, total int, elapsed time.Duration) int {
	if elapsed >= req.duration {
		return total
	}
	return min(total, int(req.rate*elapsed.Seconds()))
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// raiseFileLimit lifts the soft descriptor limit to the hard one: 5,000
// sockets do not fit the usual 1,024.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get file limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise file limit to %d: %w", lim.Max, err)
	}
	return nil
}

// instrument gives srv the metrics walcast serve gives its hub with the
// operator listener on, and gathers them every second, more often than
// Prometheus would scrape, so the cost of both is in this process's CPU.
func instrument(srv *socketio.Server, log *slog.Logger) (stop func()) {
	m := metrics.New(metrics.Options{Sources: metrics.Sources{
		Delivery: metrics.DeliveryOf(srv),
		Sockets:  metrics.SocketsOf(srv),
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
