package socketio_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
	"github.com/walcast/walcast/broadcast/socketio/siotest"
)

// Environment of the idle-client child process (see TestIdleClientsHelper).
const (
	envIdleAddr = "WALCAST_IDLE_CLIENTS_ADDR"
	envIdleN    = "WALCAST_IDLE_CLIENTS_N"
	envIdleMode = "WALCAST_IDLE_CLIENTS_MODE"
	// envIdleHeapProfile names a file prefix: the heap profile with all
	// connections idle is written there (use -test.memprofilerate=1).
	envIdleHeapProfile = "WALCAST_IDLE_HEAPPROFILE"
)

// browserHeader is what a browser's WebSocket request carries besides the
// upgrade headers, so the handshake's kept headers cost what they cost in
// production.
var browserHeader = http.Header{
	"User-Agent":               {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"},
	"Accept-Encoding":          {"gzip, deflate, br, zstd"},
	"Accept-Language":          {"en-US,en;q=0.9"},
	"Cache-Control":            {"no-cache"},
	"Pragma":                   {"no-cache"},
	"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"},
}

// BenchmarkIdleConnection reports the server memory one idle Socket.IO
// connection holds: n browser-like WebSocket clients connect to "/" from a
// child process (so no client memory is counted), then heap and goroutine
// stack in use are read after a GC, minus the empty server's. "bare-hijack"
// is the reference in the same run: an HTTP handler that hijacks the
// connection and parks one goroutine reading it, the floor for any server
// with a reader goroutine per connection. Run with -benchtime=1x.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 1000
	b.Run(fmt.Sprintf("walcast/conns=%d", n), func(b *testing.B) {
		for range b.N {
			srv := socketio.NewServer(socketio.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			nsp := srv.Of("/")
			measureIdle(b, n, "socketio", srv, func() int { return nsp.Len() })
			srv.Close()
		}
	})
	b.Run(fmt.Sprintf("bare-hijack/conns=%d", n), func(b *testing.B) {
		for range b.N {
			h := &bareHijack{}
			measureIdle(b, n, "bare", h, h.count)
			h.close()
		}
	})
}

// bareHijack answers the upgrade with 101 and parks a reader per connection.
type bareHijack struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (h *bareHijack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	h.mu.Lock()
	h.conns = append(h.conns, conn)
	h.mu.Unlock()
	go func() {
		var buf [16]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

func (h *bareHijack) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *bareHijack) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
}

// measureIdle serves h, has a child process open n idle connections, waits
// until count reports all of them, and reports the growth of heap and
// goroutine stacks per connection.
func measureIdle(b *testing.B, n int, mode string, h http.Handler, count func() int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	before := settledMem()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envIdleAddr+"="+ln.Addr().String(), envIdleN+"="+strconv.Itoa(n), envIdleMode+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		b.Fatalf("idle clients: %q %v", line, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d connections registered", count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let handshake goroutines finish and their stacks be freed.
	time.Sleep(200 * time.Millisecond)
	after := settledMem()
	heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
	if f := os.Getenv(envIdleHeapProfile); f != "" {
		writeHeapProfile(b, f+"-"+mode)
	}
	b.ReportMetric(heap, "heap-B/conn")
	b.ReportMetric(stack, "stack-B/conn")
	b.ReportMetric(heap+stack, "B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

func settledMem() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestIdleClientsHelper is the child process of BenchmarkIdleConnection: it
// opens the connections, prints "ready", and holds them until stdin closes.
// Run directly it does nothing.
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv(envIdleAddr)
	if addr == "" {
		t.Skip("child process of BenchmarkIdleConnection")
	}
	n, err := strconv.Atoi(os.Getenv(envIdleN))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]io.Closer, 0, n)
	for range n {
		if os.Getenv(envIdleMode) == "bare" {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /socket.io/ HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", addr)
			conns = append(conns, c)
			continue
		}
		hdr := browserHeader.Clone()
		hdr.Set("Origin", "http://"+addr) // same origin, as a page served by walcast's host
		c, err := siotest.Dial(addr, nil, hdr)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Connect("/", ""); err != nil || !strings.HasPrefix(got, `0{"sid":"`) {
			t.Fatalf("connect: %q %v", got, err)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
}
