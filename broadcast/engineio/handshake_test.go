package engineio

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

func TestKeptHeader(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{"empty", http.Header{}, http.Header{}},
		{"only upgrade mechanics", http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Extensions": {"permessage-deflate"},
		}, http.Header{}},
		{"browser request", http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"},
			"User-Agent": {"Mozilla/5.0"}, "Cookie": {"a=1", "b=2"}, "Authorization": {"Bearer t"},
			"Sec-Websocket-Protocol": {"chat"}, "X-Empty": {""},
		}, http.Header{
			"User-Agent": {"Mozilla/5.0"}, "Cookie": {"a=1", "b=2"}, "Authorization": {"Bearer t"},
			"Sec-Websocket-Protocol": {"chat"}, "X-Empty": {""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Repeated: map iteration order changes from run to run.
			for range 100 {
				got := keptHeader(tt.in)
				if !maps.EqualFunc(got, tt.want, slices.Equal) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	// Values share one backing array; appending to one key must not
	// change another's.
	h := keptHeader(http.Header{"A": {"1"}, "B": {"2"}})
	h["A"] = append(h["A"], "x")
	if got := h.Get("B"); got != "2" {
		t.Fatalf("B = %q after appending to A", got)
	}
}

func TestKeptQuery(t *testing.T) {
	in := url.Values{"EIO": {"4"}, "transport": {"websocket"}, "tag": {"a", "b"}, "empty": {""}, "": {"nameless"}}
	got := keptQuery(in)
	if !maps.EqualFunc(got, in, slices.Equal) {
		t.Fatalf("got %v, want %v", got, in)
	}
	got["EIO"] = append(got["EIO"], "x")
	if !slices.Equal(got["tag"], []string{"a", "b"}) || !slices.Equal(got["transport"], []string{"websocket"}) {
		t.Fatalf("append to one key changed another: %v", got)
	}
}
