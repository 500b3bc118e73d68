// Command floor is the fan-out benchmark's floor: a Socket.IO server that
// does nothing per delivery but one write(2) of the already encoded frame
// to each socket, from one goroutine per CPU, with no queue, no lock, no
// bookkeeping, cutting a socket whose kernel buffer is full. What it spends
// per delivery is what the kernel charges for a write on this machine
// (loopback: both ends' TCP work), the least any server can spend without
// writing less often; it is measured in the same run as the servers it
// bounds (go run ./bench/fanout -servers walcast,node,centrifuge,floor).
//
// It speaks just enough Engine.IO v4 / Socket.IO v5 over WebSocket for the
// benchmark's clients: the open packet, the answer to the namespace
// CONNECT, a ping every 25 s, and the tick events.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/walcast/walcast/bench/fanout/benchserver"
	"github.com/walcast/walcast/bench/fanout/tick"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	s := &server{}
	go s.heartbeat()
	err := benchserver.Run(benchserver.Options{
		Addr:       *addr,
		CPUProfile: *cpuProfile,
		Path:       "/socket.io/",
		Handler:    s,
		Sockets:    s.count,
		Emit: func(_ context.Context, payload []byte) error {
			s.broadcast(frame(append(append([]byte(`42["`+tick.Event+`",`), payload...), ']')))
			return nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor server:", err)
		os.Exit(1)
	}
}

// conn is one socket: its descriptor, guarded against a close between
// the broadcaster reading it and writing to it.
type conn struct {
	mu     sync.Mutex
	fd     int
	closed bool
	nc     net.Conn
}

type server struct {
	mu    sync.Mutex
	conns []*conn // joined the namespace
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func randomID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// frame is payload as one unmasked text frame.
func frame(payload []byte) []byte {
	f := ws.NewTextFrame(payload)
	b := make([]byte, 0, ws.HeaderSize(f.Header)+len(payload))
	w := bytesWriter{&b}
	_ = ws.WriteHeader(w, f.Header)
	return append(b, payload...)
}

type bytesWriter struct{ b *[]byte }

func (w bytesWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("transport") != "websocket" {
		http.Error(w, "websocket only", http.StatusBadRequest)
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &conn{nc: nc, fd: -1}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	open := `0{"sid":"` + randomID() + `","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	if _, err := nc.Write(frame([]byte(open))); err != nil || c.fd < 0 {
		_ = nc.Close()
		return
	}
	go s.read(c)
}

// read answers the namespace CONNECT and reads everything else away.
func (s *server) read(c *conn) {
	defer s.drop(c)
	for {
		msg, op, err := wsutil.ReadClientData(c.nc)
		if err != nil {
			return
		}
		if op == ws.OpText && len(msg) >= 2 && string(msg[:2]) == "40" {
			c.mu.Lock()
			_, err := c.nc.Write(frame([]byte(`40{"sid":"` + randomID() + `"}`)))
			c.mu.Unlock()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}
}

func (s *server) drop(c *conn) {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if already {
		return
	}
	_ = c.nc.Close()
	s.mu.Lock()
	for i, x := range s.conns {
		if x == c {
			s.conns[i] = s.conns[len(s.conns)-1]
			s.conns = s.conns[:len(s.conns)-1]
			break
		}
	}
	s.mu.Unlock()
}

// broadcast writes f to every socket, the sockets split over one goroutine
// per CPU; a socket that cannot take it at once is cut.
func (s *server) broadcast(f []byte) {
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	parts := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var cut []*conn
	var cutMu sync.Mutex
	for p := range parts {
		lo, hi := p*len(conns)/parts, (p+1)*len(conns)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range conns[lo:hi] {
				c.mu.Lock()
				ok := !c.closed && writeAll(c.fd, f)
				c.mu.Unlock()
				if !ok {
					cutMu.Lock()
					cut = append(cut, c)
					cutMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range cut {
		s.drop(c)
	}
}

// writeAll is one write(2) that must take all of f.
func writeAll(fd int, f []byte) bool {
	for {
		n, err := syscall.Write(fd, f)
		if err == syscall.EINTR {
			continue
		}
		return err == nil && n == len(f)
	}
}

func (s *server) heartbeat() {
	ping := frame([]byte("2"))
	for range time.Tick(25 * time.Second) {
		s.broadcast(ping)
	}
}
