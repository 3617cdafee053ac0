package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// fileRun is what embed and reconstruct share around the engine: inputs
// opened (sharded, resumed), the output directory and its error rows.
type fileRun struct {
	o      *Options
	cmd    string
	pre    stages.Preprocess
	shard  sources.Shard
	src    *engine.Inputs
	unlock func() error
}

// close releases the inputs and the output lock.
func (r *fileRun) close() {
	r.src.Close()
	if r.unlock != nil {
		r.unlock()
	}
}

// openInputs validates the common options and opens the inputs.
func (e *env) openInputs(o *Options, cmd string) (*fileRun, error) {
	if len(o.Inputs) == 0 {
		return nil, fmt.Errorf("%w: %s needs at least one INPUT (file, directory, glob, list file or '-')", errUsage, cmd)
	}
	if o.Output == "" && !o.DryRun {
		return nil, fmt.Errorf("%w: %s needs --output DIR", errUsage, cmd)
	}
	if err := checkBatchSize(o.BatchSize, 0, nil); err != nil {
		return nil, err
	}
	if err := checkWorkers(o.Workers); err != nil {
		return nil, err
	}
	if err := (sinks.ParquetOptions{MaxFileRows: o.MaxFileRows}).Validate(); err != nil {
		return nil, fmt.Errorf("%w: --max-file-rows: %v", errUsage, err)
	}
	pre, err := o.preprocess()
	if err != nil {
		return nil, err
	}
	r := &fileRun{o: o, cmd: cmd, pre: pre}
	if o.Shard != "" {
		if r.shard, err = sources.ParseShard(o.Shard); err != nil {
			return nil, fmt.Errorf("%w: --shard: %v", errUsage, err)
		}
	}
	in := engine.InputOptions{Source: o.Source, Shard: r.shard, DryRun: o.DryRun, Budget: pre.Budget}
	if !o.DryRun {
		// The output first: a run it refuses (another format, a live run of
		// another kind) stops before reading anything, and resume reads
		// the done ids under the lock.
		if r.unlock, err = engine.OpenOutputDir(engine.OutputDir{Dir: o.Output, Format: o.Format, Shard: r.shard, Resume: o.Resume}); err != nil {
			return nil, err
		}
		if o.Resume {
			in.ResumeFrom = o.Output
		}
	}
	if r.src, err = engine.OpenInputs(o.Inputs, e.stdin, in); err != nil {
		if r.unlock != nil {
			r.unlock()
		}
		return nil, err
	}
	return r, nil
}

// preprocess is the preprocessing stage of o's flags; the model sets Size.
func (o *Options) preprocess() (stages.Preprocess, error) {
	mode, err := stages.ParseResizeMode(o.Resize)
	if err != nil {
		return stages.Preprocess{}, fmt.Errorf("%w: --resize: %v", errUsage, err)
	}
	budget := stages.DefaultMemoryBudget
	if o.MemBudget != "" {
		if budget, err = parseBytes(o.MemBudget); err != nil {
			return stages.Preprocess{}, fmt.Errorf("%w: --memory-budget: %v", errUsage, err)
		}
		if budget <= 0 {
			return stages.Preprocess{}, fmt.Errorf("%w: --memory-budget %q: must be positive", errUsage, o.MemBudget)
		}
	}
	return stages.Preprocess{Mode: mode, MaxPixels: o.MaxPixels, Budget: stages.NewBudget(budget)}, nil
}

// checkBatchSize is engine.CheckBatch as a usage error of --batch-size.
func checkBatchSize(size int, batchBytes int64, budget *stages.Budget) error {
	if err := engine.CheckBatch(size, batchBytes, budget); err != nil {
		hint := ""
		if budget != nil && batchBytes > budget.Size() {
			hint = " (lower --batch-size or raise --memory-budget)"
		}
		return fmt.Errorf("%w: --batch-size: %v%s", errUsage, err, hint)
	}
	return nil
}

// dryRun lists the ids a run would process.
func (e *env) dryRun(src *engine.Inputs) error {
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

// openOutput opens the error writer of the output directory (which
// openInputs locked).
func (r *fileRun) openOutput(meta sinks.Meta) (sinks.ErrorWriter, error) {
	return sinks.NewErrors(r.o.Output, meta, sinks.ParquetOptions{})
}

// logFailure is the engine's OnFailure: one warning per failed input.
func logFailure(im *engine.Image) {
	slog.Warn("input failed", "id", im.Item.ID, "stage", im.Stage, "err", im.Err)
}

// checkWorkers refuses a negative --workers (0 = one per core).
func checkWorkers(n int) error {
	if n < 0 {
		return fmt.Errorf("%w: --workers %d: must be 0 (one per core) or more", errUsage, n)
	}
	return nil
}

func workers(o *Options) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return max(1, defaultWorkers())
}

// runFiles runs the engine over the inputs with progress and summary, and
// turns its outcome into the command's verdict.
func runFiles[R any](e *env, r *fileRun, errw sinks.ErrorWriter, model engine.Model[R], out engine.Output[R]) error {
	stop := engine.OnSignals(e.ctx, 0, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()
	eng := engine.New(engine.Config{Preprocess: r.pre, ImageSize: r.pre.Size, BatchSize: r.o.BatchSize, Workers: workers(r.o),
		Budget: r.pre.Budget, Errors: errw, Drain: stop.Drain, OnFailure: logFailure, FlushInterval: r.o.Stream.FlushInterval}, model, out)
	start := time.Now()
	counts := func() engine.Counts {
		c := eng.Counts()
		c.Skipped = r.src.Skipped()
		return c
	}
	prog := engine.StartProgress(e.stderr, engine.IsTerminal(e.stderr), r.src.Total, start, counts)
	err := eng.Run(stop.Abort, r.src.Reader)
	prog.Stop()
	c := counts()
	engine.Summary(e.stderr, r.cmd, c, engine.RunInfo{Ignored: r.src.Ignored(), Budget: r.pre.Budget}, eng.Stats(), time.Since(start))
	switch {
	case err != nil:
		return err
	case stop.Drained():
		return errInterrupted
	case c.Written == 0 && c.Failed > 0:
		// Nothing came out: that is a failed run, not a run with bad inputs.
		return fmt.Errorf("all %d input(s) failed (errors in %s/errors); first: %s", c.Failed, r.o.Output, eng.FirstError())
	case r.o.FailOnError && c.Failed > 0:
		return fmt.Errorf("%d input(s) failed (see %s/errors)", c.Failed, r.o.Output)
	}
	return nil
}

// errInterrupted ends a drained run: what was written is published, so
// the command keeps its output and still exits non-zero.
var errInterrupted = errors.New("interrupted: finished the images in flight and kept everything written; rerun to resume")
