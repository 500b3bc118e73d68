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

func TestPrintComparisonVerdicts(t *testing.T) {
	tests := []struct {
		name      string
		walcastUs time.Duration
		idleRSS   int64
		want      []string
	}{
		{"both targets met", 5 * time.Microsecond, 11 << 10 * 100, []string{"ratio where both keep up: 0.25-0.25, target <= 0.33: met", "target <= 12 KB: met"}},
		{"both missed", 10 * time.Microsecond, 15 << 10 * 100, []string{"0.50-0.50, target <= 0.33: MISSED (worst rung 1.5x the allowance)", "target <= 12 KB: MISSED by 25%"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := []serverRun{
				{server: "walcast", clients: 100, idleRSS: tt.idleRSS, rungs: []rung{okRung(1000, tt.walcastUs, tt.walcastUs/2)}},
				{server: "node", clients: 100, idleRSS: 20 << 10 * 100, rungs: []rung{okRung(1000, 20*time.Microsecond, 10*time.Microsecond)}},
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
