package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/stages"
)

func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

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
	defaults:   func(o *Options) { o.Stream.FlushInterval = batchFlushInterval },
	flags: func(fs *pflag.FlagSet, o *Options) {
		runFlags(fs, o, "parquet | arrow | npy")
		fs.StringVar(&o.Pool, "pool", o.Pool, "cls | mean | tokens | global")
		fs.BoolVar(&o.Resume, "resume", o.Resume, "skip inputs already in the output")
		fs.IntVar(&o.MaxFileRows, "max-file-rows", o.MaxFileRows, "advanced: about this many rows per Parquet/Arrow part file: a part is published at the first batch that reaches it, so up to rows+batch-1 (0 = 100000)")
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
	switch o.Format {
	case "parquet", "arrow", "npy":
	default:
		return fmt.Errorf("%w: --format %q: embed writes parquet, arrow or npy", errUsage, o.Format)
	}
	r, err := e.openInputs(o, "embed")
	if err != nil {
		return err
	}
	defer r.close()
	if o.DryRun {
		return e.dryRun(r.src)
	}
	em, meta, err := e.openEmbedder(o, pool, &r.pre)
	if err != nil {
		return err
	}
	meta.Inputs = r.src.Roots
	errw, err := r.openOutput(meta)
	if err != nil {
		return err
	}
	var w sinks.EmbeddingWriter
	switch o.Format {
	case "parquet":
		w, err = sinks.NewParquet(o.Output, meta, sinks.ParquetOptions{MaxFileRows: o.MaxFileRows})
	case "arrow":
		w, err = sinks.NewArrow(o.Output, meta, sinks.ParquetOptions{MaxFileRows: o.MaxFileRows})
	case "npy":
		w, err = sinks.NewNpy(o.Output, meta)
	}
	if err != nil {
		errw.Abort()
		return err
	}
	return runFiles(e, r, errw, engine.NewEmbedModel(em, o.BatchSize), engine.NewEmbeddingOutput(w))
}

// openEmbedder loads the model of o as the embedding stage for pool, sets
// the preprocessing size and returns the output metadata of the run.
func (e *env) openEmbedder(o *Options, pool mae.Pool, pre *stages.Preprocess) (*mae.Embedder, sinks.Meta, error) {
	m, err := e.openModel(o, false)
	if err != nil {
		return nil, sinks.Meta{}, err
	}
	if err := checkBatchSize(o.BatchSize, m.Config.BatchBytes(o.BatchSize, false), pre.Budget); err != nil {
		return nil, sinks.Meta{}, err
	}
	em, err := mae.NewEmbedder(m, pool, o.BatchSize)
	if err != nil {
		return nil, sinks.Meta{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	c := m.Config
	pre.Size = c.ImageSize
	meta := sinks.Meta{Model: o.Model.Name, Pool: string(pool), Preprocess: pre.String(), Version: version, Dim: c.Dim, Precision: m.Precision().String(), Weights: m.Fingerprint}
	if pool == mae.PoolTokens {
		meta.Tokens = 1 + c.NumPatches()
	}
	return em, meta, nil
}
