package loadclient

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
)

// newWebSocketKey returns a Sec-WebSocket-Key and the Sec-WebSocket-Accept
// the server must answer with (RFC 6455 section 4.2.2).
func newWebSocketKey() (key, accept string) {
	var raw [16]byte
	rand.Read(raw[:])
	key = base64.StdEncoding.EncodeToString(raw[:])
	return key, acceptFor(key)
}

func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// checkUpgradeResponse verifies a 101 answer with the expected accept key and
// no negotiated extension (the client cannot inflate compressed frames).
func checkUpgradeResponse(head []byte, accept string) error {
	lines := bytes.Split(bytes.TrimRight(head, "\r\n"), []byte("\r\n"))
	status := lines[0]
	if bytes.HasPrefix(status, []byte("HTTP/1.1 429")) || bytes.HasPrefix(status, []byte("HTTP/1.1 503")) {
		return fmt.Errorf("upgrade refused: %q: %w", status, errTryLater)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("upgrade refused: %q", status)
	}
	gotAccept := false
	for _, l := range lines[1:] {
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return fmt.Errorf("malformed response header %q", l)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			if string(value) != accept {
				return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", value, accept)
			}
			gotAccept = true
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			return fmt.Errorf("server negotiated extension %q the client did not offer", value)
		}
	}
	if !gotAccept {
		return fmt.Errorf("upgrade response without Sec-WebSocket-Accept")
	}
	return nil
}
