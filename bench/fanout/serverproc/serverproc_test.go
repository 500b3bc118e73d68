package serverproc

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"one line", []string{"hello\n"}, "[x] hello\n"},
		{"two lines one write", []string{"a\nb\n"}, "[x] a\n[x] b\n"},
		{"line split over writes", []string{"ab", "c\nd", "\n"}, "[x] abc\n[x] d\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := &prefixWriter{prefix: "[x] ", w: &buf}
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
				t.Fatalf("%s: Write = %d, %v", tt.name, n, err)
			}
		}
		if buf.String() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, buf.String(), tt.want)
		}
	}
}

func TestStartReadsPortAndStops(t *testing.T) {
	p, err := Start(context.Background(), "sh", t.TempDir(), nil,
		"sh", "-c", `echo starting; echo "listening 4321"; exec sleep 30`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "127.0.0.1:4321" || p.PID() <= 0 {
		t.Errorf("addr %q pid %d", p.Addr, p.PID())
	}
	if done, _ := p.Exited(); done {
		t.Fatal("exited early")
	}
	p.Stop()
	if done, _ := p.Exited(); !done {
		t.Error("still running after Stop")
	}
}

func TestStartFailsWhenProcessExits(t *testing.T) {
	_, err := Start(context.Background(), "sh", t.TempDir(), nil, "sh", "-c", "exit 3")
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Fatalf("err = %v", err)
	}
}

func TestControlCallsReportServerErrors(t *testing.T) {
	// Nothing listens on port 1: the error must name the server and path.
	p := &Proc{Name: "ghost", Addr: "127.0.0.1:1"}
	if _, err := p.Sockets(context.Background()); err == nil || !strings.Contains(err.Error(), "ghost /bench/stats") {
		t.Fatalf("err = %v", err)
	}
}
