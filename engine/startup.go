package engine

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Startup is the signal handling of a command from its start until its
// run's own (a Stop) takes over: while the command loads its model,
// connects to brokers or reads a checkpoint, SIGINT or SIGTERM would
// otherwise end the process by the signal's default action (leaving the
// output's lock files behind) or, once a Stop listens, ask for a drain
// that nothing checks until the run starts. Under a Startup, the first
// SIGINT or SIGTERM undoes what the command took (Stop.TakeOutputDir),
// newest first, logs that the run stopped before it started, and calls
// interrupted with the signal, on a goroutine of its own; interrupted
// ends the process (the command exits with status 1 there) and must not
// return. If it returns, or is nil, the process ends by the signal
// (endBySignal). A signal the process was started with ignored stays
// ignored until the handover.
//
// The command makes its run's Stop with OnSignals at once and passes it
// on; the run calls Stop.Own where its own handling begins (its engine
// starts, its training set is read): from then on the signals drain and
// abort that Stop. Release ends the watch of a command that returns
// without a handover.
type Startup struct {
	ch          chan os.Signal
	interrupted func(os.Signal)
	// mu is held while something is taken, and for good once a signal
	// came: a take under way is waited for, and none starts after.
	mu     sync.Mutex
	undo   []func()
	sigs   []os.Signal // the run's signals, notified at the handover
	quit   chan struct{}
	done   chan struct{}
	handed chan struct{} // closed at the handover: the Stop reads ch
	once   sync.Once
}

// WatchStartup starts watching SIGINT and SIGTERM (those not ignored) for
// a command that is starting; see Startup.
func WatchStartup(interrupted func(os.Signal)) *Startup {
	w := &Startup{ch: make(chan os.Signal, 2), interrupted: interrupted,
		quit: make(chan struct{}), done: make(chan struct{}), handed: make(chan struct{})}
	var sigs []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) > 0 {
		signal.Notify(w.ch, sigs...)
	}
	go func() {
		defer close(w.done)
		select {
		case s := <-w.ch:
			w.interrupt(s)
		case <-w.quit:
		}
	}()
	return w
}

// interrupt undoes what was taken and ends the process through
// interrupted (or by s).
func (w *Startup) interrupt(s os.Signal) {
	w.mu.Lock() // never unlocked: the process ends
	slog.Warn("signal before the run started: stopping; nothing was processed (rerun to start)", "signal", s.String())
	for i := len(w.undo) - 1; i >= 0; i-- {
		w.undo[i]()
	}
	if w.interrupted != nil {
		w.interrupted(s)
	}
	endBySignal(s)
}

// OnSignals is the run's Stop, as engine.OnSignals(parent, timeout,
// sigs...) makes it, whose signals (and parent) it follows only from
// Stop.Own on: until then they are w's. Its Drain and Abort exist at
// once, for what the run opens before Own. Call it once.
func (w *Startup) OnSignals(parent context.Context, timeout time.Duration, sigs ...os.Signal) *Stop {
	w.sigs = sigs
	s := onSignals(parent, timeout, repeatWindow, w.ch, w.handed, func() { signal.Stop(w.ch) })
	s.startup = w
	return s
}

// Release ends the watch when the command returns without a handover
// (it may be called after one: then it does nothing).
func (w *Startup) Release() { w.end(false) }

// end stops w's goroutine, waiting for it (forever if a signal came: the
// process is ending), then hands the signals over to the Stop or stops
// them.
func (w *Startup) end(handover bool) {
	w.once.Do(func() {
		close(w.quit)
		<-w.done
		if !handover {
			signal.Stop(w.ch)
			return
		}
		if len(w.sigs) > 0 {
			signal.Notify(w.ch, w.sigs...)
		}
		close(w.handed)
	})
}

// take runs f under w: a signal meanwhile waits for it; undo, if f
// succeeded, runs on a signal that comes before the handover.
func (w *Startup) take(f func() (undo func(), err error)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	undo, err := f()
	if err == nil && undo != nil {
		w.undo = append(w.undo, undo)
	}
	return err
}

// Own hands the signals over to s: for a Stop of Startup.OnSignals,
// a signal until now ended the process (see Startup); from now on the
// first drains s and a second aborts it. A Stop of OnSignals owns them
// from the start: Own does nothing. It may be called more than once.
func (s *Stop) Own() {
	if s.startup != nil {
		s.startup.end(true)
	}
}

// TakeOutputDir is TakeOutputDir(o) for a run whose Stop may not own the
// signals yet (a Stop of Startup.OnSignals before Own): a signal while
// it takes waits for it, and a signal after it, until Own, releases the
// output as release(true) does before the process ends. The release it
// returns runs once, whoever calls it first.
func (s *Stop) TakeOutputDir(o OutputDir) (release func(discard bool), err error) {
	take := func() (func(), error) {
		r, err := TakeOutputDir(o)
		if err != nil {
			return nil, err
		}
		var once sync.Once
		release = func(discard bool) { once.Do(func() { r(discard) }) }
		return func() { release(true) }, nil
	}
	if s.startup == nil {
		_, err = take()
	} else {
		err = s.startup.take(take)
	}
	return release, err
}
