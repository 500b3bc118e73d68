package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatTimes(t *testing.T) {
	tests := []struct {
		name     string
		stat     string
		wantUser time.Duration
		wantSys  time.Duration
		wantErr  bool
	}{
		{
			name:     "plain command",
			stat:     "1234 (node) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 11 0 5 1000 200",
			wantUser: 2500 * time.Millisecond,
			wantSys:  300 * time.Millisecond,
		},
		{
			name:     "command with spaces and parens",
			stat:     "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 1000 200",
			wantUser: 70 * time.Millisecond,
			wantSys:  30 * time.Millisecond,
		},
		{name: "no command", stat: "1234 node S 1", wantErr: true},
		{name: "too short", stat: "1 (x) S 1 2 3", wantErr: true},
		{name: "non-numeric utime", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 zz 3 0 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, sys, err := parseStatTimes([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if user != tt.wantUser || sys != tt.wantSys {
				t.Errorf("got user %v sys %v, want %v %v", user, sys, tt.wantUser, tt.wantSys)
			}
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"present", "Name:\tnode\nVmPeak:\t 9 kB\nVmRSS:\t   51200 kB\nThreads: 7\n", 51200 * 1024, false},
		{"missing", "Name:\tkthreadd\nThreads: 1\n", 0, true},
		{"bad unit", "VmRSS:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusRSS([]byte(tt.status))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestOwnProcess reads the live /proc files of the test binary: CPU must
// grow while spinning and RSS must cover a buffer we touched.
func TestOwnProcess(t *testing.T) {
	pid := os.Getpid()
	before, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has billed at least a few ticks; on a busy
	// machine that takes longer than the spinning's wall time suggests.
	var after time.Duration
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if after, err = CPU(pid); err != nil {
			t.Fatal(err)
		}
		if after >= before+30*time.Millisecond {
			break
		}
	}
	if after < before+30*time.Millisecond {
		t.Errorf("cpu did not grow while spinning: %v -> %v", before, after)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	rss, err := RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss < int64(len(buf)) {
		t.Errorf("rss %d below the %d bytes just touched", rss, len(buf))
	}
	runtime.KeepAlive(buf)
}

func TestMissingProcess(t *testing.T) {
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1): want error")
	}
	if _, err := RSS(-1); err == nil {
		t.Error("RSS(-1): want error")
	}
}
