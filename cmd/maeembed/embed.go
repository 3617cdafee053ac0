package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

var embedCommand = commandSpec{
	use:   "embed [flags] INPUT...",
	short: "Write one embedding per input image",
	long: `embed runs the MAE encoder on every input image and writes one embedding
per image (Parquet or Arrow parts, or npy + metadata.parquet), failed inputs
to OUT/errors. INPUT is a file, a directory (recursive), a glob, a list file
(.txt/.lst/.list, one path per line; '-' = stdin), a tar/WebDataset shard or
a Parquet dataset. A rerun into the same output resumes.`,
	example: `  maeembed embed -o out/ photos/
  maeembed embed --pool cls --format npy -o out/ 'shards/*.tar'
  maeembed embed --shard 0/4 -o /data/emb/ images.parquet   # one of 4 machines`,
	positional: "inputs",
	defaults:   batchDefaults,
	flags: func(fs *pflag.FlagSet, o *Options) {
		fileFlags(fs, o, "parquet | arrow | npy", "Parquet/Arrow part", "; an npy set is published when the run ends")
		o.EmbedOptions.AddFlags(fs)
		fs.BoolVar(&o.Resume, "resume", o.Resume, "skip inputs already in the output")
		fs.IntVar(&o.Parts.MaxFileRows, "max-file-rows", o.Parts.MaxFileRows, "advanced: about this many rows per Parquet/Arrow part file: a part is published at the first batch that reaches it, so up to rows+batch-1 (0 = 100000)")
	},
	extraKeys: []string{"inputs"},
	run:       (*env).embed,
}

// embed writes one embedding per input image.
func (e *env) embed(o *Options) error {
	pool, err := mae.ParsePool(o.Pool)
	if err != nil {
		return fmt.Errorf("%w: --pool: %v", errUsage, err)
	}
	o.Format = strings.ToLower(o.Format) // as --precision and MAEEMBED_KERNEL take any case
	switch o.Format {
	case "parquet", "arrow", "npy":
	default:
		return fmt.Errorf("%w: --format %q: embed writes parquet, arrow or npy", errUsage, o.Format)
	}
	b, err := e.openBatch(o, "embed")
	if err != nil {
		return err
	}
	// Until the run starts nothing is written: a failure (the model does
	// not open, an option does not fit it) leaves no new output directory.
	end := b.Discard
	defer func() { end() }()
	if o.DryRun {
		return e.dryRunEmbed(o, pool, b)
	}
	if done, err := e.nothingLeftToEmbed(o, pool, b); done || err != nil {
		if err == nil {
			end = b.Close
			err = b.NothingLeft(e.stderr)
		}
		return err
	}
	em, meta, err := e.openEmbedder(o, pool, &b.Preprocess)
	if err != nil {
		return err
	}
	meta.Inputs = b.Inputs.Roots
	meta.IDColumn, meta.ImageColumn, meta.IDColumnAuto, meta.ImageColumnAuto = b.Inputs.Columns()
	errw, err := sinks.NewErrors(o.Output, meta, sinks.ParquetOptions{})
	if err != nil {
		return err
	}
	w, err := sinks.NewEmbeddings(o.Format, o.Output, meta, o.Parts)
	if err != nil {
		errw.Abort()
		return err
	}
	end = b.Close
	return engine.RunBatch(e.ctx, e.stderr, b, o.BatchOptions.Config(), errw, engine.NewEmbedModel(em, o.BatchSize), engine.NewEmbeddingOutput(w))
}

// nothingLeftToEmbed reports whether every input of b is already in the
// output (a rerun with nothing left to do), after making, without loading
// the model, the checks the run makes before it would find that out: the
// model and its options from the checkpoint's headers, the output's
// settings (and the weights' fingerprint) against this run's, as the
// writers check them when they open it. A model not on this machine yet
// (a preset to download, the built-in model to unpack) cannot be
// fingerprinted: then the run goes on as any other (false).
func (e *env) nothingLeftToEmbed(o *Options, pool mae.Pool, b *engine.Batch) (bool, error) {
	if done, err := b.AllDone(e.ctx); !done || err != nil {
		return false, err
	}
	spec, meta, err := e.checkEmbedder(o, pool, &b.Preprocess)
	if err != nil || spec.Pending != nil {
		return false, err
	}
	meta.Inputs = b.Inputs.Roots
	meta.IDColumn, meta.ImageColumn, meta.IDColumnAuto, meta.ImageColumnAuto = b.Inputs.Columns()
	return true, e.checkEmbedOutput(o, spec, meta)
}

// dryRunEmbed lists what embed would process. It checks the model, its
// options and the output as the run would, so it fails where the run
// would and with the same code, but from the checkpoint's headers: the
// weights are read only to compare their fingerprint with an output that
// already holds results, or that a live run writes into.
func (e *env) dryRunEmbed(o *Options, pool mae.Pool, b *engine.Batch) error {
	spec, meta, err := e.checkEmbedder(o, pool, &b.Preprocess)
	if err != nil {
		return err
	}
	e.reportPending(spec)
	meta.Inputs = b.Inputs.Roots
	meta.IDColumn, meta.ImageColumn, meta.IDColumnAuto, meta.ImageColumnAuto = b.Inputs.Columns()
	if err := e.checkEmbedOutput(o, spec, meta); err != nil {
		return err
	}
	return b.DryRun(e.ctx, e.stdout, e.stderr)
}

// checkEmbedOutput refuses, without opening a writer, an output directory
// that the run's writers would refuse when they open it
// (sinks.CheckResume): one holding results written with other settings,
// or beside a live run of its kind that recorded other settings, the
// weights' fingerprint included where there is one (outputWeights).
func (e *env) checkEmbedOutput(o *Options, spec *mae.Spec, meta sinks.Meta) error {
	if o.Output == "" {
		return nil
	}
	var err error
	if meta.Weights, err = outputWeights(e.stderr, o.Output, spec); err != nil {
		return err
	}
	if meta.Weights == "" {
		return sinks.CheckResumeAnyWeights(o.Output, o.Format, meta)
	}
	return sinks.CheckResume(o.Output, o.Format, meta)
}

// outputWeights is the weights' fingerprint to compare with what dir
// holds: spec's, read from its weights, when dir holds published results
// (outputs or error rows) or a live run writes into it; "" when there is
// nothing to compare it with. A model not on this machine yet (a dry
// run's) has none: "", and the comparison is left to the run, which
// stderr is told.
func outputWeights(stderr io.Writer, dir string, spec *mae.Spec) (string, error) {
	published, err := sinks.PublishedFormats(dir)
	if err != nil {
		return "", err
	}
	used := len(published) > 0
	if !used {
		if used, err = sinks.HasLiveRuns(dir); err != nil {
			return "", err
		}
	}
	switch {
	case !used:
		return "", nil
	case spec.Pending != nil:
		fmt.Fprintf(stderr, "dry run: %s holds results (or a live run is writing into it); their weights' fingerprint (maeembed.weights) is compared once the model is on this machine, by the run\n", dir)
		return "", nil
	}
	return spec.Fingerprint()
}
