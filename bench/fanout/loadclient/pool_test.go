package loadclient

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/bench/fanout/serverproc"
	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
)

// startNodeServer runs the reference socket.io@4 server of the benchmark:
// the load client is checked against the real thing, not a stand-in.
func startNodeServer(t *testing.T) *serverproc.Proc {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	dir, err := filepath.Abs("../node")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := serverproc.EnsureNodeModules(ctx, dir); err != nil {
		t.Fatal(err)
	}
	p, err := serverproc.Start(ctx, "node", dir, []string{"PORT=0"}, "node", "server.js")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// startCentrifugeServer builds and runs the benchmark's Centrifuge
// reference server (its own module in ../centrifuge).
func startCentrifugeServer(t *testing.T) *serverproc.Proc {
	t.Helper()
	dir, err := filepath.Abs("../centrifuge")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "centrifuge-bench-server")
	if err := serverproc.BuildGo(ctx, dir, ".", bin); err != nil {
		t.Fatal(err)
	}
	p, err := serverproc.Start(ctx, "centrifuge", dir, nil, bin, "-addr", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func TestPoolCountsEveryBroadcast(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(*testing.T) *serverproc.Proc
		proto Protocol
	}{
		{"socket.io", startNodeServer, SocketIO},
		{"centrifuge", startCentrifugeServer, Centrifuge},
	} {
		t.Run(tt.name, func(t *testing.T) { testPoolCounts(t, tt.start(t), tt.proto) })
	}
}

func testPoolCounts(t *testing.T, srv *serverproc.Proc, proto Protocol) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const clients = 300
	pool, err := Dial(ctx, Config{
		Addr:         srv.Addr,
		Protocol:     proto,
		Workers:      3,
		DialParallel: 16,
		LatencyEvery: 100,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, clients)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got, err := srv.Sockets(ctx); err != nil || got != clients {
		t.Fatalf("server holds %d sockets (err %v), want %d", got, err, clients)
	}

	for rung, rate := range []float64{50, 200} {
		sent, err := srv.Broadcast(ctx, rate, 500*time.Millisecond, rung, 300)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(rate / 2); sent != want {
			t.Fatalf("rung %d: server sent %d, want %d", rung, sent, want)
		}
		want := int64(sent * clients)
		deadline := time.Now().Add(10 * time.Second)
		for pool.Delivered(rung) < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := pool.Delivered(rung); got != want {
			t.Errorf("rung %d: delivered %d, want %d", rung, got, want)
		}
		lat := pool.Latencies(rung)
		if len(lat) != 3*sent {
			t.Errorf("rung %d: %d latency samples, want %d (3 sampling clients)", rung, len(lat), 3*sent)
		}
		if len(lat) > 0 && (lat[0] < 0 || lat[len(lat)-1] > 10*time.Second) {
			t.Errorf("rung %d: latency range %v..%v is not plausible", rung, lat[0], lat[len(lat)-1])
		}
	}
	if pool.Closed() != 0 || pool.Strays() != 0 {
		t.Errorf("closed %d strays %d, want 0", pool.Closed(), pool.Strays())
	}
}

func TestPoolNoticesServerExit(t *testing.T) {
	srv := startNodeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := Dial(ctx, Config{Addr: srv.Addr}, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for pool.Closed() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := pool.Closed(); got != 20 {
		t.Errorf("closed %d of 20 after the server exited", got)
	}
}

func TestDialRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there in the test environment.
	if _, err := Dial(ctx, Config{Addr: "127.0.0.1:1"}, 3); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if _, err := Dial(ctx, Config{Addr: "localhost:80"}, 1); err == nil {
		t.Fatal("Dial accepted a non-IP address")
	}
}

// TestSlowReadersStayBehind: a throttled pool reads no faster than its
// rate, so it has only part of a burst when the fast pool has it whole.
func TestSlowReadersStayBehind(t *testing.T) {
	srv := startNodeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fast, err := Dial(ctx, Config{Addr: srv.Addr}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	const rate = 500 // bytes/s
	slow, err := Dial(ctx, Config{Addr: srv.Addr, ReadRate: rate}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// 400 events of ~330 bytes on the wire: 130 KB per client.
	start := time.Now()
	sent, err := srv.Broadcast(ctx, 4000, 100*time.Millisecond, 0, 300)
	if err != nil || sent != 400 {
		t.Fatalf("sent %d, err %v", sent, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for fast.Delivered(0) < 5*400 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got, elapsed := slow.Delivered(0), time.Since(start)
	if fast.Delivered(0) != 5*400 {
		t.Fatalf("fast pool got %d of 2000", fast.Delivered(0))
	}
	// What a slow client can hold: its kernel buffer (SO_RCVBUF 4 KiB,
	// doubled, plus slack) and rate bytes per second since the burst.
	limit := int64(5 * (16<<10 + rate*elapsed.Seconds()) / 300)
	if got > limit {
		t.Errorf("slow pool read %d events in %v, more than the %d its rate allows", got, elapsed, limit)
	}
	if slow.Closed() != 0 {
		t.Errorf("%d slow clients closed", slow.Closed())
	}
}

// TestDialRetriesRefusedHandshake: walcast answers a handshake 429 while
// its address holds --max-pending-per-address sessions that have not
// joined a namespace, as a burst of load clients can; the pool retries,
// as the official client does, and gets in once the slot is free.
func TestDialRetriesRefusedHandshake(t *testing.T) {
	sio := socketio.NewServer(socketio.Config{EngineIO: engineio.Config{MaxPendingPerAddress: 1}})
	defer sio.EngineIO().Close()
	srv := httptest.NewServer(sio)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// A session that never sends CONNECT holds the address's one slot.
	hold, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := io.WriteString(hold, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(hold), nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("holding session: %v %v", res, err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		hold.Close()
		close(released)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := Dial(ctx, Config{Addr: addr}, 3)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer pool.Close()
	select {
	case <-released:
	default:
		t.Fatal("Dial returned while the address's slot was still held: nothing was refused")
	}
	if got := sio.EngineIO().Stats().Refused.PendingPerAddress; got == 0 {
		t.Error("no handshake was refused for the address's cap")
	}
	deadline := time.Now().Add(10 * time.Second)
	for pool.Connected() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := pool.Connected(); got != 3 {
		t.Errorf("connected %d of 3", got)
	}
}
