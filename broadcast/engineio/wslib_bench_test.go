package engineio

// Benchmarks behind the choice of WebSocket library (gobwas/ws). They
// compare, on real loopback connections:
//   - writing one prepared frame to N connections: gobwas/ws with the frame
//     bytes built once and written raw (what this package does) against
//     gorilla/websocket's PreparedMessage;
//   - memory and goroutines per idle connection, against a baseline of bare
//     hijacked TCP connections with no goroutine at all.
// Run: go test -run '^$' -bench 'WSLib' -benchtime=200x ./broadcast/engineio/

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
)

// wsLib is one way to accept a WebSocket and write a prepared frame.
type wsLib struct {
	name string
	// accept upgrades and returns a writer for prepared payloads; it must
	// leave the connection in its idle state (reader parked if the library
	// needs one).
	accept func(w http.ResponseWriter, r *http.Request) (libConn, error)
	// prepare builds the shareable form of one text message.
	prepare func(payload []byte) any
}

type libConn interface {
	writePrepared(p any) error
	close()
}

type gobwasConn struct{ c *wsConn }

func (g gobwasConn) writePrepared(p any) error { _, err := g.c.conn.Write(p.([]byte)); return err }
func (g gobwasConn) close()                    { _ = g.c.conn.Close() }

type gorillaConn struct{ c *websocket.Conn }

func (g gorillaConn) writePrepared(p any) error {
	return g.c.WritePreparedMessage(p.(*websocket.PreparedMessage))
}
func (g gorillaConn) close() { _ = g.c.Close() }

type rawConn struct{ c net.Conn }

func (r rawConn) writePrepared(p any) error { _, err := r.c.Write(p.([]byte)); return err }
func (r rawConn) close()                    { _ = r.c.Close() }

var gorillaUpgrader = websocket.Upgrader{
	// Pooled write buffers are gorilla's best case for idle memory.
	WriteBufferPool: &sync.Pool{},
}

var wsLibs = []wsLib{
	{
		name: "baseline-hijack-only",
		accept: func(w http.ResponseWriter, r *http.Request) (libConn, error) {
			c, err := accept(w, r, 0)
			if err != nil {
				return nil, err
			}
			return rawConn{c.conn}, nil
		},
		prepare: func(p []byte) any { return appendFrame(nil, opText, 0, p) },
	},
	{
		name: "gobwas-raw-frame",
		accept: func(w http.ResponseWriter, r *http.Request) (libConn, error) {
			c, err := accept(w, r, 0)
			if err != nil {
				return nil, err
			}
			go func() {
				for {
					if _, _, err := c.readMessage(1<<20, 0); err != nil {
						return
					}
				}
			}()
			return gobwasConn{c}, nil
		},
		prepare: func(p []byte) any { return appendFrame(nil, opText, 0, p) },
	},
	{
		name: "gorilla-prepared",
		accept: func(w http.ResponseWriter, r *http.Request) (libConn, error) {
			c, err := gorillaUpgrader.Upgrade(w, r, nil)
			if err != nil {
				return nil, err
			}
			go func() {
				for {
					if _, _, err := c.NextReader(); err != nil {
						return
					}
				}
			}()
			return gorillaConn{c}, nil
		},
		prepare: func(p []byte) any {
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, p)
			if err != nil {
				panic(err)
			}
			return pm
		},
	},
}

// libServer accepts n connections for lib; the clients are gobwas dialers
// that keep nothing but the socket, plus a discarding reader if drain.
func libServer(b *testing.B, lib wsLib, n int, drain bool) []libConn {
	b.Helper()
	got := make(chan libConn, n)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := lib.accept(w, r)
		if err != nil {
			b.Error(err)
			return
		}
		got <- c
	}))
	u := "ws" + strings.TrimPrefix(hs.URL, "http")
	conns := make([]libConn, 0, n)
	var clients []net.Conn
	for range n {
		conn, _, _, err := ws.Dial(b.Context(), u)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, conn)
		if drain {
			go func() { _, _ = io.Copy(io.Discard, conn) }()
		}
		conns = append(conns, <-got)
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.close()
		}
		for _, c := range clients {
			_ = c.Close()
		}
		hs.Close()
	})
	return conns
}

func BenchmarkWSLibFanoutWrite(b *testing.B) {
	payload := []byte(strings.Repeat("x", 300))
	const n = 500
	for _, lib := range wsLibs[1:] {
		conns := libServer(b, lib, n, true)
		b.Run(fmt.Sprintf("%s/conns=%d", lib.name, n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := lib.prepare(payload)
				for _, c := range conns {
					if err := c.writePrepared(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/n, "ns/conn-write")
		})
	}
}

func BenchmarkWSLibIdleConn(b *testing.B) {
	const n = 500
	for _, lib := range wsLibs {
		b.Run(lib.name, func(b *testing.B) {
			var bytesPer, goroutinesPer float64
			for b.Loop() {
				heap0, g0 := settledMem()
				conns := libServer(b, lib, n, false)
				heap1, g1 := settledMem()
				bytesPer += float64(heap1-heap0) / n
				goroutinesPer += float64(g1-g0) / n
				for _, c := range conns {
					c.close()
				}
			}
			b.ReportMetric(bytesPer/float64(b.N), "B/conn")
			b.ReportMetric(goroutinesPer/float64(b.N), "goroutines/conn")
		})
	}
}

// BenchmarkEngineIOIdleSession measures a complete idle Engine.IO session
// on WebSocket (server and the bare client socket), for comparison with
// the library rows above.
func BenchmarkEngineIOIdleSession(b *testing.B) {
	const n = 500
	var bytesPer, goroutinesPer float64
	for b.Loop() {
		heap0, g0 := settledMem()
		sessions := benchSessions(b, n, false)
		heap1, g1 := settledMem()
		bytesPer += float64(heap1-heap0) / n
		goroutinesPer += float64(g1-g0) / n
		for _, s := range sessions {
			s.Close("done")
		}
	}
	b.ReportMetric(bytesPer/float64(b.N), "B/conn")
	b.ReportMetric(goroutinesPer/float64(b.N), "server-goroutines/conn")
}

// settledMem returns heap plus goroutine stack bytes in use and the
// goroutine count, after letting connection goroutines park.
func settledMem() (uint64, int) {
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}
