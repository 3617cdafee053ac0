// Package logtest holds what tests share to read a program's log.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log destination (an io.Writer for slog handlers) that
// goroutines may write while a test reads it with String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
