// Package logbuf collects a process's or a logger's output while it runs,
// for tests to search and to print when they fail.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail is at most the last n bytes written, trimmed, marked with "..."
// when cut.
func (b *Buffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "...\n" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
