package engine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInterrupted is the abort cause after a second signal.
var ErrInterrupted = errors.New("interrupted twice: aborted without finishing in-flight items")

// ErrShutdownTimeout is the abort cause when a drain outlasts its deadline.
var ErrShutdownTimeout = errors.New("shutdown timeout: aborted the items still in flight (their acks failed: they are redelivered or resumed)")

// Stop is the two-level shutdown of a run, owned by one place.
type Stop struct {
	// Drain is done on the first signal (or when the parent context ends):
	// stop reading, finish and publish what is in flight.
	Drain context.Context
	// Abort is done on a second signal, or Timeout after the first: stop
	// now, fail what is pending. Pass it to Engine.Run and to anything that
	// blocks (a produce retrying against a dead broker).
	Abort context.Context

	drained func() bool
	stop    func()
}

// Drained reports whether a drain was asked for (the command then exits
// non-zero after publishing).
func (s *Stop) Drained() bool { return s.drained() }

// Release stops listening for signals.
func (s *Stop) Release() { s.stop() }

// OnSignals is the one owner of the process's signals for a run: the
// first of sigs (or parent ending) drains, the second aborts with
// ErrInterrupted, and, if timeout > 0, the abort also comes timeout after
// the first (ErrShutdownTimeout).
func OnSignals(parent context.Context, timeout time.Duration, sigs ...os.Signal) *Stop {
	drain, drainCancel := context.WithCancel(context.Background())
	abort, abortCancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	if len(sigs) > 0 {
		signal.Notify(ch, sigs...)
	}
	quit := make(chan struct{})
	var drained atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var deadline <-chan time.Time
		first := func(why string) {
			if drain.Err() != nil {
				return
			}
			slog.Warn(why + ": draining (finishing in-flight items); signal again to abort")
			drained.Store(true)
			drainCancel()
			if timeout > 0 {
				t := time.NewTimer(timeout)
				deadline = t.C
			}
		}
		parentDone := parent.Done()
		for {
			select {
			case s := <-ch:
				if drain.Err() == nil {
					first("signal " + s.String())
					continue
				}
				slog.Warn("signal: aborting", "signal", s.String())
				abortCancel(ErrInterrupted)
				return
			case <-parentDone:
				parentDone = nil
				first("stopping")
			case <-deadline:
				slog.Error("shutdown timeout: aborting", "timeout", timeout)
				abortCancel(ErrShutdownTimeout)
				return
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return &Stop{
		Drain:   drain,
		Abort:   abort,
		drained: drained.Load,
		stop: func() {
			once.Do(func() {
				signal.Stop(ch)
				close(quit)
				wg.Wait()
				drainCancel()
				abortCancel(nil)
			})
		},
	}
}
