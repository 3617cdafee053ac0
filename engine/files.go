package engine

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
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
}

// InputOptions select the inputs of a run.
type InputOptions struct {
	// Source says what the inputs hold (extensions, Parquet columns, image
	// root); its Shard, NoData and Done are set from the fields below.
	Source sources.Options
	Shard  sources.Shard
	// ResumeFrom, if set, is the output directory whose published ids
	// (and error rows) are skipped.
	ResumeFrom string
	// DryRun lists without reading the files.
	DryRun bool
}

// OpenInputs opens names (files, directories, globs, list files, '-' for
// stdin, tar and Parquet) in their deterministic order.
func OpenInputs(names []string, stdin io.Reader, o InputOptions) (*Inputs, error) {
	in := &Inputs{Total: -1, Roots: sinks.InputRoots(names)}
	opts := o.Source
	opts.Shard, opts.NoData, opts.Done = o.Shard, o.DryRun, nil
	if o.ResumeFrom != "" {
		done, err := sinks.ReadDoneIDs(o.ResumeFrom)
		if err != nil {
			return nil, err
		}
		if len(done) > 0 {
			slog.Info("resuming: skipping inputs already in the output", "done", len(done), "output", o.ResumeFrom)
			opts.Done = func(id string) bool {
				if done[sinks.SanitizeID(id)] {
					in.skipped.Add(1)
					return true
				}
				return false
			}
		}
	}
	r, err := sources.OpenWith(names, stdin, opts)
	if err != nil {
		return nil, err
	}
	in.Reader = r
	if n, exact := r.Total(); exact && !o.DryRun {
		in.Total = n
	}
	return in, nil
}

// Skipped is the number of inputs skipped so far as already done.
func (in *Inputs) Skipped() int64 { return in.skipped.Load() }

// OpenOutputDir makes dir ready for a run: it takes the lock of the run's
// shard (an npy run: of the whole directory, whose files it shares), so a
// second identical run is refused instead of writing the same ids again,
// and removes the temporaries of writers that are gone.
func OpenOutputDir(dir string, shard sources.Shard, npy bool) (release func() error, err error) {
	lock, why := fmt.Sprintf("shard-%d-of-%d", shard.Index, max(1, shard.Count)), "two runs of the same inputs and shard would write the same ids twice"
	if npy {
		lock, why = "npy", "npy outputs are single files: give each run (and each shard) its own directory"
	}
	release, err = sinks.LockOutput(dir, lock, why)
	if err != nil {
		return nil, err
	}
	if err := sinks.CleanTemps(dir); err != nil {
		release()
		return nil, fmt.Errorf("output: %w", err)
	}
	return release, nil
}
