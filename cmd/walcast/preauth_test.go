package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// What a client costs before it authenticates (DESIGN.md decision 10),
// driven with raw sockets against the walcast binary: the official client
// cannot send half a frame, oversized headers or no CONNECT at all.

// rawWS opens an Engine.IO session over WebSocket from the loopback
// address from (127.0.0.1 when empty) saying X-Forwarded-For: xff (no
// header when empty), and reads its open packet. The error carries the
// HTTP status of a refused handshake.
func rawWS(t *testing.T, in *instance, from, xff string) (net.Conn, error) {
	t.Helper()
	d := ws.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		d.NetDial = nd.DialContext
	}
	if xff != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"X-Forwarded-For": {xff}})
	}
	u := "ws" + strings.TrimPrefix(in.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	raw, br, _, err := d.Dial(context.Background(), u)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { raw.Close() })
	var conn net.Conn = raw
	if br != nil {
		// The server's first frames may have come with its answer.
		conn = bufferedConn{raw, br}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if msg, err := wsutil.ReadServerText(conn); err != nil || !strings.HasPrefix(string(msg), "0{") {
		t.Fatalf("open packet: %q %v", msg, err)
	}
	return conn, nil
}

// serverCloses waits until the server ends conn and reports how long that
// took and the close code (0 without a close frame).
func serverCloses(t *testing.T, conn net.Conn, limit time.Duration) (time.Duration, ws.StatusCode) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	for {
		_, err := wsutil.ReadServerText(conn)
		if err == nil {
			continue
		}
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			return time.Since(start), ce.Code
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", limit)
		}
		return time.Since(start), 0
	}
}

func TestPreAuthLimits(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{args: []string{
		"--connect-timeout", "1s", "--frame-timeout", "1s", "--max-pending-per-address", "3", "--trusted-proxies", "127.0.0.2",
	}})
	tok := mint(t, 1, "admin", "admin", nil, time.Hour)
	ensureUsers(t, in, tok)

	t.Run("no CONNECT", func(t *testing.T) {
		c, err := rawWS(t, in, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if took, _ := serverCloses(t, c, 10*time.Second); took < 500*time.Millisecond {
			t.Fatalf("closed after %s, before the 1s connect timeout", took)
		}
	})
	t.Run("CONNECT with a bad token", func(t *testing.T) {
		c, err := rawWS(t, in, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := wsutil.WriteClientText(c, []byte(`40{"token":"nope"}`)); err != nil {
			t.Fatal(err)
		}
		msg, err := wsutil.ReadServerText(c)
		if err != nil || !strings.HasPrefix(string(msg), `44{"message":"`+msgInvalidToken) {
			t.Fatalf("answer %q %v", msg, err)
		}
		serverCloses(t, c, 10*time.Second)
	})
	t.Run("half a message", func(t *testing.T) {
		c, err := rawWS(t, in, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := wsutil.WriteClientText(c, []byte(`40{"token":"`+tok+`"}`)); err != nil {
			t.Fatal(err)
		}
		if msg, err := wsutil.ReadServerText(c); err != nil || !strings.HasPrefix(string(msg), "40{") {
			t.Fatalf("CONNECT answer %q %v", msg, err)
		}
		// A frame header announcing 900 KB, then 3 bytes of it.
		n := 900_000
		if _, err := c.Write([]byte{0x81, 0xff, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 1, 2, 3, 4, '4' ^ 1, 'x' ^ 2, 'x' ^ 3}); err != nil {
			t.Fatal(err)
		}
		if _, code := serverCloses(t, c, 10*time.Second); code != 1008 {
			t.Fatalf("close code %d, want 1008", code)
		}
	})
	t.Run("pending per address, behind a trusted proxy", func(t *testing.T) {
		for i := range 3 {
			if _, err := rawWS(t, in, "127.0.0.2", "192.0.2.1"); err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
		}
		if _, err := rawWS(t, in, "127.0.0.2", "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "429") {
			t.Fatalf("4th session from one address: %v, want 429", err)
		}
		if _, err := rawWS(t, in, "127.0.0.2", "192.0.2.2"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		// From a peer that is not trusted the header counts for nothing:
		// 127.0.0.1 has three too, whatever it says.
		for i := range 3 {
			if _, err := rawWS(t, in, "", "192.0.2.9"); err != nil {
				t.Fatalf("session %d from 127.0.0.1: %v", i, err)
			}
		}
		if _, err := rawWS(t, in, "", "192.0.2.10"); err == nil || !strings.Contains(err.Error(), "429") {
			t.Fatalf("4th session from 127.0.0.1 naming another client: %v, want 429", err)
		}
	})
	t.Run("headers over 16 KiB", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(in.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = io.WriteString(c, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Junk: "+strings.Repeat("j", 1<<20)+"\r\n\r\n")
		}()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("1 MB of headers: %v %v, want 431", res, err)
		}
	})
	t.Run("no keep-alive before authentication", func(t *testing.T) {
		res, err := http.Get(in.URL + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if !res.Close {
			t.Fatal("the handshake's connection is kept alive")
		}
	})
	t.Run("counted for operators", func(t *testing.T) {
		got := scrape(t, in)
		for kind, least := range map[string]float64{"connect_timeout": 1, "slow_message": 1, "pending_per_address": 2} {
			if v := got[`walcast_connection_refusals_total{kind="`+kind+`"}`]; v < least {
				t.Errorf("walcast_connection_refusals_total{kind=%q} = %v, want at least %v", kind, v, least)
			}
		}
		if v, ok := got[`walcast_connection_refusals_total{kind="pending"}`]; !ok || v != 0 {
			t.Errorf(`walcast_connection_refusals_total{kind="pending"} = %v (exported %v), want 0`, v, ok)
		}
	})
}

// bufferedConn reads what the handshake's reader took ahead first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
