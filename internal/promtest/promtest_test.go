package promtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestScrapeTinyTarget: the real prometheus scrapes a tiny HTTP target
// whose counter counts its scrapes; queries see the counter rise and the
// target up, and a rule file's alert fires.
func TestScrapeTinyTarget(t *testing.T) {
	var scrapes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP tiny_scrapes_total Scrapes served.\n# TYPE tiny_scrapes_total counter\ntiny_scrapes_total %d\n", n)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	rules := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: tiny
    rules:
      - alert: TinyScrapedThrice
        expr: tiny_scrapes_total >= 3
        labels:
          severity: info
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, Options{Targets: []Target{{Job: "tiny", Addr: ln.Addr().String()}}, ScrapeInterval: 200 * time.Millisecond, EvaluationInterval: 200 * time.Millisecond, RuleFiles: []string{rules}})

	p.Eventually(t, 30*time.Second, "the target to be up", func(ctx context.Context) (bool, error) {
		ts, err := p.Targets(ctx)
		return err == nil && len(ts) == 1 && ts[0].Health == "up" && ts[0].Job == "tiny", err
	})
	var last float64
	p.Eventually(t, 30*time.Second, "three scrapes stored", func(ctx context.Context) (bool, error) {
		v, err := p.Query(ctx, `tiny_scrapes_total{job="tiny"}`)
		if err != nil || len(v) != 1 {
			return false, err
		}
		last = v[0].Value
		return last >= 3, nil
	})
	if served := scrapes.Load(); float64(served) < last {
		t.Errorf("prometheus stored %v but the target served %d scrapes", last, served)
	}
	up, err := p.Query(context.Background(), `up{job="tiny"}`)
	if err != nil || len(up) != 1 || up[0].Value != 1 || up[0].Labels["instance"] != ln.Addr().String() {
		t.Errorf("up: %+v, %v", up, err)
	}
	p.Eventually(t, 30*time.Second, "the rule's alert to fire", func(ctx context.Context) (bool, error) {
		as, err := p.Alerts(ctx)
		for _, a := range as {
			if a.Labels["alertname"] == "TinyScrapedThrice" && a.State == "firing" {
				return true, nil
			}
		}
		return false, err
	})
	if _, err := p.Query(context.Background(), `rate(`); err == nil {
		t.Errorf("a malformed query gave no error")
	}
}
