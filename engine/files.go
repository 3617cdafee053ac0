package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Inputs are the file inputs of a batch run: one shard of them, without
// those an earlier run into the same output already finished.
type Inputs struct {
	*sources.Reader
	// Total is the number of inputs of this shard before resume, -1 when it
	// is not known up front.
	Total int64
	// Roots are the inputs as the outputs record them (sinks.InputRoots):
	// a resumed run must read the same ones.
	Roots   []string
	skipped atomic.Int64
	// skippedFailed counts the skipped inputs that only have error rows
	// (a run without RetryErrors): --retry-errors would read them again;
	// and the duplicate ids skipped whose id has an output too.
	skippedFailed atomic.Int64
	// skippedDuplicates is the part of skippedFailed that is items (files,
	// tar members, Parquet rows) whose id an earlier one has (a duplicate id, an
	// error row of the run that took it) and that has an output.
	skippedDuplicates atomic.Int64
	// skippedRetryable is the part of skippedFailed whose error rows are
	// of a kind a retry can get past (sinks.RetryableError).
	skippedRetryable atomic.Int64
	// A resumed run: the error parts found at the start, the ids of them
	// this run took again (a retry run, InputOptions.RetryErrors), and
	// those whose rows no longer hold: ids that already had an output at
	// the start (an interrupted retry run published it but did not drop
	// the error row; a retry run only) and tar and Parquet files that now
	// read to their end (any resumed run).
	errorParts []string
	mu         sync.Mutex
	retried    map[string]bool
	superseded map[string]bool
	// failedAtStart: the ids of the error rows found at the start of a
	// resumed run (those of tar and Parquet files among them are
	// superseded when the file now reads to its end).
	failedAtStart map[string]bool
	// ahead is the item Pending read, which Next returns first.
	ahead *sources.Item
	// idColumn and imageColumn are the run's --id-column and
	// --image-column (sources.Options); idAuto and imageAuto what
	// automatic choice takes in the inputs (Columns, once autoOnce ran).
	idColumn, imageColumn string
	autoOnce              sync.Once
	idAuto, imageAuto     string
}

// Columns are the run's --id-column and --image-column as the outputs
// record them (sinks.Meta.IDColumn, ImageColumn): sinks.AutoColumn when
// not set, and beside them what automatic choice takes in these inputs
// (sinks.Meta.IDColumnAuto, ImageColumnAuto: sources.Reader.AutoColumns,
// read once); all "" when no input is a Parquet file (they decide
// nothing).
func (in *Inputs) Columns() (id, image, idAuto, imageAuto string) {
	if !in.HasParquet() {
		return "", "", "", ""
	}
	in.autoOnce.Do(func() { in.idAuto, in.imageAuto = in.Reader.AutoColumns() })
	return cmp.Or(in.idColumn, sinks.AutoColumn), cmp.Or(in.imageColumn, sinks.AutoColumn), in.idAuto, in.imageAuto
}

// Pending reports whether any input is left to process: it reads on to
// the first input that is not done (skipping, and counting, the done ones
// as Next does) and keeps it for Next. A rerun with nothing left (false)
// need not load its model (Batch.AllDone).
func (in *Inputs) Pending(ctx context.Context) (bool, error) {
	if in.ahead != nil {
		return true, nil
	}
	it, err := in.Reader.Next(ctx)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	in.ahead = &it
	return true, nil
}

// Next returns the next input to process (the one Pending read first), or
// io.EOF (sources.Source).
func (in *Inputs) Next(ctx context.Context) (sources.Item, error) {
	if it := in.ahead; it != nil {
		in.ahead = nil
		return *it, nil
	}
	return in.Reader.Next(ctx)
}

// Close closes the inputs, giving back the budget of an item Pending read
// that no run took.
func (in *Inputs) Close() error {
	if it := in.ahead; it != nil {
		in.ahead = nil
		if it.Release != nil {
			it.Release()
		}
	}
	return in.Reader.Close()
}

