// Package benchserver is the control side every Go server of the fan-out
// benchmark shares (bench/fanout/serverproc documents the protocol): it
// answers GET /bench/stats and POST /bench/broadcast beside the server's own
// handler, prints "listening <port>" once it accepts connections, and serves
// until SIGTERM or SIGINT, under a CPU profile when asked. Only the server's
// handler and how it emits one event differ between servers, so the pacing
// and the event bytes are the same for each.
package benchserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Options describe one benchmark server.
type Options struct {
	Addr       string // listen address, e.g. "127.0.0.1:0"
	CPUProfile string // write a CPU profile of the whole run here when set
	// Path and Handler are the server under test, e.g. "/socket.io/".
	Path    string
	Handler http.Handler
	// Sockets is how many client connections the server holds.
	Sockets func() int
	// Emit broadcasts one event whose JSON payload is given to every
	// client; the payload is not reused afterwards.
	Emit func(ctx context.Context, payload []byte) error
}

// Run serves until SIGTERM or SIGINT.
func Run(o Options) error {
	if err := RaiseFileLimit(); err != nil {
		return err
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	mux := http.NewServeMux()
	mux.Handle(o.Path, o.Handler)
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		// Where idle memory goes, beside the RSS the driver reads from /proc.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		reply(w, http.StatusOK, map[string]uint64{
			"sockets":     uint64(o.Sockets()),
			"goroutines":  uint64(runtime.NumGoroutine()),
			"heap_inuse":  ms.HeapInuse,
			"stack_inuse": ms.StackInuse,
			// freed heap pages the runtime has not given back yet
			"heap_unreleased": ms.HeapIdle - ms.HeapReleased,
			// the runtime's own bookkeeping (spans, GC metadata, ...)
			"runtime_meta": ms.Sys - ms.HeapSys - ms.StackSys,
		})
	})
	mux.HandleFunc("POST /bench/broadcast", func(w http.ResponseWriter, r *http.Request) {
		req, err := parseBroadcast(r)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		sent, err := pace(r.Context(), req, func(seq int) error {
			return o.Emit(r.Context(), tick.Append(make([]byte, 0, req.size), req.rung, seq, time.Now().UnixNano(), req.size))
		})
		if err != nil {
			reply(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "sent": sent})
			return
		}
		reply(w, http.StatusOK, map[string]int{"sent": sent})
	})

	ln, err := net.Listen("tcp", o.Addr)
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

// RaiseFileLimit lifts the soft descriptor limit to the hard one: 5,000
// sockets do not fit the usual 1,024.
func RaiseFileLimit() error {
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
