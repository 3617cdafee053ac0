package engine

import (
	"context"
	"errors"
	"os"
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
	time.Sleep(repeatWindow) // sooner, it would be the first one repeated
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

// GNU timeout sends its signal to the command and then to the command's
// process group: the same signal twice at once is one request to drain,
// not an abort. The same signal later, or another signal at once, aborts.
func TestOnSignalsRepeatAtOnceIsOneSignal(t *testing.T) {
	// The window is a parameter so that "at once" cannot be outrun by a
	// loaded machine: a window of an hour is at once whatever the
	// scheduler does, and sleeping past a short one is later for sure.
	const short = 10 * time.Millisecond
	for _, c := range []struct {
		name   string
		second os.Signal
		window time.Duration
		after  time.Duration
		abort  bool
	}{
		{"same at once", syscall.SIGTERM, time.Hour, 0, false},
		{"same later", syscall.SIGTERM, short, short, true},
		{"other at once", syscall.SIGINT, time.Hour, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := make(chan os.Signal, 2)
			s := onSignals(context.Background(), 0, c.window, ch, nil, func() {})
			defer s.Release()
			ch <- syscall.SIGTERM
			waitDone(t, "drain", s.Drain)
			time.Sleep(c.after)
			ch <- c.second
			for len(ch) > 0 {
				time.Sleep(time.Millisecond)
			}
			if !c.abort {
				// The loop has taken it; Release waits for the loop to have
				// acted on it, however slowly, and cancels Abort only
				// without a cause of its own.
				s.Release()
				if cause := context.Cause(s.Abort); errors.Is(cause, ErrInterrupted) {
					t.Fatalf("aborted: %v", cause)
				}
				return
			}
			waitDone(t, "abort", s.Abort)
			if !errors.Is(context.Cause(s.Abort), ErrInterrupted) {
				t.Errorf("abort cause %v", context.Cause(s.Abort))
			}
		})
	}
}
