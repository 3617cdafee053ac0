package engine

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

func waitDone(t *testing.T, what string, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s never came", what)
	}
}

// The first signal drains, the second aborts.
func TestOnSignalsTwoLevels(t *testing.T) {
	s := OnSignals(context.Background(), 0, syscall.SIGUSR1)
	defer s.Release()
	if s.Drained() {
		t.Fatal("drained before any signal")
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	waitDone(t, "drain", s.Drain)
	if s.Abort.Err() != nil || !s.Drained() {
		t.Fatalf("first signal: abort %v, drained %v", s.Abort.Err(), s.Drained())
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	waitDone(t, "abort", s.Abort)
	if !errors.Is(context.Cause(s.Abort), ErrInterrupted) {
		t.Errorf("abort cause %v", context.Cause(s.Abort))
	}
}

// With a deadline, a drain that does not finish in time becomes an abort;
// the parent context ending counts as the first signal.
func TestOnSignalsDeadline(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	s := OnSignals(parent, 50*time.Millisecond)
	defer s.Release()
	cancel()
	waitDone(t, "drain", s.Drain)
	waitDone(t, "abort after the deadline", s.Abort)
	if !errors.Is(context.Cause(s.Abort), ErrShutdownTimeout) {
		t.Errorf("abort cause %v", context.Cause(s.Abort))
	}
	if !s.Drained() {
		t.Error("Drained false after the parent ended")
	}
}