// InputOptions select the inputs of a run.
type InputOptions struct {
	// Source says what the inputs hold (extensions, Parquet columns, image
	// root); its Shard, NoData and Done are set from the fields below.
	Source sources.Options
	Shard  sources.Shard
	// ResumeFrom, if set, is the output directory whose published ids
	// (and error rows, unless RetryErrors) are skipped.
	ResumeFrom string
	// RetryErrors: ids that ResumeFrom holds only as error rows are read
	// again; after the run, Inputs.DropRetried removes those rows.
	RetryErrors bool
	// DryRun lists without reading the files (of a Parquet file, only
	// the id column is read).
	DryRun bool
	// Budget, if set, is the run's memory budget, which the reader's
	// Parquet and tar reads take their bytes from even in a listing (a run
	// also gives it to the reader: Config.Budget).
	Budget *stages.Budget
}

// OpenInputs opens names (files, directories, globs, list files, '-' for
// stdin, tar and Parquet) in their deterministic order.
func OpenInputs(names []string, stdin io.Reader, o InputOptions) (*Inputs, error) {
	in := &Inputs{Total: -1, idColumn: o.Source.IDColumn, imageColumn: o.Source.ImageColumn}
	opts := o.Source
	opts.Shard, opts.NoData, opts.Done = o.Shard, o.DryRun, nil
	if o.ResumeFrom != "" {
		done, err := sinks.ReadDone(o.ResumeFrom)
		if err != nil {
			return nil, err
		}
		var failedOnly map[string]bool
		retryable := done.Retryable
		in.errorParts, in.retried, in.superseded = done.ErrorParts, map[string]bool{}, map[string]bool{}
		in.failedAtStart = map[string]bool{}
		if !o.RetryErrors {
			failedOnly = map[string]bool{}
			for id := range done.Failed {
				in.failedAtStart[id] = true
				if done.Rows[id] <= done.Duplicates[id] {
					// Only its repeats' rows: the first one's output or
					// error row was not published (the run was cut), so
					// it is not done. DoneRepeat decides the repeats.
					continue
				}
				if !done.Output[id] {
					failedOnly[id] = true
				}
				done.Output[id] = true
			}
			done.Failed = nil
		} else {
			for id := range done.Failed {
				in.failedAtStart[id] = true
				if done.Output[id] {
					in.superseded[id] = true
					delete(done.Failed, id)
				}
			}
		}
		if len(done.Output)+len(done.Failed) > 0 {
			slog.Info("resuming: skipping inputs already in the output", "done", len(done.Output), "retrying", len(done.Failed), "output", o.ResumeFrom)
			opts.Done = func(id string) bool {
				id = sinks.SanitizeID(id)
				if done.Output[id] {
					in.skipped.Add(1)
					if failedOnly[id] {
						in.skippedFailed.Add(1)
						if retryable[id] {
							in.skippedRetryable.Add(1)
						}
					}
					return true
				}
				if done.Failed[id] {
					in.mu.Lock()
					in.retried[id] = true
					in.mu.Unlock()
				}
				return false
			}
		}
		if failedOnly != nil {
			// The n-th repeat of an id (a file, tar member or Parquet row
			// whose id an earlier one has) is done when the output holds
			// its "duplicate id" error row, which says "(repeat n)"
			// (sinks.Done.RepeatDone), whichever shard's run wrote it: the
			// run that took it made it one. Without it, that run was cut
			// before it published the row (or this shard never ran), and
			// this run records it (the first one
			// keeps the id; Done decides it). A repeat done counts as
			// an error of its own kind, never a retryable one, whatever
			// the first one's error: a retry fails it again as a
			// duplicate. It counts as a duplicate id whose row a retry
			// drops when the id has (or gets) the first one's output;
			// one without (its first one failed too) is among the
			// failures a retry reads again, the first one and this one.
			opts.DoneRepeat = func(id string, n int) bool {
				id = sinks.SanitizeID(id)
				if !done.RepeatDone(id, n) {
					return false
				}
				in.skipped.Add(1)
				in.skippedFailed.Add(1)
				if !failedOnly[id] {
					in.skippedDuplicates.Add(1)
				}
				return true
			}
		}
	}
	if o.ResumeFrom != "" {
		// A tar or Parquet file with an error row under its own id that
		// now reads to its end: that row goes too, in a plain rerun as in
		// a retry run (any rerun opens such a file again, since its
		// members are not done; they now have their own outputs or rows,
		// so the file's old row is no longer true).
		opts.ContainerRead = func(id string) {
			id = sinks.SanitizeID(id)
			in.mu.Lock()
			defer in.mu.Unlock()
			if in.failedAtStart[id] {
				in.superseded[id] = true
			}
		}
		// A Parquet row with an error row under its row id (FILE/ROW: an
		// earlier run could not read its key, or an earlier version did
		// not try) whose key this run reads: the row now has its output
		// or error row under its key, so the old one goes (else the image
		// is in the output and in errors/ at once, and every retry counts
		// the row id it never takes). Only such rows need it: without
		// one, no Parquet row formats a row id and takes in.mu.
		if anyRowID(in.failedAtStart) {
			opts.RowKeyed = opts.ContainerRead
		}
	}
	r, err := sources.OpenWith(names, stdin, opts)
	if err != nil {
		return nil, err
	}
	if err := r.CheckColumns(); err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: %v", config.ErrUsage, err)
	}
	in.Reader = r
	in.Roots = sinks.InputRoots(names, r.ListRelative())
	if o.Budget != nil {
		r.SetBudget(o.Budget)
	}
	if n, exact := r.Total(); exact && !o.DryRun {
		in.Total = n
	}
	return in, nil
}

