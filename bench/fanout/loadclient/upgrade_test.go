package loadclient

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckUpgradeResponse(t *testing.T) {
	// The RFC 6455 section 1.3 example pair.
	const key, accept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	if got := acceptFor(key); got != accept {
		t.Fatalf("acceptFor = %q, want %q", got, accept)
	}
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
	tests := []struct {
		name    string
		head    string
		wantErr string
	}{
		{"valid", ok, ""},
		{"lower-case header name", strings.Replace(ok, "Sec-WebSocket-Accept", "sec-websocket-accept", 1), ""},
		{"refused", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "upgrade refused"},
		{"too many from this address", "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n", "try later"},
		{"server full", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", "try later"},
		{"wrong accept", strings.Replace(ok, accept, "AAAA", 1), "Sec-WebSocket-Accept"},
		{"no accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "without Sec-WebSocket-Accept"},
		{"compression forced", strings.Replace(ok, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1), "extension"},
		{"malformed header", "HTTP/1.1 101 Switching Protocols\r\nnocolon\r\n\r\n", "malformed"},
		{"empty", "", "upgrade refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkUpgradeResponse([]byte(tt.head), accept)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
			if got, want := errors.Is(err, errTryLater), tt.wantErr == "try later"; got != want {
				t.Errorf("errors.Is(err, errTryLater) = %v, want %v: only 429 and 503 are retried", got, want)
			}
		})
	}
}

// FuzzCheckUpgradeResponse: the response head comes off the network.
func FuzzCheckUpgradeResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, head []byte) {
		checkUpgradeResponse(head, "x") // must not panic; any verdict is fine
		if indexHeadEnd(head) > len(head) {
			t.Fatal("head end past the input")
		}
	})
}
