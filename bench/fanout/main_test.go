package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(v float64) *float64 { return &v }

func TestRungBehind(t *testing.T) {
	tests := []struct {
		name string
		g    rung
		want bool
	}{
		{"all delivered, fast", rung{offered: 1000, delivered: 1000, probe: probeReport{P99ms: ms(20)}}, false},
		{"99% exactly", rung{offered: 1000, delivered: 990, probe: probeReport{P99ms: ms(20)}}, false},
		{"under 99%", rung{offered: 1000, delivered: 989, probe: probeReport{P99ms: ms(20)}}, true},
		{"p99 over 1 s", rung{offered: 1000, delivered: 1000, probe: probeReport{P99ms: ms(1000.5)}}, true},
		{"probes saw nothing", rung{offered: 1000, delivered: 1000}, true},
	}
	for _, tt := range tests {
		if got := tt.g.behind(); got != tt.want {
			t.Errorf("%s: behind() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}}
	for _, tt := range tests {
		if got := quantile(s, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != -1 {
		t.Errorf("quantile(nil) = %v, want -1", got)
	}
}

func TestParseLists(t *testing.T) {
	if got, err := parseInts("1000, 5000"); err != nil || len(got) != 2 || got[1] != 5000 {
		t.Errorf("parseInts: %v %v", got, err)
	}
	for _, bad := range []string{"", "0", "-5", "1,x"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q): want error", bad)
		}
		if _, err := parseFloats(bad); err == nil {
			t.Errorf("parseFloats(%q): want error", bad)
		}
	}
	if got, err := parseFloats("2.5,1e4"); err != nil || got[0] != 2.5 || got[1] != 1e4 {
		t.Errorf("parseFloats: %v %v", got, err)
	}
}

// TestMeasureAllServers runs one small rung against each real server and
// checks the harness's figures add up: every offered message counted, CPU
// and memory read from the server's own /proc entries, probe latencies in.
func TestMeasureAllServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts every server")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := options{
		clients: []int{100}, rates: []float64{2100}, window: time.Second, probes: 5, slow: 2, slowRate: 16 << 10, size: 300,
		workers: 2, settle: 200 * time.Millisecond, drain: 3 * time.Second, past: 1, dir: dir,
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	o.servers, o.interleave = []string{"walcast", "node", "centrifuge", "floor"}, true
	bins, err := prepare(ctx, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	runs, err := measureAll(ctx, o, 100, bins)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4", len(runs))
	}
	for _, r := range runs {
		name := r.server
		if len(r.rungs) != 1 {
			t.Fatalf("%s: %d rungs, want 1", name, len(r.rungs))
		}
		g := r.rungs[0]
		if g.events != 20 || g.sent != 20 || g.offered != 20*105 {
			t.Errorf("%s: events %d sent %d offered %d, want 20 20 2100", name, g.events, g.sent, g.offered)
		}
		if g.delivered != g.offered {
			t.Errorf("%s: delivered %d of %d", name, g.delivered, g.offered)
		}
		if g.probe.Received != 5*20 || g.probe.P99ms == nil {
			t.Errorf("%s: probes received %d (p99 %v), want 100", name, g.probe.Received, g.probe.P99ms)
		}
		if g.cpu <= 0 || g.rss <= 0 || r.emptyRSS <= 0 || r.idleRSS <= r.emptyRSS {
			t.Errorf("%s: cpu %v rss %d empty %d idle %d: /proc figures missing", name, g.cpu, g.rss, r.emptyRSS, r.idleRSS)
		}
		// 20 events/s is 6.6 KB/s, well under the slow readers' 16 KB/s:
		// they keep up, give or take the last few (possibly late) read ticks.
		if g.slowHeld != 2 || g.slowGot < 20 || g.slowGot > 40 {
			t.Errorf("%s: %d of 2 slow readers held, they got %d of 40 events", name, g.slowHeld, g.slowGot)
		}
		if g.clientP50 < 0 || g.clientP99 < g.clientP50 {
			t.Errorf("%s: client latency p50 %v p99 %v", name, g.clientP50, g.clientP99)
		}
	}
	var out bytes.Buffer
	for _, r := range runs {
		printRun(&out, r)
	}
	printComparison(&out, runs)
	printSummary(&out, runs)
	for _, want := range []string{"== walcast, 100 clients", "goroutines", "heap_used", "== node, 100 clients", "== centrifuge, 100 clients",
		"== floor, 100 clients", "== walcast beside node and centrifuge and floor, 100 clients", "nothing lost below saturation"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
