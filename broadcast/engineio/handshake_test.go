package engineio

import (
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestKeptHeader(t *testing.T) {
	browser := http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"},
		"User-Agent": {"Mozilla/5.0"}, "Cookie": {"a=1", "b=2"}, "Authorization": {"Bearer t"},
		"Sec-Websocket-Protocol": {"chat"}, "X-Empty": {""}, "X-Forwarded-For": {"10.0.0.1", "10.0.0.2"},
	}
	var all []string
	tests := []struct {
		name string
		in   http.Header
		keep []string
		want http.Header
	}{
		{"empty", http.Header{}, all, http.Header{}},
		{"only upgrade mechanics", http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Extensions": {"permessage-deflate"},
		}, all, http.Header{}},
		{"browser request, all kept", browser, all, http.Header{
			"User-Agent": {"Mozilla/5.0"}, "Cookie": {"a=1", "b=2"}, "Authorization": {"Bearer t"},
			"Sec-Websocket-Protocol": {"chat"}, "X-Empty": {""}, "X-Forwarded-For": {"10.0.0.1", "10.0.0.2"},
		}},
		{"browser request, the client headers", browser, ClientHeaders, http.Header{
			"User-Agent": {"Mozilla/5.0"}, "Authorization": {"Bearer t"}, "X-Forwarded-For": {"10.0.0.1", "10.0.0.2"},
		}},
		{"named upgrade mechanics are kept", browser, []string{"Upgrade", "Cookie"}, http.Header{
			"Upgrade": {"websocket"}, "Cookie": {"a=1", "b=2"},
		}},
		{"within the budget, in the order named", http.Header{
			"Authorization": {"Bearer " + strings.Repeat("t", keptHeaderBytes-100)},
			"User-Agent":    {strings.Repeat("u", 200)},
			"Origin":        {"http://app"},
		}, ClientHeaders, http.Header{
			"Authorization": {"Bearer " + strings.Repeat("t", keptHeaderBytes-100)},
			"Origin":        {"http://app"},
		}},
		{"one huge value is dropped, not cut", http.Header{
			"User-Agent": {strings.Repeat("u", keptHeaderBytes+1)}, "Origin": {"http://app"},
		}, ClientHeaders, http.Header{"Origin": {"http://app"}}},
		{"all: the client headers first", http.Header{
			"Accept-Language": {strings.Repeat("l", keptHeaderBytes-5)}, "Authorization": {"Bearer t"}, "Zz": {"z"},
		}, all, http.Header{"Authorization": {"Bearer t"}, "Zz": {"z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Repeated: map iteration order changes from run to run.
			for range 100 {
				got := keptHeader(tt.in, tt.keep)
				if !maps.EqualFunc(got, tt.want, slices.Equal) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	// Values share one backing array; appending to one key must not
	// change another's.
	h := keptHeader(http.Header{"A": {"1"}, "B": {"2"}}, all)
	h["A"] = append(h["A"], "x")
	if got := h.Get("B"); got != "2" {
		t.Fatalf("B = %q after appending to A", got)
	}
}

// TestKeptHandshakeBounded: a handshake that sends 12 KiB of headers and
// query parameters besides what walcast reads leaves its session with
// only what it reads (KeepHeaders as walcast sets it).
func TestKeptHandshakeBounded(t *testing.T) {
	e := newEnv(t, Config{KeepHeaders: ClientHeaders}, false)
	junk := strings.Repeat("j", 6<<10)
	code, _, body := e.do("GET", "EIO=4&transport=polling&junk="+junk, "", map[string]string{
		"X-Junk": junk, "Cookie": junk, "User-Agent": "test-agent", "Authorization": "Bearer tok",
	})
	if code != 200 {
		t.Fatalf("handshake: %d %s", code, body)
	}
	sess := <-e.sessions
	hs := sess.Handshake()
	if !maps.EqualFunc(hs.Header, http.Header{"User-Agent": {"test-agent"}, "Authorization": {"Bearer tok"}}, slices.Equal) {
		t.Errorf("kept headers %v", hs.Header)
	}
	if hs.Query.Has("junk") || hs.Query.Get("EIO") != "4" || hs.Query.Get("transport") != "polling" {
		t.Errorf("kept query %v", hs.Query)
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
	// Parameters that do not fit the budget whole are left out.
	big := url.Values{"EIO": {"4"}, "a": {strings.Repeat("x", keptQueryBytes)}, "b": {"1"}, "c": {strings.Repeat("y", keptQueryBytes/2)}}
	got = keptQuery(big)
	want := url.Values{"EIO": {"4"}, "b": {"1"}, "c": big["c"]}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("over the budget: kept %d parameters %v, want EIO, b and c", len(got), slices.Sorted(maps.Keys(got)))
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