// anyRowID reports whether any of ids has the shape of a Parquet row's
// row id, FILE/ROW (sources.Options.RowKeyed): a last path element of
// digits alone. A file so named only costs the RowKeyed hook.
func anyRowID(ids map[string]bool) bool {
	for id := range ids {
		i := strings.LastIndexByte(id, '/')
		if i < 0 || i == len(id)-1 {
			continue
		}
		if strings.Trim(id[i+1:], "0123456789") == "" {
			return true
		}
	}
	return false
}

// Retried is the number of inputs read again so far because the output
// held only error rows for them (InputOptions.RetryErrors).
func (in *Inputs) Retried() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.retried)
}

// DropRetried removes from the error parts of dir found at the start (a
// resumed run's) the rows of the ids this run read again (a retry run),
// of those that already had an output at the start (a retry run), and of
// the tar and Parquet files that read to their end (any resumed run)
// (sinks.DropErrorRows). Call it only after a run that processed every
// input and published all it wrote: each retried id then has its new
// output or its new error row, in a part of this run's own, so no row is
// lost. Before that, such an id is in the output and in errors/ at once,
// or twice in errors/.
func (in *Inputs) DropRetried(dir string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.retried)+len(in.superseded) == 0 {
		return nil
	}
	return sinks.DropErrorRows(dir, in.errorParts, func(id string) bool { return in.retried[id] || in.superseded[id] })
}

// Skipped is the number of inputs skipped so far as already done.
func (in *Inputs) Skipped() int64 { return in.skipped.Load() }

// SkippedFailed is the part of Skipped that the output holds as error rows
// (an earlier run failed them): those whose id has only error rows, which
// a --retry-errors run reads again, and the duplicate ids
// (SkippedDuplicates).
func (in *Inputs) SkippedFailed() int64 { return in.skippedFailed.Load() }

// SkippedDuplicates is the part of SkippedFailed that is items (files, tar
// members, Parquet rows) whose id an earlier item has: the run that took
// them made them error rows ("duplicate id"), whose id has the first one's
// output. --retry-errors drops their rows instead. (Those of an id whose
// first one failed too count as its other failures: a retry reads both.)
func (in *Inputs) SkippedDuplicates() int64 { return in.skippedDuplicates.Load() }

// SkippedRetryable is the part of SkippedFailed whose error rows are of a
// kind a retry can get past once their cause is fixed (sinks.RetryableError).
func (in *Inputs) SkippedRetryable() int64 { return in.skippedRetryable.Load() }

