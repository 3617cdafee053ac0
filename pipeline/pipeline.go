// Package pipeline runs typed stages connected by bounded channels: worker
// pools, backpressure, cancellation, optional ordered delivery, batching,
// per-item error routing and per-stage metrics. It knows nothing about what
// flows through it.
//
// Shutdown has two levels. Drain (e.g. first SIGINT) stops the sources only:
// items already read flow to the end and every stage exits when its input
// closes. Cancelling the context given to New (e.g. second SIGINT) aborts:
// every goroutine returns promptly, a stage that has seen the abort gives
// no further item to its function (one it still receives, as a Batch
// waiting on its input and the abort at once may, is kept for the Drop
// hook), and the items in flight between the stage functions are dropped. They are not lost silently: Wait hands each of them, once, to
// the hook registered for its channel with Drop, after every stage
// goroutine has stopped, so that what an item holds (memory, an
// acknowledgement) is given back.
//
// An item has one owner at a time: a channel (an item a stage took from
// one but did not give to its function, or made but could not send on one,
// counts as the channel's), the stage function it was given to (which
// keeps it when it returns an error: a Failure's Item is OnError's, an item
// failed with a Fatal error stays the function's to free), or, after an
// abort, the channel's Drop hook.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Failure is a per-item error: the stage that failed, the item it was given
// (of that stage's input type) and the error.
type Failure struct {
	Stage string
	Item  any
	Err   error
}

func (f Failure) Error() string { return f.Stage + ": " + f.Err.Error() }

// fatalError marks an error that must stop the run rather than be routed to
// the error sink.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// Fatal wraps err so a stage function returning it stops the whole run
// (e.g. the output disk is full), instead of failing one item.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return fatalError{err}
}

// IsFatal reports whether err (or one it wraps) was marked with Fatal.
func IsFatal(err error) bool { return isFatal(err) }

func isFatal(err error) bool {
	var f fatalError
	return errors.As(err, &f)
}

// Options configure a Pipeline.
type Options struct {
	// OnError receives every per-item failure, from the worker that hit it
	// (so a slow error sink applies backpressure). It must be safe for
	// concurrent use. If nil, failures are only counted.
	OnError func(Failure)
}

// Pipeline owns the goroutines of a run.
type Pipeline struct {
	ctx      context.Context // aborts everything
	cancel   context.CancelCauseFunc
	drainCtx context.Context // stops sources only
	drain    context.CancelFunc
	opts     Options
	wg       sync.WaitGroup
	waitOnce sync.Once
	err      error // result of Wait

	mu     sync.Mutex
	stages []*stageMetrics
	drops  map[any]dropper // by channel (<-chan T): Drop hooks and held items
	order  []dropper       // drops in registration order
	atStop []func()        // run by Wait once the goroutines have stopped
}

// dropper is the Drop state of one channel.
type dropper interface {
	// drop passes every item held for the channel, then every item left
	// in it, to the hook (if any), and forgets them.
	drop(cause error)
}

type drops[T any] struct {
	ch   <-chan T
	held []T // taken from ch, or not sent on it, when the run aborted
	fn   func(v T, cause error)
}

func (d *drops[T]) drop(cause error) {
	held := d.held
	d.held = nil
	if d.fn == nil {
		return
	}
	for _, v := range held {
		d.fn(v, cause)
	}
	for {
		select {
		case v, ok := <-d.ch:
			if !ok {
				return
			}
			d.fn(v, cause)
		default:
			return
		}
	}
}

// dropsOf is ch's Drop state; p.mu must be held.
func dropsOf[T any](p *Pipeline, ch <-chan T) *drops[T] {
	if d, ok := p.drops[ch]; ok {
		return d.(*drops[T])
	}
	if p.drops == nil {
		p.drops = map[any]dropper{}
	}
	d := &drops[T]{ch: ch}
	p.drops[ch] = d
	p.order = append(p.order, d)
	return d
}

