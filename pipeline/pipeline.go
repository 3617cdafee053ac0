// Package pipeline runs typed stages connected by bounded channels: worker
// pools, backpressure, cancellation, optional ordered delivery, batching,
// per-item error routing and per-stage metrics. It knows nothing about what
// flows through it.
//
// Shutdown has two levels. Drain (e.g. first SIGINT) stops the sources only:
// items already read flow to the end and every stage exits when its input
// closes. Cancelling the context given to New (e.g. second SIGINT) aborts:
// every goroutine returns promptly and in-flight items are dropped.
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

// Wait blocks until every stage goroutine has returned and reports the
// first fatal error or the cancellation cause; nil after a clean finish or a
// drain.
func (p *Pipeline) Wait() error {
	p.waitOnce.Do(func() {
		p.wg.Wait()
		p.err = context.Cause(p.ctx)
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

// send delivers v on out unless the run aborts.
func send[T any](ctx context.Context, out chan<- T, v T) bool {
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// recv takes the next value from in; ok is false when in is closed or the
// run aborts.
func recv[T any](ctx context.Context, in <-chan T) (v T, ok bool) {
	select {
	case v, ok = <-in:
		return v, ok
	case <-ctx.Done():
		return v, false
	}
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
			if !send(p.ctx, out, v) {
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
					if r, ok := call(v); ok && !send(p.ctx, out, r) {
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
	// window: no allocation per item in steady state.
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
			if !ok {
				return
			}
			if !send(p.ctx, order, slot) || !send(p.ctx, jobs, job{v, slot}) {
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
	p.goroutine(func() { // emitter
		defer close(out)
		for {
			slot, ok := recv(p.ctx, (<-chan chan result)(order))
			if !ok {
				return
			}
			r, ok := recv(p.ctx, (<-chan result)(slot))
			if !ok {
				return
			}
			free <- slot // never blocks: only window slots exist
			if r.ok && !send(p.ctx, out, r.v) {
				return
			}
		}
	})
	return out
}

// Batch groups inputs into slices of at most maxSize, emitting a partial
// batch once maxLatency has passed since its first item (0 = wait for a full
// batch) and at the end of input. Order is kept.
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
			return send(p.ctx, out, b)
		}
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