// OutputDir is the output directory of a batch run and what the run
// writes into it.
type OutputDir struct {
	Dir    string
	Format string // "parquet", "arrow", "npy" or "png"
	Shard  sources.Shard
	// Resume: the run continues what dir holds. Without it dir must hold
	// no published output, or every id would be written a second time.
	Resume bool
	// Command ("embed", "reconstruct") is part of a batch run's kind: two
	// shards of one count, one of each command, would otherwise share the
	// directory and mix embeddings with reconstructions (each checks the
	// parts published before it starts, and there are none yet).
	Command string
	// Group, if set, makes the run a stream worker of this consumer group
	// (Shard unused): the group's workers share the directory, since Kafka
	// gives each message to one of them, and a live worker of another group
	// or a batch run refuses it.
	Group string
	// WorkerID is a stream worker's --worker-id (with Group): its part
	// names carry it, so a second live worker with the same id is refused.
	WorkerID string
}

// openOutputDir is TakeOutputDir with release freeing the locks alone,
// and the directories it made (sinks.TakeOutputKind) returned. When it
// fails, it leaves none of them.
func openOutputDir(o OutputDir) (release func() error, made []string, err error) {
	if err := o.checkHeld(); err != nil {
		return nil, nil, err
	}
	release, made, err = sinks.TakeOutputKind(o.Dir, o.kind())
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (func() error, []string, error) {
		release()
		sinks.RemoveMadeDirs(made)
		return nil, nil, err
	}
	lock, why := o.runLock()
	runRelease, err := sinks.LockOutput(o.Dir, lock, why)
	if err != nil {
		return fail(err)
	}
	kindRelease := release
	release = func() error { return errors.Join(runRelease(), kindRelease()) }
	if err := sinks.CleanTemps(o.Dir); err != nil {
		return fail(fmt.Errorf("output: %w", err))
	}
	if o.Group != "" {
		// Killed workers leave their lock files (each id its own, and the
		// default id holds a pid): without this a shared output fills
		// with them. Live workers' locks stay.
		removed, err := sinks.RemoveStaleLocks(o.Dir, "worker-")
		if err != nil {
			return fail(fmt.Errorf("output: %w", err))
		}
		if len(removed) > 0 {
			slog.Info("removed the lock files of stream workers that are gone", "dir", o.Dir, "files", len(removed))
		}
	}
	// Again under the locks: what dir holds cannot change now, and the
	// clean-up may have published an npy set whose publication a killed
	// run began (the check above counted it too, unless that run died
	// after it).
	if err := o.checkHeld(); err != nil {
		return fail(err)
	}
	return release, made, nil
}

// TakeOutputDir makes o.Dir ready for a run and keeps the promise that no
// id is written twice. It refuses a run whose format differs from the
// outputs dir holds (a resume would count the other format's ids as done)
// or from a live run's, or whose shard count differs from a live run's
// (shards 0/2 and 0/3 overlap); a run without Resume into a directory that
// holds outputs; and a second run of the same shard (an npy run: any second
// run, since npy sets are single files). Stream workers (Group) share the
// directory with the other workers of their group only, each with its own
// WorkerID. Then it removes the temporaries of writers that are gone
// (sinks.CleanTemps, which first completes an npy set whose publication a
// killed run began).
//
// A run may end before it writes anything (its model does not load, a
// check refuses it, its inputs hold no image): release(discard) frees the
// locks and, with discard, removes the directories this call made (o.Dir
// and the parents of it that did not exist: -o a/b/c into a directory
// without a/ makes three) that are still empty, the deepest first
// (sinks.RemoveMadeDirs), so such a run leaves nothing new behind. A directory that existed before stays, and
// so does one that holds a file meanwhile (and its parents).
func TakeOutputDir(o OutputDir) (release func(discard bool), err error) {
	unlock, made, err := openOutputDir(o)
	if err != nil {
		return nil, err
	}
	return func(discard bool) {
		unlock()
		if discard {
			sinks.RemoveMadeDirs(made)
		}
	}, nil
}

