package metrics

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HandlerOptions configure the operator endpoints.
type HandlerOptions struct {
	// Pprof serves Go's profiler under /debug/pprof/. Off by default: a
	// profile costs CPU while it runs and shows the program's internals.
	Pprof  bool
	Logger *slog.Logger
}

// Handler serves /metrics (Prometheus text or OpenMetrics, as the scraper
// asks) and, when enabled, /debug/pprof/. It is meant for the operator
// listener, never for the public Socket.IO port.
func (m *Metrics) Handler(o HandlerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		// One slow scrape at a time: a second waits rather than piling up.
		MaxRequestsInFlight: 2,
	}))
	if o.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}
