package engine

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Progress display: a bar when stderr is a terminal, a log line every
// logEvery otherwise (CI logs, Kubernetes), so a long run is never silent.
const (
	barEvery = 250 * time.Millisecond
	logEvery = 10 * time.Second
)

// done is what the bar counts: every input of this shard that is processed
// (handed to the writers; published or not yet), including those a
// previous run finished (resume).
func (c Counts) done() int64 { return c.processed() + c.Skipped }

// processed is the rows handed over; never less than those published (a
// caller may set only the published counts).
func (c Counts) processed() int64 { return max(c.Processed, c.published()) }

// published is the rows (and error rows) that are durable.
func (c Counts) published() int64 { return c.Written + c.Failed }

// Progress reports a run's advance until Stop is called.
type Progress struct {
	start  time.Time
	total  int64 // items of this shard, <= 0 if unknown (stream mode)
	counts func() Counts
	bar    *progressbar.ProgressBar
	w      io.Writer
	log    *slog.Logger // restored when the bar stops
	quit   chan struct{}
	wg     sync.WaitGroup
}

// IsTerminal reports whether w is a terminal (the bar is then useful).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// StartProgress starts the reporter: a bar on w when bar is set (w a
// terminal), else a log line every 10 s; total <= 0 means unknown. With bar set it draws on w and routes
// slog through the bar so warnings print above it instead of tearing it.
func StartProgress(w io.Writer, bar bool, total int64, start time.Time, counts func() Counts) *Progress {
	if total <= 0 {
		total = -1 // the bar shows a spinner, the log lines no total
	}
	p := &Progress{start: start, total: total, counts: counts, w: w, quit: make(chan struct{})}
	every := logEvery
	if bar && w != nil {
		every = barEvery
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("images"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
		p.log = slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(barWriter{p.bar}, &slog.HandlerOptions{Level: slog.LevelInfo})))
		p.update()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if p.bar != nil {
					p.update()
				} else {
					p.logLine()
				}
			case <-p.quit:
				return
			}
		}
	}()
	return p
}

