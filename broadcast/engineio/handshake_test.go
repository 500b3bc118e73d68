package engineio

import (
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
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

func TestSharedQuery(t *testing.T) {
	srv := NewServer(Config{}, nil)
	parse := func(raw string) url.Values {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const ws = "EIO=4&transport=websocket"
	a, b := srv.sharedQuery(ws, parse(ws)), srv.sharedQuery(ws, parse(ws))
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Fatal("the same query string got two maps")
	}
	if a.Get("transport") != "websocket" || a.Get("EIO") != "4" {
		t.Fatalf("shared query %v", a)
	}
	other := srv.sharedQuery("EIO=4&transport=polling", parse("EIO=4&transport=polling"))
	if other.Get("transport") != "polling" {
		t.Fatalf("another query got %v", other)
	}
	// Unique queries cycle through; the cache stays bounded and still
	// answers with equal values.
	for i := range 3 * queryGeneration {
		raw := "EIO=4&transport=polling&t=" + strconv.Itoa(i)
		if got := srv.sharedQuery(raw, parse(raw)); got.Get("t") != strconv.Itoa(i) {
			t.Fatalf("query %d: %v", i, got)
		}
	}
	if n := len(srv.queries) + len(srv.prevQueries); n > 2*queryGeneration {
		t.Fatalf("%d queries cached", n)
	}
}
