package logbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 10 {
		t.Fatalf("%d lines written, want 10:\n%s", n, b.String())
	}
	if got := b.Tail(1000); got != strings.TrimSpace(b.String()) {
		t.Errorf("Tail of a short buffer = %q", got)
	}
	if got := b.Tail(8); !strings.HasPrefix(got, "...\n") || len(got) > 4+8 {
		t.Errorf("Tail(8) = %q", got)
	}
}
