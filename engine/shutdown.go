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
	// startup, for a Stop of Startup.OnSignals, owns the signals until
	// Own hands them over; nil: the Stop owns them from the start.
	startup *Startup
}

// Drained reports whether a drain was asked for (the command then exits
// non-zero after publishing).
func (s *Stop) Drained() bool { return s.drained() }

// Release stops listening for signals.
func (s *Stop) Release() { s.stop() }

// repeatWindow is how soon after the first signal the same signal again
// counts as the same request. GNU timeout (and supervisors like it) sends
// its signal to the command and then to the command's process group, so
// the command gets it twice at once; a person pressing Ctrl-C twice is
// slower than this.
const repeatWindow = 100 * time.Millisecond

// OnSignals is the one owner of the process's signals for a run: the
// first of sigs (or parent ending) drains, the second aborts with
// ErrInterrupted, and, if timeout > 0, the abort also comes timeout after
// the first (ErrShutdownTimeout). The first signal repeated within
// repeatWindow is one signal sent twice (GNU timeout's), not a second one.
func OnSignals(parent context.Context, timeout time.Duration, sigs ...os.Signal) *Stop {
	ch := make(chan os.Signal, 2)
	if len(sigs) > 0 {
		signal.Notify(ch, sigs...)
	}
	return onSignals(parent, timeout, repeatWindow, ch, nil, func() { signal.Stop(ch) })
}

// onSignals is OnSignals on the signals ch receives, with the first
// signal repeated within window taken as one; unnotify stops them. With
// gate, the Stop reads ch (and parent) only once gate is closed.
func onSignals(parent context.Context, timeout, window time.Duration, ch <-chan os.Signal, gate <-chan struct{}, unnotify func()) *Stop {
	drain, drainCancel := context.WithCancel(context.Background())
	abort, abortCancel := context.WithCancelCause(context.Background())
	quit := make(chan struct{})
	var drained atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if gate != nil {
			select {
			case <-gate:
			case <-quit:
				return
			}
		}
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
		var firstSig os.Signal
		var firstAt time.Time
		for {
			select {
			case s := <-ch:
				if drain.Err() == nil {
					firstSig, firstAt = s, time.Now()
					first("signal " + s.String())
					continue
				}
				if s == firstSig && time.Since(firstAt) < window {
					slog.Info("signal: the same signal again at once (sent to the process and to its group, as GNU timeout does): still draining; send it again to abort", "signal", s.String())
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
				unnotify()
				close(quit)
				wg.Wait()
				drainCancel()
				abortCancel(nil)
			})
		},
	}
}
