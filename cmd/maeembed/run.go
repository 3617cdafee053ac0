package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// prepared is one decoded, resized and normalised input.
type prepared struct {
	it   sources.Item
	chw  []float32 // [3,S,S], from the runner's pool
	w, h int
}

// output is one batch after the model, waiting to be written.
type output struct {
	items []prepared
	vals  []float32           // embed: the vectors; reconstruct png: the inputs (from a pool)
	rec   *mae.Reconstruction // reconstruct only
}

// imageRun is what embed and reconstruct share: read → preprocess (N
// workers, ordered) → batch → model → write, errors to OUT/errors.
type imageRun struct {
	o    *Options
	pre  stages.Preprocess
	errw sinks.ErrorWriter

	errMu    sync.Mutex
	firstErr string
	failed   int64
	written  int64
	fatal    error

	chwPool sync.Pool

	// Progress (progress.go): file mode sets stderr and total; a nil
	// stderr (stream mode) leaves only the periodic log lines.
	stderr  io.Writer
	cmd     string
	total   int64 // inputs of this shard before resume, -1 if unknown
	skipped atomic.Int64
	ignored func() int64 // sources.Reader.Ignored

	// Stream mode (stream.go) sets these; file mode leaves them zero.
	batchLatency time.Duration                                  // emit a partial batch after this wait (0 = full batches only)
	keepData     bool                                           // keep the input bytes to the end (dead-letter copies)
	onFail       func(it sources.Item, stage string, err error) // replaces the error Parquet row
	onStart      func(p *pipeline.Pipeline)                     // called once the pipeline exists
	streaming    bool                                           // a signal is a normal stop; no "all failed" verdict
}

// newImageRun validates the common options and opens the inputs.
func (e *env) newImageRun(o *Options, cmd string) (*imageRun, *sources.Reader, error) {
	if len(o.Inputs) == 0 {
		return nil, nil, fmt.Errorf("%w: %s needs at least one INPUT (file, directory, glob, list file or '-')", errUsage, cmd)
	}
	if o.Output == "" && !o.DryRun {
		return nil, nil, fmt.Errorf("%w: %s needs --output DIR", errUsage, cmd)
	}
	if o.BatchSize < 1 {
		return nil, nil, fmt.Errorf("%w: --batch-size must be at least 1, got %d", errUsage, o.BatchSize)
	}
	pre, err := o.preprocess()
	if err != nil {
		return nil, nil, err
	}
	var shard sources.Shard
	if o.Shard != "" {
		if shard, err = sources.ParseShard(o.Shard); err != nil {
			return nil, nil, fmt.Errorf("%w: --shard: %v", errUsage, err)
		}
	}
	opts := o.Source
	opts.Shard, opts.NoData = shard, o.DryRun
	r := &imageRun{o: o, pre: pre, stderr: e.stderr, cmd: cmd}
	if o.Resume && o.Output != "" && !o.DryRun {
		done, err := sinks.ReadDoneIDs(o.Output)
		if err != nil {
			return nil, nil, err
		}
		if len(done) > 0 {
			slog.Info("resuming: skipping inputs already in the output", "done", len(done), "output", o.Output)
			opts.Done = func(id string) bool {
				if done[sinks.SanitizeID(id)] {
					r.skipped.Add(1)
					return true
				}
				return false
			}
		}
	}
	src, err := sources.OpenWith(o.Inputs, e.stdin, opts)
	if err != nil {
		return nil, nil, err
	}
	r.ignored = src.Ignored
	r.total = -1
	if !o.DryRun {
		if n, exact := src.Total(); exact {
			r.total = n
		}
	}
	return r, src, nil
}

// preprocess is the preprocessing stage of o's flags; the model sets Size.
func (o *Options) preprocess() (stages.Preprocess, error) {
	mode, err := stages.ParseResizeMode(o.Resize)
	if err != nil {
		return stages.Preprocess{}, fmt.Errorf("%w: --resize: %v", errUsage, err)
	}
	budget := stages.DefaultMemoryBudget
	if o.MemBudget != "" {
		if budget, err = parseBytes(o.MemBudget); err != nil || budget <= 0 {
			return stages.Preprocess{}, fmt.Errorf("%w: --memory-budget: %v", errUsage, err)
		}
	}
	return stages.Preprocess{Mode: mode, MaxPixels: o.MaxPixels, Budget: stages.NewBudget(budget)}, nil
}

