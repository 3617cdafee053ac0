package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Batch is a batch run over files being set up (embed, reconstruct): its
// output directory taken (TakeOutputDir) and its inputs opened, sharded and
// without those the output already holds (resume).
type Batch struct {
	Name       string // the command, for messages
	Options    FileOptions
	Shard      sources.Shard
	Preprocess stages.Preprocess // the model sets Size
	Inputs     *Inputs
	release    func(discard bool) // the output directory (TakeOutputDir)
	unguard    func()             // ends guardOutput's watch (RunBatch owns the signals)
	closed     bool
	// wroteNothing: the run ended (end) without an output or an error
	// row, so Close removes the output directory as Discard does.
	wroteNothing bool
	// refused is, for a dry run, the run's refusal of the output that it
	// reports after its listing (--resume=false into a directory that
	// holds outputs): the run would exit non-zero before processing.
	refused error
}

// OpenBatch checks o (errors wrapping config.ErrUsage name the flag) and
// opens the run: the output directory first, so a run it refuses (another
// format, a live run of another kind) stops before reading anything, and
// resume reads the done ids under its lock. A dry run checks the output
// as the run would (CheckOutputDir) but takes nothing.
//
// interrupted ends the process when SIGINT or SIGTERM arrives after the
// output directory was taken and before RunBatch owns the signals (while
// the caller loads the model), or before Close or Discard. The engine
// first releases the output as Discard does (the lock files and an empty
// directory this run made are removed), then calls interrupted once, with
// the signal, on a goroutine of its own; the caller's RunBatch, Close or
// Discard may meanwhile wait for that call to end. The command exits with
// status 1 there, as an interrupted run does. interrupted must not
// return: the batch's output is released, so the run must not go on. If
// it returns, or is nil, the engine ends the process as the signal would
// have without this watch: it restores the signal's default action
// (signal.Reset, for the whole process, so other signal.Notify of it
// stop too) and sends the signal to the process again, which ends by it
// (a shell shows 130 for SIGINT, 143 for SIGTERM). A signal the process
// was started with ignored stays ignored and calls nothing.
func OpenBatch(name string, o FileOptions, src sources.Options, pre stages.PreprocessOptions, stdin io.Reader, interrupted func(os.Signal)) (*Batch, error) {
	if len(o.Inputs) == 0 {
		return nil, fmt.Errorf("%w: %s needs at least one INPUT (file, directory, glob, list file or '-')", config.ErrUsage, name)
	}
	if o.Output == "" && !o.DryRun {
		return nil, fmt.Errorf("%w: %s needs --output DIR", config.ErrUsage, name)
	}
	if o.RetryErrors && !o.Resume {
		return nil, fmt.Errorf("%w: --retry-errors retries the failed inputs of the output's earlier runs: it needs --resume", config.ErrUsage)
	}
	b := &Batch{Name: name, Options: o}
	var err error
	if b.Preprocess, err = pre.Preprocess(); err != nil {
		return nil, fmt.Errorf("%w: %v", config.ErrUsage, err)
	}
	if b.Shard, err = o.shard(); err != nil {
		return nil, fmt.Errorf("%w: %v", config.ErrUsage, err)
	}
	if o.Output != "" {
		// An output inside an input directory: a rerun must not read what
		// this one writes (PNG reconstructions would become inputs).
		src.SkipDirs = append(src.SkipDirs[:len(src.SkipDirs):len(src.SkipDirs)], o.Output)
	}
	// Another run's output inside an input directory is not inputs either.
	src.OtherOutput = sinks.OutputOf
	in := InputOptions{Source: src, Shard: b.Shard, DryRun: o.DryRun, Budget: b.Preprocess.Budget}
	out := OutputDir{Dir: o.Output, Format: o.Format, Shard: b.Shard, Resume: o.Resume, Command: name}
	if o.DryRun && o.Output != "" {
		// The run's refusals without taking the output: the dry run
		// writes nothing.
		if err := CheckOutputDir(out); err != nil {
			return nil, err
		}
		if !o.Resume {
			// The run refuses outputs it would write again: the dry
			// run lists what --resume=false would take, then fails so.
			b.refused = out.checkHeld()
		}
	}
	if !o.DryRun {
		if b.release, b.unguard, err = guardOutput(func() (func(bool), error) { return TakeOutputDir(out) }, interrupted); err != nil {
			return nil, err
		}
	}
	if o.Resume && o.Output != "" {
		// A dry run reads the done ids too (without taking the output: it
		// writes nothing), so it lists what a real run would process.
		in.ResumeFrom, in.RetryErrors = o.Output, o.RetryErrors
	}
	if b.Inputs, err = OpenInputs(o.Inputs, stdin, in); err != nil {
		b.Discard()
		return nil, err
	}
	return b, nil
}

