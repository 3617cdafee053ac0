package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"sync"

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
	m, err := e.openModel(o, false)
	if err != nil {
		return err
	}
	if err := m.CheckPool(pool); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	r.m = m
	r.pre.Size = m.Config.ImageSize
	if err := r.start(); err != nil {
		return err
	}
	meta := sinks.Meta{Model: o.Model, Pool: string(pool), Preprocess: r.pre.String(), Version: version, Dim: m.Config.Dim}
	if pool == mae.PoolTokens {
		meta.Tokens = 1 + m.Config.NumPatches()
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
	c := m.Config
	dim := m.EmbedDim(pool)
	patches := make([]float32, o.BatchSize*c.NumPatches()*c.PatchDim())
	vals := sync.Pool{New: func() any { return make([]float32, o.BatchSize*dim) }}
	rows := make([]sinks.Row, 0, o.BatchSize)
	err = r.run(e.ctx, src,
		func(b []prepared) (output, error) {
			n := len(b)
			pp := patches[:n*c.NumPatches()*c.PatchDim()]
			for i, x := range b {
				mae.Patchify(pp[i*c.NumPatches()*c.PatchDim():], x.chw, 1, c.ImageSize, c.PatchSize)
			}
			out := vals.Get().([]float32)[:n*dim]
			if err := m.Embed(out, pp, n, pool); err != nil {
				vals.Put(out[:cap(out)])
				return output{}, err
			}
			return output{items: b, vals: out}, nil
		},
		func(out output) error {
			rows = rows[:0]
			for i, x := range out.items {
				rows = append(rows, sinks.Row{ID: x.it.ID, Width: int32(x.w), Height: int32(x.h), Embedding: out.vals[i*dim : (i+1)*dim]})
			}
			err := w.Write(rows)
			vals.Put(out.vals[:cap(out.vals)])
			return err
		})
	if (err != nil && !errors.Is(err, errInterrupted)) || r.written == 0 {
		w.Abort() // no output file for a run that produced nothing
		return err
	}
	// A drained run (signal) publishes what it finished, then still fails.
	return errors.Join(w.Close(), err)
}