// CheckOutputDir fails where TakeOutputDir would (the outputs o.Dir holds,
// a live run holding a lock this run needs) but creates nothing and holds
// no lock afterwards: it only tests the locks. A dry run's check.
//
// Unlike the run, it does not refuse an output that holds outputs without
// Resume: such a dry run lists every input, what --resume=false would
// process.
func CheckOutputDir(o OutputDir) error {
	held := o
	held.Resume = true
	if err := held.checkHeld(); err != nil {
		return err
	}
	if err := sinks.ProbeOutputKind(o.Dir, o.kind()); err != nil {
		return err
	}
	lock, why := o.runLock()
	return sinks.ProbeOutput(o.Dir, lock, why)
}

// CheckOutputNotFile refuses an output directory (--output) that exists as
// a file, or under a file: a run would fail late and obscurely on it ("not a directory").
// Stream workers check it with their flags, before the model loads. The
// error wraps config.ErrUsage.
func CheckOutputNotFile(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: --output %s is a file: the outputs go into a directory there (give a directory's path)", config.ErrUsage, dir)
	}
	if errors.Is(err, syscall.ENOTDIR) {
		// A file on the way (-o f/out with f a file): no directory can be
		// made there.
		for p := filepath.Dir(filepath.Clean(dir)); ; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return fmt.Errorf("%w: --output %s: %s is a file, so no directory can be made under it (give a directory's path)", config.ErrUsage, dir, p)
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return nil
}

// checkHeld refuses an o.Dir that is a file, and the outputs o.Dir
// already holds: any without Resume, those of another format.
func (o OutputDir) checkHeld() error {
	if err := CheckOutputNotFile(o.Dir); err != nil {
		return err
	}
	held, err := sinks.PublishedFormats(o.Dir)
	if err != nil {
		return err
	}
	if !o.Resume && len(held) > 0 {
		return fmt.Errorf("output %s already holds outputs (%s) and --resume=false would write their ids a second time: "+
			"use an empty output directory, empty this one, or drop --resume=false to continue it", o.Dir, strings.Join(held, ", "))
	}
	for _, f := range held {
		if f != "errors" && f != o.Format {
			return fmt.Errorf("output %s holds %s output and this run writes %s: one directory holds one format "+
				"(a resume would take the %s ids for done ones): use another output directory", o.Dir, f, o.Format, f)
		}
	}
	return nil
}

// kind is the run's kind lock name (sinks.TakeOutputKind).
func (o OutputDir) kind() string {
	if o.Group != "" {
		return fmt.Sprintf("%s-group-%s", o.Format, url.PathEscape(o.Group))
	}
	if o.Command != "" {
		return fmt.Sprintf("%s-%s-%d-shards", o.Command, o.Format, max(1, o.Shard.Count))
	}
	return fmt.Sprintf("%s-%d-shards", o.Format, max(1, o.Shard.Count))
}

// runLock is the exclusive lock of a batch run or a stream worker
// (sinks.LockOutput) and why a second holder is refused.
func (o OutputDir) runLock() (name, why string) {
	switch {
	case o.Group != "":
		// Two live workers with one id would number parts alike, and
		// where the no-clobber publish falls back to a rename one would
		// replace the other's.
		return "worker-" + o.WorkerID, fmt.Sprintf("a stream worker with --worker-id %s, "+
			"whose part files this worker's would replace: give each worker its own --worker-id (the default, host-pid, differs)", o.WorkerID)
	case o.Format == "npy":
		return "npy", "an npy set is single files that one run at a time writes: run the shards into it one after the other, or give each concurrent run its own directory"
	}
	// The lock does not know the inputs: the live run may be over the
	// same inputs (it would write the same ids twice) or over others
	// (which a resume refuses to mix into one output).
	return fmt.Sprintf("shard-%d-of-%d", o.Shard.Index, max(1, o.Shard.Count)),
		"one run of a shard writes into an output at a time, whatever its inputs (over the same inputs two would write the same ids twice): wait for it to end, or give this run another --output"
}