// Close releases the inputs and the output directory. When the run wrote
// nothing (no output, no error row: inputs without images, a shard left
// empty), it also removes the output directory as Discard does, if this
// run made it and it is still empty. It may be called again (after
// Discard).
func (b *Batch) Close() { b.close(false) }

// Discard closes b for a run that fails before writing anything (its
// inputs or its model do not open): it removes the output directory when
// this run made it and it is still empty, so the failure leaves nothing
// new behind. A directory that existed before the run stays.
func (b *Batch) Discard() { b.close(true) }

func (b *Batch) close(discard bool) {
	if b.closed {
		return
	}
	b.closed = true
	if b.unguard != nil {
		b.unguard()
	}
	if b.Inputs != nil {
		b.Inputs.Close()
	}
	if b.release != nil {
		b.release(discard || b.wroteNothing)
	}
}

// DryRun writes the ids the run would process to w, one per line
// (LineID): with resume, without those the output already holds, as the
// run would skip them. When that leaves none, it says so on stderr as a
// rerun with nothing to do does.
//
// After the listing it fails as the run would end, where that is known
// before processing (then with the run's error, so with its exit
// status): the run's refusal of the output without resume (refused); a
// rerun with nothing to do, as NothingLeft ends it (every skipped input
// had failed, or FailOnError and some had); FailOnError when inputs that
// failed in an earlier run are skipped.
func (b *Batch) DryRun(ctx context.Context, w, stderr io.Writer) error {
	n := 0
	for {
		it, err := b.Inputs.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(w, LineID(it.ID))
		n++
	}
	slog.Info("dry run", "inputs", n, "skipped", b.Inputs.Skipped())
	if n == 0 && b.Inputs.Skipped() > 0 {
		writeNothingToDo(stderr, b.Name, b.Inputs.SkippedFailed(), b.Inputs.SkippedDuplicates())
	}
	switch {
	case b.refused != nil:
		return b.refused
	case n == 0:
		// The rerun: nothing left (NothingLeft), or no input at all.
		return b.outcome(Counts{Skipped: b.Inputs.Skipped()}, func() string { return "" })
	case b.Options.FailOnError && b.Inputs.SkippedFailed() > 0:
		// However the inputs left fare, the run fails (outcome).
		return b.earlierFailed(false)
	}
	return nil
}

// noImages is the error of inputs that held no image at all, in any shard:
// a directory whose only files are containers without images (an empty
// tar, Parquet files without an image column, such as another run's
// output given as the input by mistake). An empty directory or list is
// refused before the run starts (sources.OpenWith); these are only known
// once read. nil when the inputs held at least one image, even one another
// shard takes, one done already or one that failed.
func (b *Batch) noImages() error {
	st := b.Inputs.Stats()
	if st.Seen > 0 {
		return nil
	}
	return fmt.Errorf("%s no images: %s ignored (not images, or Parquet files without an image column, e.g. another run's output) and no tar or Parquet file there holds an image",
		sources.InputsSubject(b.Options.Inputs, "holds", "hold", "the files listed on stdin hold"), plural(st.Ignored, "file"))
}