// Drop registers fn as the hook that takes back each item of ch that an
// aborted run drops: the items left in ch, and those a stage took from ch
// but did not give to its function, or made but could not send on ch
// (including a partial batch, and an ordered Map's finished outputs still
// waiting for their turn). Wait calls fn once for each such item, with the
// run's cause, after every stage goroutine has stopped (so fn needs no
// locking against the stages); fn must not block. Register it before
// Wait; a second call replaces the hook. Items a stage function was given
// are that function's, not the hook's: it frees them itself, also when it
// fails. A run that is not aborted drops nothing.
func Drop[T any](p *Pipeline, ch <-chan T, fn func(v T, cause error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dropsOf(p, ch).fn = fn
}

// hold keeps v, an item of ch the run dropped, for ch's Drop hook.
func hold[T any](p *Pipeline, ch <-chan T, v T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := dropsOf(p, ch)
	d.held = append(d.held, v)
}

// onStop runs f in Wait once every goroutine has stopped (and before the
// Drop hooks): a stage gathers there what it left behind.
func (p *Pipeline) onStop(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.atStop = append(p.atStop, f)
}

// New starts an empty pipeline bound to ctx.
func New(ctx context.Context, opts Options) *Pipeline {
	ctx, cancel := context.WithCancelCause(ctx)
	dctx, drain := context.WithCancel(ctx)
	return &Pipeline{ctx: ctx, cancel: cancel, drainCtx: dctx, drain: drain, opts: opts}
}

// Drain asks sources to stop reading; everything already read is finished.
func (p *Pipeline) Drain() { p.drain() }

// Abort cancels the run with cause.
func (p *Pipeline) Abort(cause error) { p.cancel(cause) }

// Context is cancelled when the run aborts (fatal error, Abort or parent).
func (p *Pipeline) Context() context.Context { return p.ctx }

// Wait blocks until every stage goroutine has returned, passes what an
// abort dropped to the Drop hooks, and reports the first fatal error or the
// cancellation cause; nil after a clean finish or a drain.
func (p *Pipeline) Wait() error {
	p.waitOnce.Do(func() {
		p.wg.Wait()
		p.err = context.Cause(p.ctx)
		p.mu.Lock()
		atStop := p.atStop
		p.mu.Unlock()
		for _, f := range atStop {
			f()
		}
		p.mu.Lock()
		order := p.order
		p.mu.Unlock()
		cause := p.err
		if cause == nil { // (nothing is dropped without an abort)
			cause = context.Canceled
		}
		for _, d := range order {
			d.drop(cause)
		}
		p.drain()
		p.cancel(nil) // release the contexts
	})
	return p.err
}

func (p *Pipeline) fail(stage string, item any, err error) {
	if isFatal(err) {
		p.cancel(fmt.Errorf("stage %s: %w", stage, errors.Unwrap(err)))
		return
	}
	if p.opts.OnError != nil {
		p.opts.OnError(Failure{Stage: stage, Item: item, Err: err})
	}
}

func (p *Pipeline) register(name string, workers int, queue func() (int, int)) *stageMetrics {
	m := &stageMetrics{name: name, workers: workers, queue: queue}
	p.mu.Lock()
	p.stages = append(p.stages, m)
	p.mu.Unlock()
	return m
}

func (p *Pipeline) goroutine(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// send delivers v on out unless the run aborts (or has: then v is not
// sent even if out has room).
func send[T any](ctx context.Context, out chan<- T, v T) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// recv takes the next value from in; ok is false when in is closed or the
// run aborts. Once the run has aborted, it takes nothing (the value stays
// for the Drop hooks), even if in has one ready.
func recv[T any](ctx context.Context, in <-chan T) (v T, ok bool) {
	if ctx.Err() != nil {
		return v, false
	}
	select {
	case v, ok = <-in:
		return v, ok
	case <-ctx.Done():
		return v, false
	}
}

// put is send for a stage's output: an item the run's abort keeps from
// out is held for out's Drop hook.
func put[T any](p *Pipeline, out chan<- T, ch <-chan T, v T) bool {
	if send(p.ctx, out, v) {
		return true
	}
	hold(p, ch, v)
	return false
}

func queueOf[T any](in <-chan T) func() (int, int) {
	return func() (int, int) { return len(in), cap(in) }
}

// Source runs next in one goroutine and emits its values on a channel of
// capacity buf. next returns io.EOF at the end; any other error is fatal,
// unless wrapped with Skip (then it is routed to the error sink with a nil
// item). Source stops early on Drain.
func Source[T any](p *Pipeline, name string, buf int, next func(ctx context.Context) (T, error)) <-chan T {
	out := make(chan T, buf)
	m := p.register(name, 1, queueOf((<-chan T)(out)))
	p.goroutine(func() {
		defer close(out)
		for {
			if p.drainCtx.Err() != nil {
				return
			}
			start := time.Now()
			v, err := next(p.drainCtx)
			m.busy.Add(int64(time.Since(start)))
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if p.drainCtx.Err() != nil && errors.Is(err, p.drainCtx.Err()) {
					return // drained or aborted while reading
				}
				var s skipError
				if errors.As(err, &s) {
					m.errors.Add(1)
					p.fail(name, nil, s.err)
					continue
				}
				p.cancel(fmt.Errorf("source %s: %w", name, err))
				return
			}
			m.items.Add(1)
			if !put(p, out, out, v) {
				return
			}
		}
	})
	return out
}

type skipError struct{ err error }

func (e skipError) Error() string { return e.err.Error() }

// Skip marks a Source error as per-item: it is routed to the error sink and
// the source keeps reading.
func Skip(err error) error { return skipError{err} }

// Config sizes a Map stage.
type Config struct {
	Workers int  // goroutines running the function; default 1
	Buffer  int  // capacity of the output channel; default Workers
	Ordered bool // emit outputs in input order
}

func (c Config) norm() Config {
	if c.Workers < 1 {
		c.Workers = 1
	}
	if c.Buffer < 0 {
		c.Buffer = 0
	} else if c.Buffer == 0 {
		c.Buffer = c.Workers
	}
	return c
}

// Map runs fn on every input with cfg.Workers goroutines. Failed items go to
// the error sink (or stop the run if the error is Fatal) and produce no
// output. With cfg.Ordered, outputs keep input order; at most
// Workers+Buffer items are in flight, so one slow item cannot make the
// reorder buffer grow without bound.
func Map[In, Out any](p *Pipeline, name string, in <-chan In, cfg Config, fn func(ctx context.Context, v In) (Out, error)) <-chan Out {
	cfg = cfg.norm()
	out := make(chan Out, cfg.Buffer)
	m := p.register(name, cfg.Workers, queueOf(in))
	call := func(v In) (Out, bool) {
		start := time.Now()
		r, err := fn(p.ctx, v)
		m.busy.Add(int64(time.Since(start)))
		if err != nil {
			m.errors.Add(1)
			p.fail(name, v, err)
			return r, false
		}
		m.items.Add(1)
		return r, true
	}
	if !cfg.Ordered {
		var wg sync.WaitGroup
		wg.Add(cfg.Workers)
		for w := 0; w < cfg.Workers; w++ {
			p.goroutine(func() {
				defer wg.Done()
				for {
					v, ok := recv(p.ctx, in)
					if !ok {
						return
					}
					if r, ok := call(v); ok && !put(p, out, out, r) {
						return
					}
				}
			})
		}
		p.goroutine(func() { wg.Wait(); close(out) })
		return out
	}

	// Ordered: the dispatcher hands each item a result slot and queues the
	// slot in input order; the emitter waits on slots in that order. Slots
	// are recycled through a free list, which also bounds the in-flight
	// window: no allocation per item in steady state. After an abort, the
	// outputs finished but not emitted (in the slots the emitter had not
	// reached) are held for out's Drop hook.
	type result struct {
		v  Out
		ok bool
	}
	type job struct {
		v    In
		slot chan result
	}
	window := cfg.Workers + cfg.Buffer
	free := make(chan chan result, window)
	for i := 0; i < window; i++ {
		free <- make(chan result, 1)
	}
	order := make(chan chan result, window)
	jobs := make(chan job)
	p.goroutine(func() { // dispatcher
		defer close(order)
		defer close(jobs)
		for {
			v, ok := recv(p.ctx, in)
			if !ok {
				return
			}
			slot, ok := recv(p.ctx, (<-chan chan result)(free))
			if !ok || !send(p.ctx, order, slot) || !send(p.ctx, jobs, job{v, slot}) {
				hold(p, in, v) // (a queued slot stays empty)
				return
			}
		}
	})
	for w := 0; w < cfg.Workers; w++ {
		p.goroutine(func() {
			for {
				j, ok := recv(p.ctx, (<-chan job)(jobs))
				if !ok {
					return
				}
				r, ok := call(j.v)
				j.slot <- result{r, ok} // capacity 1: never blocks
			}
		})
	}
	var waiting chan result // the slot the emitter waited on when it stopped
	p.goroutine(func() {    // emitter
		defer close(out)
		for {
			slot, ok := recv(p.ctx, (<-chan chan result)(order))
			if !ok {
				return
			}
			r, ok := recv(p.ctx, (<-chan result)(slot))
			if !ok {
				waiting = slot
				return
			}
			free <- slot // never blocks: only window slots exist
			if r.ok && !put(p, out, out, r.v) {
				return
			}
		}
	})
	p.onStop(func() {
		// The workers have stopped: a slot holds a result or never will.
		left := func(slot chan result) {
			select {
			case r := <-slot:
				if r.ok {
					hold(p, out, r.v)
				}
			default:
			}
		}
		if waiting != nil {
			left(waiting)
		}
		for slot := range order { // closed by the dispatcher
			left(slot)
		}
	})
	return out
}

// Batch groups inputs into slices of at most maxSize, emitting a partial
// batch once maxLatency has passed since its first item (0 = wait for a full
// batch) and at the end of input. Order is kept. After an abort, the items
// of the batch being filled are held for in's Drop hook, a batch that
// could not be sent for out's.
func Batch[T any](p *Pipeline, name string, in <-chan T, maxSize int, maxLatency time.Duration, buf int) <-chan []T {
	if maxSize < 1 {
		maxSize = 1
	}
	out := make(chan []T, buf)
	m := p.register(name, 1, queueOf(in))
	p.goroutine(func() {
		defer close(out)
		var timer *time.Timer
		var timeout <-chan time.Time
		batch := make([]T, 0, maxSize)
		flush := func() bool {
			if timer != nil {
				timer.Stop()
				timeout = nil
			}
			if len(batch) == 0 {
				return true
			}
			m.items.Add(int64(len(batch)))
			b := batch
			batch = make([]T, 0, maxSize) // downstream owns b
			return put(p, out, out, b)
		}
		defer func() { // aborted with a batch being filled
			for _, v := range batch {
				hold(p, in, v)
			}
		}()
		for {
			select {
			case v, ok := <-in:
				if !ok {
					flush()
					return
				}
				batch = append(batch, v)
				if len(batch) == 1 && maxLatency > 0 && maxSize > 1 {
					if timer == nil {
						timer = time.NewTimer(maxLatency)
					} else {
						timer.Reset(maxLatency)
					}
					timeout = timer.C
				}
				if len(batch) >= maxSize && !flush() {
					return
				}
			case <-timeout:
				timeout = nil
				if !flush() {
					return
				}
			case <-p.ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			}
		}
	})
	return out
}

// Sink consumes in with cfg.Workers goroutines (Ordered is ignored: one
// worker keeps order). Errors are routed like Map's.
func Sink[T any](p *Pipeline, name string, in <-chan T, workers int, fn func(ctx context.Context, v T) error) {
	if workers < 1 {
		workers = 1
	}
	m := p.register(name, workers, queueOf(in))
	for w := 0; w < workers; w++ {
		p.goroutine(func() {
			for {
				v, ok := recv(p.ctx, in)
				if !ok {
					return
				}
				start := time.Now()
				err := fn(p.ctx, v)
				m.busy.Add(int64(time.Since(start)))
				if err != nil {
					m.errors.Add(1)
					p.fail(name, v, err)
					continue
				}
				m.items.Add(1)
			}
		})
	}
}

type stageMetrics struct {
	name    string
	workers int
	queue   func() (int, int)
	items   atomic.Int64
	errors  atomic.Int64
	busy    atomic.Int64 // ns summed over workers
}

// StageStats is a snapshot of one stage's counters.
type StageStats struct {
	Name     string
	Workers  int
	Items    int64         // items (Batch: items batched) that succeeded
	Errors   int64         // per-item failures
	Busy     time.Duration // time spent in the stage function, summed over workers
	Queue    int           // items waiting in the stage's input channel (a Source: its output)
	QueueCap int
}

// Stats returns a snapshot of every stage in creation order.
func (p *Pipeline) Stats() []StageStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]StageStats, len(p.stages))
	for i, m := range p.stages {
		q, c := m.queue()
		out[i] = StageStats{Name: m.name, Workers: m.workers, Items: m.items.Load(), Errors: m.errors.Load(),
			Busy: time.Duration(m.busy.Load()), Queue: q, QueueCap: c}
	}
	return out
}
