package benchserver

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"
)

func TestDueBy(t *testing.T) {
	req := broadcastReq{rate: 100, duration: time.Second}
	tests := []struct {
		elapsed time.Duration
		want    int
	}{
		{0, 0},
		{9 * time.Millisecond, 0},
		{10 * time.Millisecond, 1},
		{500 * time.Millisecond, 50},
		{999 * time.Millisecond, 99},
		{time.Second, 100},
		{time.Hour, 100},
	}
	for _, tt := range tests {
		if got := dueBy(req, 100, tt.elapsed); got != tt.want {
			t.Errorf("dueBy(%v) = %d, want %d", tt.elapsed, got, tt.want)
		}
	}
}

func TestPaceEmitsExactlyTheTotalInOrder(t *testing.T) {
	var seqs []int
	sent, err := pace(context.Background(), broadcastReq{rate: 400, duration: 100 * time.Millisecond}, func(seq int) error {
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil || sent != 40 || len(seqs) != 40 {
		t.Fatalf("sent %d (%d calls), err %v; want 40", sent, len(seqs), err)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("seq %d at position %d", s, i)
		}
	}
}

func TestPaceStopsOnEmitError(t *testing.T) {
	boom := errors.New("boom")
	sent, err := pace(context.Background(), broadcastReq{rate: 1000, duration: time.Second}, func(seq int) error {
		if seq == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || sent != 3 {
		t.Fatalf("sent %d err %v; want 3 and boom", sent, err)
	}
}

func TestParseBroadcast(t *testing.T) {
	tests := []struct {
		query   string
		wantErr bool
	}{
		{"rate=10&duration_ms=1000&rung=0", false},
		{"rate=2.5&duration_ms=1000&rung=3&size=500", false},
		{"rate=0&duration_ms=1000&rung=0", true},
		{"rate=10&duration_ms=-5&rung=0", true},
		{"rate=10&duration_ms=1000&rung=-1", true},
		{"rate=10&duration_ms=1000", true},
		{"rate=x&duration_ms=1000&rung=0", true},
		{"rate=10&duration_ms=1000&rung=0&size=99999999", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/bench/broadcast?"+tt.query, nil)
		if _, err := parseBroadcast(r); (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tt.query, err, tt.wantErr)
		}
	}
}