// LineID is id as one line of a listing: as it is, unless it holds a
// control character (a newline, a tab) or starts with '"'; then it is
// quoted as a Go string literal (strconv.Quote: "a\nb.jpg"), so every id
// is one line and a quoted one reads back with strconv.Unquote.
func LineID(id string) string {
	if strings.HasPrefix(id, `"`) || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return strconv.Quote(id)
	}
	return id
}

// ErrDrained ends a drained run: what was written is published, so
// the command keeps its output and still exits non-zero.
var ErrDrained = errors.New("interrupted: finished the images in flight and kept everything written; rerun to resume")

// RunBatch runs b through model into out and errs with cfg (whose
// Preprocess, Budget, Errors and Drain it sets), owning SIGINT/SIGTERM
// meanwhile (OnSignals: the first drains, the second aborts), with
// progress and a summary on w. It fails when the engine does, when the run
// was drained (ErrDrained), when every input failed (in this run, or in
// an earlier one whose error rows are all this one skipped), and with
// FailOnError when any did, in this run or in an earlier one into the
// same output whose error rows this one skipped.
func RunBatch[R any](ctx context.Context, w io.Writer, b *Batch, cfg Config, errs sinks.ErrorWriter, model Model[R], out Output[R]) error {
	stop := OnSignals(ctx, 0, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()
	if b.unguard != nil {
		b.unguard() // the run's signals are stop's now
	}
	cfg.Preprocess, cfg.ImageSize, cfg.Budget, cfg.Errors, cfg.Drain = b.Preprocess, b.Preprocess.Size, b.Preprocess.Budget, errs, stop.Drain
	eng := New(cfg, model, out)
	start := time.Now()
	counts := func() Counts {
		c := eng.Counts()
		c.Skipped = b.Inputs.Skipped()
		return c
	}
	prog := StartProgress(w, IsTerminal(w), b.Inputs.Total, start, counts)
	err := eng.Run(stop.Abort, b.Inputs)
	prog.Stop()
	return b.end(w, counts(), eng.Stats(), time.Since(start), err, stop.Drained(), eng.FirstError)
}

// AllDone reports whether every input of b is already in the output (a
// rerun with nothing left to do, which need not load its model: NothingLeft
// ends it). It reads on to the first input left (Inputs.Pending). Inputs
// none of which were skipped are not done either (an empty shard, inputs
// without images): the run reports them as it always has.
func (b *Batch) AllDone(ctx context.Context) (bool, error) {
	left, err := b.Inputs.Pending(ctx)
	if left || err != nil {
		return false, err
	}
	return b.Inputs.Skipped() > 0, nil
}

// NothingLeft ends a run that has nothing left to process (AllDone said
// so) as RunBatch would have ended it, without a model or writers:
// the same summary on w, the error rows it supersedes dropped, and the
// same error (every input it skipped had failed in an earlier run, or
// FailOnError and some had).
func (b *Batch) NothingLeft(w io.Writer) error {
	start := time.Now()
	slog.Info("nothing left to do: every input is already in the output; the model is not loaded", "skipped", b.Inputs.Skipped(), "output", b.Options.Output)
	return b.end(w, Counts{Skipped: b.Inputs.Skipped()}, idleStages(), time.Since(start), nil, false, func() string { return "" })
}

// end reports a batch run that processed c and ended with err (drained if
// so) and returns its error: RunBatch's and NothingLeft's end.
func (b *Batch) end(w io.Writer, c Counts, stats []pipeline.StageStats, wall time.Duration, err error, drained bool, firstError func() string) error {
	// A directory this run made for nothing goes (Close): another run's
	// output given as the input must not leave an empty one behind.
	b.wroteNothing = c.Written == 0 && c.Failed == 0
	Summary(w, b.Name, c, b.skippedInfo(RunInfo{Ignored: b.Inputs.Ignored(), Repeated: b.Inputs.Stats().Repeated, Budget: b.Preprocess.Budget,
		Output: b.Options.Output, SharedIDs: b.Inputs.SharedIDs(), PublishedAtEnd: b.Options.Format == "npy"}), stats, wall)
	if err == nil && !drained && c.Lost == 0 {
		// Every retried input has its new output or error row, published:
		// the error rows they supersede can go.
		if err := b.Inputs.DropRetried(b.Options.Output); err != nil {
			return err
		}
	}
	switch {
	case err != nil:
		return err
	case drained:
		return ErrDrained
	}
	return b.outcome(c, firstError)
}

// errDir is the directory of the error parts: "out/errors" for -o out/ too.
func (b *Batch) errDir() string { return filepath.Join(b.Options.Output, "errors") }

// earlierFailed is the error of a run that skipped, as done, the inputs
// that failed in an earlier run into its output (all: they are every
// input it skipped). What --retry-errors would do with them is the
// summary's hint (skippedHint), so that the two agree on a mix of
// duplicate ids, bad inputs and retryable failures.
func (b *Batch) earlierFailed(all bool) error {
	return fmt.Errorf("%s failed in an earlier run into %s (see %s; %s)",
		allInputs(b.Inputs.SkippedFailed(), all), b.Options.Output, b.errDir(), skippedHint(b.skippedInfo(RunInfo{})))
}

// allInputs counts n inputs ("3 inputs", "1 input") or, with all, says
// they are all there are ("all 3 inputs", "the only input").
func allInputs(n int64, all bool) string {
	switch {
	case !all:
		return plural(n, "input")
	case n == 1:
		return "the only input"
	}
	return fmt.Sprintf("all %d inputs", n)
}

// skippedInfo is info with the counts of the inputs b skipped that failed
// in an earlier run (Inputs.SkippedFailed and its parts).
func (b *Batch) skippedInfo(info RunInfo) RunInfo {
	info.SkippedFailed, info.SkippedRetryable, info.SkippedDuplicates = b.Inputs.SkippedFailed(), b.Inputs.SkippedRetryable(), b.Inputs.SkippedDuplicates()
	return info
}

// outcome is the error of a batch run that processed c without an error
// of its own and was not drained: nil, or why it fails (end); a dry run's
// too (DryRun), with c its skipped inputs. firstError is "id: error" of
// the first failure that is not a duplicate id (Engine.FirstError). A
// duplicate id is an error row like any bad input, but not a failure of
// the run: its id's outcome is decided by the first item with it (in this
// run, another shard's run, or an earlier run into the output), which has
// the id's output or its own error row, counted where it was processed.
// So a run (or its rerun) whose only error rows are duplicate ids ends as
// a run with some bad inputs does: it fails with FailOnError only; and a
// run that wrote nothing fails for its other error rows, counting and
// citing those only.
func (b *Batch) outcome(c Counts, firstError func() string) error {
	skippedFailed, errDir := b.Inputs.SkippedFailed(), b.errDir()
	switch {
	case c.Written == 0 && c.Failed > c.Duplicates:
		// Nothing came out: that is a failed run, not a run with bad inputs.
		// Duplicate ids are said apart: no failures, nor the one cited.
		if failed := c.Failed - c.Duplicates; c.Duplicates > 0 {
			first := "; first:"
			if failed == 1 {
				first = ":"
			}
			return fmt.Errorf("nothing was written: %s failed, not counting %s (errors in %s)%s %s",
				plural(failed, "input"), plural(c.Duplicates, "duplicate id"), errDir, first, firstError())
		}
		if c.Failed == 1 {
			return fmt.Errorf("the only input processed failed (errors in %s): %s", errDir, firstError())
		}
		return fmt.Errorf("all %d inputs failed (errors in %s); first: %s", c.Failed, errDir, firstError())
	case c.Written == 0 && c.Failed == 0 && c.Skipped > 0 && skippedFailed == c.Skipped && skippedFailed > b.Inputs.SkippedDuplicates():
		// A rerun of such a run: every input it skipped is an error row.
		return b.earlierFailed(true)
	case c.Written == 0 && c.Failed == 0 && c.Skipped == 0 && b.noImages() != nil:
		return b.noImages()
	case b.Options.FailOnError && c.Failed > 0:
		return fmt.Errorf("%s failed (see %s)", plural(c.Failed, "input"), errDir)
	case b.Options.FailOnError && skippedFailed > 0:
		// A rerun (a retried Job) must not turn the first run's failure
		// into success by skipping the inputs that failed then.
		return b.earlierFailed(false)
	}
	return nil
}

// guardOutput watches SIGINT and SIGTERM from just before a run takes
// its output directory until RunBatch owns them (stop) or the batch
// closes: while the model loads, their default action would end the
// process with the output's lock files left behind (and a directory the
// run made). The first one waits for take to return; if it took the
// output, it releases the output as Discard does (the lock files and an
// empty directory this run made are removed) and then ends the process
// through interrupted (see OpenBatch): interrupted(s) if it is not nil,
// and if it is nil or returns, endBySignal(s). If take failed, nothing
// was taken: endBySignal(s) ends the process as s would have without the
// guard (interrupted is not called). A signal the
// process was started with ignored (SIGINT of a background job) stays
// ignored. take is TakeOutputDir; guarded is its release, run once
// whoever calls it first.
func guardOutput(take func() (func(discard bool), error), interrupted func(os.Signal)) (guarded func(discard bool), stop func(), err error) {
	var sigs []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	ch := make(chan os.Signal, 1)
	taken := make(chan func(bool), 1)
	quit := make(chan struct{})
	done := make(chan struct{})
	if len(sigs) > 0 {
		signal.Notify(ch, sigs...)
	}
	onSignal := func(s os.Signal) {
		// A take under way is waited for: ending the process in the
		// middle of it would leave its lock files behind.
		var release func(bool)
		select {
		case release = <-taken:
		case <-quit: // take refused, or stop called once taken
			select {
			case release = <-taken:
			default:
			}
		}
		if release == nil {
			// Nothing was taken: the signal ends the process as it would
			// have without the guard.
			endBySignal(s)
			return
		}
		slog.Warn("signal before the run started: releasing the output directory and exiting (rerun to start again)", "signal", s.String())
		release(true)
		if interrupted != nil {
			interrupted(s)
		}
		endBySignal(s)
	}
	go func() {
		defer close(done)
		select {
		case s := <-ch:
			onSignal(s)
		case <-quit:
			select {
			case <-taken: // stop once taken: the run's owner has the signals
			default:
				// take failed: a signal that came meanwhile (signal.Stop
				// delivers those pending) is not dropped, whichever case
				// select picked.
				select {
				case s := <-ch:
					endBySignal(s)
				default:
				}
			}
		}
	}()
	var stopOnce sync.Once
	stop = func() {
		stopOnce.Do(func() {
			signal.Stop(ch)
			close(quit)
			<-done
		})
	}
	release, err := take()
	if err != nil {
		stop()
		return nil, nil, err
	}
	var once sync.Once
	guarded = func(discard bool) { once.Do(func() { release(discard) }) }
	taken <- guarded
	return guarded, stop, nil
}

// endBySignal ends the process as s would have without guardOutput: it
// restores s's default action (signal.Reset, which drops every
// signal.Notify of s in the process) and sends s to the process, which
// the runtime then ends by s (the shell shows 128+s: 130 for SIGINT, 143
// for SIGTERM). It returns only if s is no signal of this system or the
// process survives it (someone notified s again meanwhile).
func endBySignal(s os.Signal) {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return
	}
	signal.Reset(sig)
	if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
		slog.Error("cannot end the process by its signal", "signal", s.String(), "err", err)
	}
}
