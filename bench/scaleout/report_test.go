package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseCounts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"500,1000", []int{500, 1000}, false},
		{" 2 ", []int{2}, false},
		{"", nil, true},
		{"501", nil, true}, // odd: cannot split evenly over two instances
		{"0", nil, true},
		{"x", nil, true},
		{"500,", nil, true},
	}
	for _, tt := range tests {
		got, err := parseCounts(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseCounts(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !equalInts(got, tt.want) {
			t.Errorf("parseCounts(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"205454 51927 2\n", 205454 * time.Nanosecond, false},
		{"0 0 0", 0, false},
		{"", 0, true},
		{"-5 1 1", 0, true},
		{"abc 1 1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSchedstat(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestTaskCPUOfSelf reads this test process's own threads: the figure must
// be positive and must not go backwards after burning some CPU.
func TestTaskCPUOfSelf(t *testing.T) {
	pid := os.Getpid()
	before, err := taskCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := taskCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 || after <= before {
		t.Fatalf("taskCPU: before %v, after %v (spun %d times): want 0 < before < after", before, after, x)
	}
	if _, err := taskCPU(-1); err == nil {
		t.Fatal("taskCPU(-1): want an error")
	}
}

func TestRatiosAndReport(t *testing.T) {
	ms := time.Millisecond
	results := []phase{
		// 1 instance, C=500: 1000 events, 500,000 messages, 1 s walcast CPU = 2 µs/msg.
		{clients: 500, instances: 1, events: 1000, delivered: 500_000, want: 500_000, wall: 10 * time.Second,
			walcastCPU: []time.Duration{1000 * ms}, redisCPU: 60 * ms, idleWall: time.Second, idleRedis: 1 * ms},
		// 2 instances, C=500: 1.1 s = 2.2 µs/msg, ratio 1.1.
		{clients: 500, instances: 2, events: 1000, delivered: 500_000, want: 500_000, wall: 10 * time.Second,
			walcastCPU: []time.Duration{700 * ms, 400 * ms}, redisCPU: 90 * ms, idleWall: time.Second, idleRedis: 2 * ms},
		{clients: 1000, instances: 1, events: 1000, delivered: 1_000_000, want: 1_000_000, wall: 10 * time.Second,
			walcastCPU: []time.Duration{2000 * ms}, redisCPU: 60 * ms, idleWall: time.Second, idleRedis: 1 * ms},
		// ratio 1.5: missed; and one client short of its messages.
		{clients: 1000, instances: 2, events: 1000, delivered: 999_999, want: 1_000_000, wall: 10 * time.Second,
			walcastCPU: []time.Duration{2000 * ms, 999_997 * time.Microsecond}, redisCPU: 90 * ms, idleWall: time.Second, idleRedis: 2 * ms},
	}
	r := scaleRatio(results)
	if got := r[500]; got < 1.099 || got > 1.101 {
		t.Errorf("ratio C=500 = %v, want 1.1", got)
	}
	if got := r[1000]; got < 1.499 || got > 1.501 {
		t.Errorf("ratio C=1000 = %v, want 1.5", got)
	}
	// Redis net of idle: 1 instance (60-10)/1000 = 50 µs at both counts.
	if got := results[0].redisNetPerEvent(); got < 49.99 || got > 50.01 {
		t.Errorf("redis net per event = %v, want 50", got)
	}
	rr := redisRange(results)
	if rr[1] != 1 || rr[2] != 1 {
		t.Errorf("redis range = %v, want 1 for both instance counts", rr)
	}

	var out bytes.Buffer
	report(&out, options{clients: []int{500, 1000}, rate: 100, duration: 10 * time.Second}, results, "1.0", "1.1")
	for _, want := range []string{
		"C=500: walcast CPU per message, 2 instances / 1 instance = 1.10x (target <= 1.2x: met)",
		"C=1000: walcast CPU per message, 2 instances / 1 instance = 1.50x (target <= 1.2x: MISSED)",
		"2 instance(s): Redis CPU per event net of idle, highest / lowest over C=[500 1000] = 1.00x",
		"WARNING: C=1000, 2 instance(s): 999999 of 1000000 messages delivered",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEmptyPhaseHasNoFigures(t *testing.T) {
	var ph phase
	if ph.perMsg() != -1 || ph.redisPerEvent() != -1 || ph.redisNetPerEvent() != -1 || ph.walcastNetPerMsg() != -1 {
		t.Fatal("a phase without events or deliveries must report -1, not a figure")
	}
}