// dryRun lists the ids a run would process.
func (e *env) dryRun(src *sources.Reader) error {
	n := 0
	for {
		it, err := src.Next(e.ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, it.ID)
		n++
	}
	slog.Info("dry run", "inputs", n)
	return nil
}

// start opens the output directory and the error writer.
func (r *imageRun) start() error {
	if err := os.MkdirAll(r.o.Output, 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := sinks.CleanTemps(r.o.Output); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	errw, err := sinks.NewErrors(r.o.Output, sinks.Meta{Model: r.o.Model, Pool: r.o.Pool, Preprocess: r.pre.String(), Version: version, Dim: 1}, sinks.ParquetOptions{})
	if err != nil {
		return err
	}
	r.errw = errw
	return nil
}

func (r *imageRun) recordError(it sources.Item, stage string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.failed++
	if r.firstErr == "" {
		r.firstErr = it.ID + ": " + err.Error()
	}
	slog.Warn("input failed", "id", it.ID, "stage", stage, "err", err)
	if r.onFail != nil {
		r.errMu.Unlock()
		r.onFail(it, stage, err) // may block (a dead-letter produce): not under the lock
		r.errMu.Lock()
		return
	}
	row := sinks.ErrorRow{ID: it.ID, Stage: stage, Error: err.Error()}
	if werr := r.errw.Write([]sinks.ErrorRow{row}); werr != nil && r.fatal == nil {
		r.fatal = werr
	}
}

// readItem is an item as read: its encoded bytes count against the memory
// budget from the read until the tensor is made (release), and the read
// waits for room.
type readItem struct {
	sources.Item
	release func()
}

// onError routes a per-item failure of any stage to the error Parquet.
func (r *imageRun) onError(f pipeline.Failure) {
	item := f.Item
	if ri, ok := item.(readItem); ok {
		item = ri.Item
	}
	switch v := item.(type) {
	case sources.Item:
		stage := f.Stage
		var se *stages.Error
		var re *sources.ReadError
		switch {
		case errors.As(f.Err, &se):
			stage = se.Stage
		case errors.As(f.Err, &re):
			stage = "read"
		}
		r.recordError(v, stage, f.Err)
	case []prepared:
		for _, p := range v {
			r.recordError(p.it, f.Stage, f.Err)
		}
	case output:
		for _, p := range v.items {
			r.recordError(p.it, f.Stage, f.Err)
		}
	default:
		r.errMu.Lock()
		r.failed++
		r.errMu.Unlock()
		slog.Warn("failure", "stage", f.Stage, "err", f.Err)
	}
}

// run drives the pipeline. model turns a batch into an output; write makes
// it durable. It returns the number of images written.
func (r *imageRun) run(ctx context.Context, src sources.Source,
	model func([]prepared) (output, error), write func(output) error) error {
	size := r.pre.Size
	r.chwPool.New = func() any { return make([]float32, 3*size*size) }
	workers := r.o.Workers
	if workers <= 0 {
		workers = max(1, defaultWorkers())
	}
	// Cancelling ctx (main's signal context) drains: the images in flight
	// are finished and published; a second signal aborts (OnSignals).
	p := pipeline.New(context.WithoutCancel(ctx), pipeline.Options{OnError: r.onError})
	interrupted, stopSignals := p.OnSignals(os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	stopDrain := context.AfterFunc(ctx, p.Drain)
	defer stopDrain()
	if r.onStart != nil {
		r.onStart(p)
	}
	start := time.Now()

	items := pipeline.Source(p, "read", 2*r.o.BatchSize, func(ctx context.Context) (readItem, error) {
		it, err := src.Next(ctx)
		if err != nil {
			return readItem{}, err
		}
		release, err := r.pre.Budget.AcquireInput(ctx, int64(len(it.Data)))
		if errors.Is(err, stages.ErrOverBudget) { // that item's error row, not the run's end
			it.Data, it.Err, release, err = nil, &stages.Error{Stage: "read", Err: err}, func() {}, nil
		}
		return readItem{it, release}, err
	})
	tensors := pipeline.Map(p, "preprocess", items, pipeline.Config{Workers: workers, Buffer: 2 * r.o.BatchSize, Ordered: true},
		func(ctx context.Context, rd readItem) (prepared, error) {
			defer rd.release()
			it := rd.Item
			if it.Err != nil {
				return prepared{}, it.Err
			}
			chw := r.chwPool.Get().([]float32)
			w, h, err := r.pre.TensorContext(ctx, chw, it.Data)
			if err != nil {
				r.chwPool.Put(chw)
				if ctx.Err() != nil {
					// Aborted while waiting for the memory budget: not this
					// item's fault, so no error row (a rerun resumes it).
					return prepared{}, pipeline.Fatal(err)
				}
				return prepared{}, err
			}
			if !r.keepData {
				it.Data = nil
			}
			return prepared{it: it, chw: chw, w: w, h: h}, nil
		})
	batches := pipeline.Batch(p, "batch", tensors, r.o.BatchSize, r.batchLatency, 1)
	outputs := pipeline.Map(p, "model", batches, pipeline.Config{Workers: 1, Buffer: 1, Ordered: true},
		func(ctx context.Context, b []prepared) (output, error) {
			out, err := model(b)
			for _, x := range b {
				r.chwPool.Put(x.chw)
			}
			return out, err
		})
	pipeline.Sink(p, "write", outputs, 1, func(ctx context.Context, out output) error {
		if err := write(out); err != nil {
			return pipeline.Fatal(fmt.Errorf("write: %w", err))
		}
		r.errMu.Lock()
		r.written += int64(len(out.items))
		r.errMu.Unlock()
		return nil
	})

	prog := startProgress(r.stderr, isTerminal(r.stderr), r.total, start, r.counts)
	err := p.Wait()
	prog.stop()
	r.errMu.Lock()
	if err == nil {
		err = r.fatal
	}
	r.errMu.Unlock()
	if r.errw != nil {
		if cerr := r.errw.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	r.summary(p, start)
	if err != nil || r.streaming {
		return err
	}
	if interrupted() || ctx.Err() != nil {
		return errInterrupted
	}
	if r.written == 0 && r.failed > 0 {
		// Nothing came out: that is a failed run, not a run with bad inputs.
		return fmt.Errorf("all %d input(s) failed (errors in %s/errors); first: %s", r.failed, r.o.Output, r.firstErr)
	}
	if r.o.FailOnError && r.failed > 0 {
		return fmt.Errorf("%d input(s) failed (see %s/errors)", r.failed, r.o.Output)
	}
	return nil
}

// errInterrupted ends a drained run: what was written is published, so
// the command keeps its output and still exits non-zero.
var errInterrupted = errors.New("interrupted: finished the images in flight and kept everything written; rerun to resume")

func (r *imageRun) counts() progressCounts {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	c := progressCounts{written: r.written, failed: r.failed, skipped: r.skipped.Load()}
	if r.ignored != nil {
		c.ignored = r.ignored()
	}
	return c
}

// summary logs one machine-readable line and, in file mode, prints the
// table for people (progress.go).
func (r *imageRun) summary(p *pipeline.Pipeline, start time.Time) {
	el := time.Since(start)
	c := r.counts()
	attrs := []any{"written", c.written, "failed", c.failed, "skipped", c.skipped, "ignored", c.ignored, "seconds", fmt.Sprintf("%.2f", el.Seconds()),
		"images_per_s", fmt.Sprintf("%.2f", float64(c.written)/el.Seconds())}
	stats := p.Stats()
	for _, s := range stats {
		attrs = append(attrs, s.Name+"_busy_s", fmt.Sprintf("%.2f", s.Busy.Seconds()))
	}
	attrs = append(attrs, "memory_peak_bytes", r.pre.Budget.Peak(), "memory_budget_bytes", r.pre.Budget.Size())
	slog.Info("done", attrs...)
	if r.stderr != nil {
		writeSummary(r.stderr, r.cmd, c, el, stats)
		fmt.Fprintf(r.stderr, "%s: memory in flight (read + decoding): peak %d MiB of a %d MiB budget (--memory-budget)\n",
			r.cmd, r.pre.Budget.Peak()>>20, r.pre.Budget.Size()>>20)
	}
}
