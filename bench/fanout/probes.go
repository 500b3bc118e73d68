package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/walcast/walcast/bench/fanout/loadclient"
)

// probes is the Node process running the official client probes
// (node/probes.js: socket.io-client, or centrifuge-js for the Centrifuge
// server); it reports per-rung latency when asked.
type probes struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	count int
}

type probeReport struct {
	Rung        int      `json:"rung"`
	Received    int64    `json:"received"`
	P50ms       *float64 `json:"p50_ms"`
	P99ms       *float64 `json:"p99_ms"`
	Maxms       *float64 `json:"max_ms"`
	Disconnects int      `json:"disconnects"`
}

func startProbes(ctx context.Context, nodeDir, addr string, count int, proto loadclient.Protocol) (*probes, error) {
	client := "socketio"
	if proto == loadclient.Centrifuge {
		client = "centrifuge"
	}
	cmd := exec.Command("node", "probes.js", "http://"+addr, fmt.Sprint(count), client)
	cmd.Dir = nodeDir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start probes: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start probes: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start probes: %w", err)
	}
	p := &probes{cmd: cmd, in: in, lines: make(chan string, 16), count: count}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	if _, err := p.readLine(ctx, 60*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("probes not ready: %w", err)
	}
	return p, nil
}

func (p *probes) readLine(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("probe process exited")
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer from probes in %v", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// report returns (and forgets) the latencies the probes saw for rung, once
// each probe has the expected events or 3 s have passed.
func (p *probes) report(ctx context.Context, rung, expected int) (probeReport, error) {
	if _, err := fmt.Fprintf(p.in, "report %d %d\n", rung, expected); err != nil {
		return probeReport{}, fmt.Errorf("ask probes: %w", err)
	}
	l, err := p.readLine(ctx, 30*time.Second)
	if err != nil {
		return probeReport{}, fmt.Errorf("probe report: %w", err)
	}
	var r probeReport
	if err := json.Unmarshal([]byte(l), &r); err != nil {
		return probeReport{}, fmt.Errorf("probe report %q: %w", l, err)
	}
	return r, nil
}

func (p *probes) stop() {
	p.in.Close() // probes.js exits when stdin closes
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
