// Command nethttp is bench/hostile's floor: the least a server built on
// Go's net/http and github.com/gobwas/ws must do for each hostile kind,
// with walcast's HTTP limits (engineio's defaults), so that what a kind
// costs walcast can be set beside what it costs Go's HTTP server alone.
//
//	nethttp -listen 127.0.0.1:8080 [-admin-listen 127.0.0.1:8081]
//
// It keeps no session: a polling handshake answers an open packet with a
// fresh sid and closes the connection (walcast keeps none alive before
// authentication), a POST reads its body (within the body timeout, as
// walcast's http.Server has it) whatever its sid, and a WebSocket is
// upgraded, sent the open packet and read frame by frame on its own
// goroutine, closed unless a Socket.IO CONNECT ("40") comes within the
// connect timeout, which is answered so that the bench's authenticated
// clients are held too. -admin-listen serves /debug/pprof/.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/gobwas/ws"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
)

// maxPayload is engineio's default, which a message may not exceed.
const maxPayload = 1_000_000

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	admin := flag.String("admin-listen", "", "address for /debug/pprof/ (none when empty)")
	flag.Parse()
	if err := run(*listen, *admin); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

func run(listen, admin string) error {
	if admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		ln, err := net.Listen("tcp", admin)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		go func() { _ = http.Serve(ln, mux) }()
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("/socket.io/", engine)
	return newServer(mux).Serve(ln)
}

// newServer has the settings engineio.Server.HTTPServer gives walcast's
// server with the defaults.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength != 0 {
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(engineio.DefaultBodyTimeout))
			}
			h.ServeHTTP(w, r)
		}),
		MaxHeaderBytes:    engineio.DefaultMaxHeaderBytes,
		ReadHeaderTimeout: engineio.DefaultHeaderTimeout,
		IdleTimeout:       engineio.DefaultIdleTimeout,
	}
}

func engine(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("transport") == "websocket":
		webSocket(w, r)
	case r.Method == http.MethodGet && q.Get("sid") == "":
		w.Header().Set("Connection", "close")
		_, _ = w.Write(openPacket())
	case r.Method == http.MethodPost:
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload)); err != nil {
			w.Header().Set("Connection", "close")
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	default:
		http.Error(w, "unknown session", http.StatusBadRequest)
	}
}

func openPacket() []byte {
	var sid [10]byte
	_, _ = rand.Read(sid[:])
	return fmt.Appendf(nil, `0{"sid":"%s","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":%d}`,
		hex.EncodeToString(sid[:]), maxPayload)
}

// webSocket upgrades, sends the open packet and reads frames until the
// client goes, the CONNECT is late, or a frame is not complete within the
// frame timeout of its header.
func webSocket(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	defer conn.Close()
	// net/http's 4 KiB reader is let go unless the client wrote ahead of
	// the 101: a hijacked connection needs no buffer of its own to wait.
	var in io.Reader = conn
	if n := rw.Reader.Buffered(); n > 0 {
		ahead, _ := rw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(bytes.Clone(ahead)), conn)
	}
	if err := ws.WriteFrame(conn, ws.NewTextFrame(openPacket())); err != nil {
		return
	}
	connectBy := time.Now().Add(socketio.DefaultConnectTimeout)
	joined := false
	for {
		headerBy := time.Time{}
		if !joined {
			headerBy = connectBy
		}
		_ = conn.SetReadDeadline(headerBy)
		h, err := ws.ReadHeader(in)
		if err != nil || h.Length > maxPayload || h.OpCode == ws.OpClose {
			return
		}
		frameBy := time.Now().Add(engineio.DefaultFrameTimeout)
		if !joined && connectBy.Before(frameBy) {
			frameBy = connectBy
		}
		_ = conn.SetReadDeadline(frameBy)
		// ReadAll grows with what arrives, not with what the header announces.
		payload, err := io.ReadAll(io.LimitReader(in, h.Length))
		if err == nil && int64(len(payload)) < h.Length {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		if !joined && h.OpCode == ws.OpText && bytes.HasPrefix(payload, []byte("40")) {
			joined = true
			if err := ws.WriteFrame(conn, ws.NewTextFrame([]byte(`40{"sid":"floor"}`))); err != nil {
				return
			}
		}
	}
}
