package main

import (
	"net"
	"testing"
	"time"

	"github.com/walcast/walcast/broadcast/engineio"
	"github.com/walcast/walcast/broadcast/socketio"
)

// TestKindsAgainstTheLimits drives each hostile kind at a real server with
// the limits shortened to 300 ms: the benchmark's clients must be what they
// say (accepted or refused as their kind is, and closed by the server by
// the limit that names them), or its figures measure something else.
func TestKindsAgainstTheLimits(t *testing.T) {
	const limit = 300 * time.Millisecond
	sio := socketio.NewServer(socketio.Config{
		EngineIO:       engineio.Config{FrameTimeout: limit, HeaderTimeout: limit, BodyTimeout: limit},
		ConnectTimeout: limit,
	})
	defer sio.EngineIO().Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := sio.EngineIO().HTTPServer(sio)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	addr := ln.Addr().String()

	wantAnswer := map[string]string{
		"huge frame header": "101 Switching Protocols",
		"huge headers":      "431 Request Header Fields Too Large",
		"idle keep-alive":   "200 OK",
		"trickling POST":    "session opened, body trickling",
		"no CONNECT":        "101 Switching Protocols",
		"silent TCP":        "connected",
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			var conns [][]*hostileConn
			for i := range 3 {
				conns = append(conns, []*hostileConn{k.open(addr, sourceAddr(i, 3))})
			}
			stop := trickle(conns)
			defer stop()
			for _, cs := range conns {
				c := cs[0]
				if c.answer != wantAnswer[k.name] {
					t.Fatalf("answer %q, want %q", c.answer, wantAnswer[k.name])
				}
				if c.accepted != (k.name != "huge headers") {
					t.Errorf("accepted = %v", c.accepted)
				}
				select {
				case <-c.done:
				case <-time.After(5 * time.Second):
					t.Fatal("not closed by the server 5s after its start")
				}
				life, _ := c.lifetime()
				// A limit of 0 (refused, or no keep-alive) closes at once.
				if k.within > 0 && life < limit {
					t.Errorf("closed after %v, before the %v limit that should close it", life, limit)
				}
				c.conn.Close()
			}
		})
	}
	if err := authenticate(addr, legitAddr, "any"); err != nil {
		t.Errorf("a legitimate client: %v", err)
	}
}

// TestClientFrameLengths: a length takes the shortest of its encodings
// (RFC 6455 5.2), which a server may insist on.
func TestClientFrameLengths(t *testing.T) {
	for _, tt := range []struct{ payload, header int }{{0, 2}, {125, 2}, {126, 4}, {0xffff, 4}, {0x10000, 10}} {
		f := clientFrame(make([]byte, tt.payload))
		if got := len(f) - tt.payload - 4; got != tt.header {
			t.Errorf("payload %d: header of %d bytes, want %d", tt.payload, got, tt.header)
		}
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Errorf("payload %d: starts % x, want a masked FIN text frame", tt.payload, f[:2])
		}
	}
}
