package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// embed writes one embedding per input image.
func (e *env) embed(args []string) error {
	var maxFileRows int // advanced, flag only: tests make parts roll early
	o, err := parseOptions("embed", args, func(fs *flag.FlagSet, o *Options) {
		runFlags(fs, o)
		fs.IntVar(&maxFileRows, "max-file-rows", 0, "advanced: rows per Parquet/Arrow part file (0 = 100000)")
		fs.StringVar(&o.Pool, "pool", o.Pool, "cls | mean | tokens | global")
		fs.StringVar(&o.Shard, "shard", o.Shard, "process shard i of n (i/n), for several machines")
		fs.BoolVar(&o.Resume, "resume", o.Resume, "skip inputs already in the output")
	})
	if err != nil {
		return err
	}
	pool, err := mae.ParsePool(o.Pool)
	if err != nil {
		return fmt.Errorf("%w: --pool: %v", errUsage, err)
	}
	switch o.Format {
	case "parquet", "arrow", "npy":
	default:
		return fmt.Errorf("%w: --format %q: embed writes parquet, arrow or npy", errUsage, o.Format)
	}
	r, src, err := e.newImageRun(o, "embed")
	if err != nil {
		return err
	}
	defer src.Close()
	if o.DryRun {
		return e.dryRun(src)
	}
	em, meta, err := e.openEmbedder(o, pool, r)
	if err != nil {
		return err
	}
	if err := r.start(); err != nil {
		return err
	}
	var w sinks.EmbeddingWriter
	switch o.Format {
	case "parquet":
		w, err = sinks.NewParquet(o.Output, meta, sinks.ParquetOptions{MaxFileRows: maxFileRows})
	case "arrow":
		w, err = sinks.NewArrow(o.Output, meta, sinks.ParquetOptions{MaxFileRows: maxFileRows})
	case "npy":
		w, err = sinks.NewNpy(o.Output, meta)
	}
	if err != nil {
		r.errw.Abort()
		return err
	}
	rows := make([]sinks.Row, 0, o.BatchSize)
	err = r.run(e.ctx, src, em.run,
		func(out output) error {
			rows = rows[:0]
			for i, x := range out.items {
				rows = append(rows, sinks.Row{ID: x.it.ID, Width: int32(x.w), Height: int32(x.h), Embedding: em.vector(out, i)})
			}
			err := w.Write(rows)
			em.release(out)
			return err
		})
	if (err != nil && !errors.Is(err, errInterrupted)) || r.written == 0 {
		w.Abort() // no output file for a run that produced nothing
		return err
	}
	// A drained run (signal) publishes what it finished, then still fails.
	return errors.Join(w.Close(), err)
}
