// Package promtest runs Debian's real prometheus server for tests: on a
// free loopback port, with a scrape configuration and rule files the test
// gives, in a temporary directory; Query and Alerts read its HTTP API.
// Test-only, like internal/pgtest: the walcast binary never links it.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/loopback"
)

// Target is one scrape job.
type Target struct {
	Job  string
	Addr string // host:port
	// MetricsPath defaults to /metrics.
	MetricsPath string
}

// Options configure Start.
type Options struct {
	Targets []Target
	// ScrapeInterval and EvaluationInterval default to 1s.
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	// RuleFiles are loaded as the config's rule_files (absolute paths).
	RuleFiles []string
}

// Server is a running prometheus.
type Server struct {
	URL string // http://127.0.0.1:port

	dir    string
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

// Binary finds prometheus (Debian's package installs /usr/bin/prometheus).
func Binary() (string, error) {
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", errors.New("prometheus is not installed: apt-get install -y prometheus (scripts/test.sh installs it)")
	}
	return p, nil
}

// Start runs prometheus until the test ends; it fails the test if the
// server does not become ready.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(Config(opts)), 0o644); err != nil {
		tb.Fatal(err)
	}
	var last error
	for range 3 { // the free port may be taken between finding and binding it
		s, err := start(bin, dir, cfgPath)
		if err == nil {
			tb.Cleanup(s.stop)
			return s
		}
		last = err
	}
	tb.Fatalf("start prometheus: %v", last)
	return nil
}

// Config renders the prometheus.yml Start uses.
func Config(opts Options) string {
	dur := func(d time.Duration) string {
		if d <= 0 {
			d = time.Second
		}
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", dur(opts.ScrapeInterval), dur(opts.ScrapeInterval), dur(opts.EvaluationInterval))
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	b.WriteString("scrape_configs:\n")
	for _, t := range opts.Targets {
		path := t.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&b, "  - job_name: %q\n    metrics_path: %q\n    static_configs:\n      - targets: [%q]\n", t.Job, path, t.Addr)
	}
	return b.String()
}

func start(bin, dir, cfgPath string) (*Server, error) {
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	data := filepath.Join(dir, fmt.Sprintf("data-%d", port))
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--web.enable-lifecycle",
		"--log.level=warn",
	)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	s := &Server{URL: "http://" + addr, dir: dir, cmd: cmd, log: logs, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("prometheus exited: %s", logs.String())
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("prometheus not ready within 30s: %s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Log is what prometheus printed so far.
func (s *Server) Log() string { return s.log.String() }

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
	Time   time.Time
}

// Query evaluates expr now (/api/v1/query) and returns its vector.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := s.api(ctx, "/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &res); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	if res.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", expr, res.ResultType)
	}
	out := make([]Sample, 0, len(res.Result))
	for _, r := range res.Result {
		ts, _ := r.Value[0].(float64)
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %q: %w", expr, str, err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v, Time: time.Unix(0, int64(ts*1e9))})
	}
	return out, nil
}

// Alert is one entry of /api/v1/alerts.
type Alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending or firing
}

// Alerts lists the pending and firing alerts.
func (s *Server) Alerts(ctx context.Context) ([]Alert, error) {
	var res struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := s.api(ctx, "/api/v1/alerts", &res); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return res.Alerts, nil
}

// TargetHealth is one active target of /api/v1/targets.
type TargetHealth struct {
	Job       string
	ScrapeURL string
	Health    string // up, down or unknown
	LastError string
}

// Targets lists the active scrape targets and their health.
func (s *Server) Targets(ctx context.Context) ([]TargetHealth, error) {
	var res struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := s.api(ctx, "/api/v1/targets", &res); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	out := make([]TargetHealth, 0, len(res.ActiveTargets))
	for _, t := range res.ActiveTargets {
		out = append(out, TargetHealth{Job: t.Labels["job"], ScrapeURL: t.ScrapeURL, Health: t.Health, LastError: t.LastError})
	}
	return out, nil
}

// Eventually polls cond (with a query context) until it reports true or
// timeout passes, and fails the test then with the last error and the
// server's log.
func (s *Server) Eventually(tb testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, err := cond(ctx)
		cancel()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			tb.Fatalf("prometheus: gave up after %v waiting for %s (last error: %v)\nprometheus log:\n%s", timeout, what, last, s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) api(ctx context.Context, path string, data any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("HTTP %d, not JSON: %.200s", resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
