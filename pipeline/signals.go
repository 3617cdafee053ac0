package pipeline

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
)

// ErrInterrupted is the abort cause after a second signal.
var ErrInterrupted = errors.New("interrupted twice: aborted without finishing in-flight items")

// OnSignals makes the first of sigs (e.g. SIGINT, SIGTERM) drain the run —
// sources stop, in-flight items finish and are flushed — and a second one
// abort it. Interrupted reports whether a signal arrived, so the command can
// exit non-zero after its summary. Call stop when the run is over.
func (p *Pipeline) OnSignals(sigs ...os.Signal) (interrupted func() bool, stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	got := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-ch:
				n++
				if n == 1 {
					close(got)
					slog.Warn("signal: draining (finishing in-flight items); signal again to abort", "signal", s.String())
					p.Drain()
				} else {
					slog.Warn("signal: aborting", "signal", s.String())
					p.Abort(ErrInterrupted)
				}
			case <-done:
				return
			}
		}
	}()
	interrupted = func() bool {
		select {
		case <-got:
			return true
		default:
			return false
		}
	}
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			signal.Stop(ch)
			close(done)
		}
	}
	return interrupted, stop
}
