package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func okRung(rate float64, cpu, sys time.Duration) rung {
	return rung{rate: rate, offered: 1000, delivered: 1000, cpu: cpu * 1000, sys: sys * 1000, probe: probeReport{P99ms: ms(10)}}
}

func behindRung(rate float64, cpu time.Duration) rung {
	g := okRung(rate, cpu, cpu/2)
	g.delivered = 500
	return g
}

func TestPrintComparisonVerdicts(t *testing.T) {
	tests := []struct {
		name      string
		walcast   []rung
		sustained float64
		idleRSS   int64
		want      []string
	}{
		{
			name:      "every target met",
			walcast:   []rung{okRung(2000, 5*time.Microsecond, 4*time.Microsecond), okRung(8000, 4*time.Microsecond, 3*time.Microsecond), okRung(16000, 4*time.Microsecond, 3*time.Microsecond)},
			sustained: 16000, idleRSS: 7 << 10 * 100,
			want: []string{
				"user CPU per delivery <= 2.0 µs at 20 events/s per socket: 1.00 µs: met",
				"user CPU per delivery <= 2.0 µs at 80 events/s per socket: 1.00 µs: met",
				"CPU per delivery <= 0.5 of node's at 20 events/s per socket: 0.25: met",
				"below centrifuge's at every rung where both keep up (2): ratio 0.50-0.62: met",
				"sustained msg/s: walcast 16000, node 2000, 8.00x, target >= 5x: met (walcast kept up at the ladder's top",
				"centrifuge 8000, 2.00x, target above it: met",
				"idle KB/conn: walcast 7.0, node 20.0, centrifuge 10.0, floor 3.0; target <= 8 KB: met",
				"the floor at 20 events/s per socket (one write(2) per delivery, nothing else): 4.00 µs per delivery, 0.20 of node's",
			},
		},
		{
			name:      "every target missed",
			walcast:   []rung{okRung(2000, 12*time.Microsecond, 8*time.Microsecond), behindRung(8000, 10*time.Microsecond)},
			sustained: 2000, idleRSS: 9 << 10 * 100,
			want: []string{
				"at 20 events/s per socket: 4.00 µs: MISSED",
				"at 80 events/s per socket: 10.00 µs: MISSED",
				"of node's at 20 events/s per socket: 0.60: MISSED",
				"where both keep up (1): ratio 1.50-1.50: MISSED",
				"node 2000, 1.00x, target >= 5x: MISSED",
				"centrifuge 8000, 0.25x, target above it: MISSED",
				"target <= 8 KB: MISSED",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := []serverRun{
				{server: "walcast", clients: 100, idleRSS: tt.idleRSS, rungs: tt.walcast, sustained: tt.sustained},
				{server: "node", clients: 100, idleRSS: 20 << 10 * 100, sustained: 2000,
					rungs: []rung{okRung(2000, 20*time.Microsecond, 10*time.Microsecond), behindRung(8000, 20*time.Microsecond)}},
				{server: "centrifuge", clients: 100, idleRSS: 10 << 10 * 100, sustained: 8000,
					rungs: []rung{okRung(2000, 8*time.Microsecond, 4*time.Microsecond), okRung(8000, 8*time.Microsecond, 4*time.Microsecond), behindRung(16000, 8*time.Microsecond)}},
				{server: "floor", clients: 100, idleRSS: 3 << 10 * 100, sustained: 16000,
					rungs: []rung{okRung(2000, 4*time.Microsecond, 3*time.Microsecond)}},
			}
			var out bytes.Buffer
			printComparison(&out, runs)
			for _, want := range tt.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