// rate is images processed per second by this run (resumed ones excluded).
func (p *Progress) rate(c Counts) float64 {
	el := time.Since(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(c.processed()) / el
}

// description is what the bar shows after the count: errors, speed and how
// many of the processed rows are published (durable) yet.
func (p *Progress) description(c Counts) string {
	return fmt.Sprintf("%s, %.1f images/s, %d published", plural(c.Failed, "error"), p.rate(c), c.published())
}

// update redraws the bar from one Counts. Each call draws: the bar is not
// throttled (the ticker paces it). With a throttle, Describe drew the new
// description beside the previous count and Set64's frame was skipped, so
// a frame could show more published than done ("(8/402) ... 10
// published"). The count goes first: its frame pairs the new count with
// the previous description (published then is at most that count), and
// Describe's frame has both new.
func (p *Progress) update() {
	c := p.counts()
	p.bar.Set64(c.done())
	p.bar.Describe(p.description(c))
}

func (p *Progress) logLine() {
	c := p.counts()
	attrs := []any{"done", c.done()}
	if p.total > 0 {
		attrs = append(attrs, "total", p.total, "percent", fmt.Sprintf("%.1f", 100*float64(c.done())/float64(p.total)))
	}
	r := p.rate(c)
	attrs = append(attrs, "written", c.Written, "failed", c.Failed, "skipped", c.Skipped, "images_per_s", fmt.Sprintf("%.2f", r))
	if left := p.total - c.done(); p.total > 0 && r > 0 && left > 0 {
		attrs = append(attrs, "eta", (time.Duration(float64(left)/r) * time.Second).Round(time.Second).String())
	}
	// done counts what the writers were handed; written and failed what is
	// published (durable; a rerun skips it); unpublished what waits in the
	// part in progress, so that written=0 mid-run reads as what it is.
	attrs = append(attrs, "published", c.published(), "unpublished", c.processed()-c.published())
	slog.Info("progress", attrs...)
}

// Stop ends the display; the bar's last state stays on screen.
func (p *Progress) Stop() {
	close(p.quit)
	p.wg.Wait()
	if p.bar != nil {
		p.update()
		p.bar.Exit()
		fmt.Fprintln(p.w)
		slog.SetDefault(p.log)
	}
}

// barWriter prints log lines above the bar (the bar redraws below them).
type barWriter struct{ bar *progressbar.ProgressBar }

func (w barWriter) Write(b []byte) (int, error) {
	if _, err := progressbar.Bprintf(w.bar, "%s", b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// isAre is "is" for 1, "are" otherwise.
func isAre(n int64) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// plural is "1 error", "2 errors".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WriteSummary prints the end-of-run report for people: counts, speed and
// where the time went, one line per pipeline stage. Busy time is summed over
// a stage's workers; util is busy / (wall × workers), so the stage near
// 100% is the bottleneck. A run that found everything already done says so
// instead of printing a table of zeros.
func WriteSummary(w io.Writer, cmd string, c Counts, wall time.Duration, stats []pipeline.StageStats) {
	writeSummary(w, cmd, c, RunInfo{}, wall, stats)
}

// writeSummary is WriteSummary with the count of ignored files of info
// (> 0: a line says what they are).
func writeSummary(w io.Writer, cmd string, c Counts, info RunInfo, wall time.Duration, stats []pipeline.StageStats) {
	rate := 0.0
	if s := wall.Seconds(); s > 0 {
		rate = float64(c.Written) / s
	}
	fmt.Fprintf(w, "\n%s: %s written, %s, %d skipped (already done)\n", cmd, plural(c.Written, "image"), plural(c.Failed, "error"), c.Skipped)
	if c.Lost > 0 {
		rerun := "rerun to resume"
		if info.PublishedAtEnd {
			rerun = "an npy set is published only when its run ends, so a rerun processes them again"
		}
		fmt.Fprintf(w, "%s: %s not published (%s)\n", cmd, plural(c.Lost, "image"), rerun)
	}
	if info.Ignored > 0 {
		fmt.Fprintf(w, "%s: %d ignored (%s)\n", cmd, info.Ignored, ignoredWhat(info.Ignored, info.Repeated))
	}
	if c.Written+c.Failed+c.Lost == 0 && c.Skipped > 0 {
		writeNothingToDo(w, cmd, info.SkippedFailed, info.SkippedDuplicates)
		return
	}
	fmt.Fprintf(w, "%s: %.2f s, %.2f images/s\n", cmd, wall.Seconds(), rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tworkers\titems\terrors\tbusy s\tms/item\tutil")
	for _, s := range stats {
		per := 0.0
		if s.Items > 0 {
			per = 1000 * s.Busy.Seconds() / float64(s.Items)
		}
		util := 0.0
		if wall > 0 && s.Workers > 0 {
			util = 100 * s.Busy.Seconds() / (wall.Seconds() * float64(s.Workers))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.0f%%\n", s.Name, s.Workers, s.Items, s.Errors, s.Busy.Seconds(), per, util)
	}
	tw.Flush()
}

// writeNothingToDo says that a run (or a dry run) found every input
// already done, skippedFailed of them as error rows of an earlier run,
// duplicates of those as duplicate ids.
func writeNothingToDo(w io.Writer, cmd string, skippedFailed, duplicates int64) {
	if skippedFailed > 0 {
		fmt.Fprintf(w, "%s: nothing to do: every input was already done, %d of them as errors%s\n", cmd, skippedFailed, duplicateNote(duplicates))
	} else {
		fmt.Fprintf(w, "%s: nothing to do: every input was already done\n", cmd)
	}
}

// duplicateNote says how many of a count of skipped error rows are
// duplicate ids: " (1 duplicate id)", or "" for none.
func duplicateNote(duplicates int64) string {
	if duplicates <= 0 {
		return ""
	}
	return " (" + plural(duplicates, "duplicate id") + ")"
}

// RunInfo is what a run's summary reports beside its Counts.
type RunInfo struct {
	Ignored  int64          // files in input directories and tar members that are not inputs, and repeats (Inputs.Ignored)
	Repeated int64          // the part of Ignored that is paths given again (sources.Stats.Repeated)
	Budget   *stages.Budget // the run's memory budget; nil: none
	// Output is a batch run's output directory: with errors, the summary
	// says where they are and how to retry them.
	Output string
	// SkippedFailed is the part of the skipped inputs that an earlier run
	// recorded as failed (Inputs.SkippedFailed): the summary counts them
	// and says how to retry them.
	SkippedFailed int64
	// SkippedRetryable is the part of SkippedFailed of a kind a retry can
	// get past once its cause is fixed (Inputs.SkippedRetryable).
	SkippedRetryable int64
	// SkippedDuplicates is the part of SkippedFailed that is duplicate
	// ids (Inputs.SkippedDuplicates).
	SkippedDuplicates int64
	// SharedIDs are the pairs of inputs where the later repeats ids of
	// the earlier (sources.Reader.SharedIDs): the summary names them
	// beside the duplicate ids among the failures.
	SharedIDs []sources.SharedIDs
	// PublishedAtEnd: the output publishes its rows only when the run
	// ends (an npy set), so rows it did not publish are not resumed: a
	// rerun processes them again, and the summary says so.
	PublishedAtEnd bool
}

// Summary ends a run's report: one machine-readable "done" log line (the
// counts, the busy seconds of each stage, the memory budget's peak and
// size in bytes) and, with w set (file mode), WriteSummary's table for
// people, the ignored files and the peak memory held in flight (when
// anything was read).
func Summary(w io.Writer, cmd string, c Counts, info RunInfo, stats []pipeline.StageStats, wall time.Duration) {
	attrs := []any{"written", c.Written, "failed", c.Failed, "skipped", c.Skipped, "ignored", info.Ignored, "not_published", c.Lost,
		"seconds", fmt.Sprintf("%.2f", wall.Seconds()), "images_per_s", fmt.Sprintf("%.2f", float64(c.Written)/wall.Seconds())}
	for _, s := range stats {
		attrs = append(attrs, s.Name+"_busy_s", fmt.Sprintf("%.2f", s.Busy.Seconds()))
	}
	attrs = append(attrs, "memory_peak_bytes", info.Budget.Peak(), "memory_budget_bytes", info.Budget.Size())
	slog.Info("done", attrs...)
	if w == nil {
		return
	}
	writeSummary(w, cmd, c, info, wall, stats)
	switch errDir := filepath.Join(info.Output, "errors"); {
	case info.Output == "":
	case c.Failed > 0:
		fmt.Fprintf(w, "%s: the errors are in %s; %s\n", cmd, errDir, failedHint(c, info.SharedIDs))
	case info.SkippedFailed > 0:
		// A rerun skips them as done: say so, or they look forgotten.
		fmt.Fprintf(w, "%s: %d of the skipped inputs %s recorded as failed in %s by an earlier run%s; %s\n",
			cmd, info.SkippedFailed, isAre(info.SkippedFailed), errDir, duplicateNote(info.SkippedDuplicates), skippedHint(info))
	}
	if b := info.Budget; b != nil && b.Peak() > 0 {
		// (A run that read nothing, a rerun with nothing left, has no
		// peak to tell: "peak 0 B" only reads as a fault.)
		fmt.Fprintf(w, "%s: memory in flight (read + decoding): peak %s of a %s budget (--memory-budget)\n",
			cmd, stages.FormatBytes(b.Peak()), stages.FormatBytes(b.Size()))
	}
}

// skippedHint is retryHint for the inputs a rerun skipped that failed in
// an earlier run: a duplicate id's error row, which --retry-errors drops
// (its id keeps the first one's output), is no bad input to fail again.
func skippedHint(info RunInfo) string {
	const dup = "a duplicate id keeps the output of the first member or row that has it, and --retry-errors drops its error row"
	switch other := info.SkippedFailed - info.SkippedDuplicates; {
	case info.SkippedDuplicates <= 0:
		return retryHint(info.SkippedFailed, info.SkippedRetryable, -1)
	case other <= 0:
		return dup
	default:
		return dup + "; of the others, " + retryHint(other, info.SkippedRetryable, -1)
	}
}

// failedHint is retryHint for the failures of this run, c.Failed, of
// which c.Duplicates are duplicate ids: those are no bad inputs, and the
// hint says which inputs share ids (shared) and how to give them ids of
// their own.
func failedHint(c Counts, shared []sources.SharedIDs) string {
	if c.Duplicates <= 0 {
		return retryHint(c.Failed, c.Retryable, c.OverBudget)
	}
	var which string
	switch {
	case len(shared) == 0:
		// Each within one input: no --id-column fixes a tar's.
		which = " (an input holds an id more than once: a tar member twice, or a Parquet id value twice)"
	case len(shared) == 1:
		which = fmt.Sprintf(" (%s repeats %s of %s)", shared[0].Later, plural(shared[0].Count, "id"), shared[0].Earlier)
	case len(shared) > 1:
		which = fmt.Sprintf(" (%s repeats %s of %s, and %d more pairs of inputs share ids: see the warnings)",
			shared[0].Later, plural(shared[0].Count, "id"), shared[0].Earlier, len(shared)-1)
	}
	how := "an --id-column whose keys differ across the inputs, or --id-column - for ids made of each file's id and row number"
	if len(shared) == 0 {
		how = "a tar's members names of their own; a Parquet file an --id-column whose keys are unique, or --id-column - for ids made of the file's id and row number"
	} else if !slices.ContainsFunc(shared, func(s sources.SharedIDs) bool {
		return strings.HasSuffix(strings.ToLower(s.Earlier), ".parquet") || strings.HasSuffix(strings.ToLower(s.Later), ".parquet")
	}) {
		how = "rename or move the files, or pass them so that their paths relative to the inputs differ" // no Parquet keys involved
	}
	dup := fmt.Sprintf("%d %s duplicate ids%s: ids are one namespace across all inputs, and the first input, member or row with an id keeps it, "+
		"so a retry does not embed these; to embed them, give the inputs ids that differ (%s) and run into a new output directory",
		c.Duplicates, isAre(c.Duplicates), which, how)
	if c.Duplicates == 1 {
		dup = "1 is a duplicate id" + strings.TrimPrefix(dup, "1 is duplicate ids")
	}
	if other := c.Failed - c.Duplicates; other > 0 {
		return dup + "; of the others, " + retryHint(other, c.Retryable, c.OverBudget)
	}
	return dup
}

// retryHint says what can be done about failed inputs of which retryable
// are of a kind a retry can get past once their cause is fixed
// (sinks.RetryableError, a missing file among them): --retry-errors only
// for those, since the others are bad inputs (corrupt, truncated, not
// images, a FIFO, an empty tar) that fail again. Of
// the retryable, overBudget are the memory budget's (-1: not known): only
// then is a larger --memory-budget the example of a fix, not for a full
// disk or a permission.
func retryHint(failed, retryable, overBudget int64) string {
	// retry says what to do about n retryable inputs, in the number n takes.
	retry := func(n int64, obj string) string {
		cause := "their cause is fixed"
		if n == 1 {
			cause = "its cause is fixed"
		}
		if overBudget > 0 {
			return "once " + cause + " (e.g. a larger --memory-budget), rerun with --retry-errors to process " + obj + " again"
		}
		return "once " + cause + " (their error column says what failed), rerun with --retry-errors to process " + obj + " again"
	}
	const bad = "the input itself is bad, or does not fit the settings (e.g. a corrupt or truncated image, or one of another size with --resize none): a retry with the same settings fails it again"
	switch {
	case retryable <= 0:
		if failed == 1 {
			return bad
		}
		return "the inputs themselves are bad, or do not fit the settings (e.g. corrupt or truncated images, or ones of another size with --resize none): a retry with the same settings fails them again"
	case retryable >= failed:
		if failed == 1 {
			return retry(1, "that input")
		}
		return retry(failed, "those inputs")
	}
	obj, other := "them", "the others are bad inputs (e.g. corrupt or truncated images)"
	if retryable == 1 {
		obj = "it"
	}
	if failed-retryable == 1 {
		other = "the other is a bad input (e.g. a corrupt or truncated image)"
	}
	return fmt.Sprintf("%d %s of a kind a retry can fix (memory budget, resources, I/O, a missing file): %s; %s that a retry fails again",
		retryable, isAre(retryable), retry(retryable, obj), other)
}

// ignoredWhat says what the ignored count of a summary holds: paths given
// twice (read once) and files that directories and globs left out.
func ignoredWhat(ignored, repeated int64) string {
	const files = "files in directories and tar members that are not images, and Parquet files in directories without an image column; --extensions changes what directories take"
	switch {
	case repeated <= 0:
		return files
	case repeated >= ignored:
		return plural(repeated, "input") + " given twice, read once"
	}
	return fmt.Sprintf("%s given twice, read once; %d %s", plural(repeated, "input"), ignored-repeated, files)
}
