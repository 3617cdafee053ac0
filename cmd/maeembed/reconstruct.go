package main

import (
	"errors"
	"flag"
	"fmt"
	"sync"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

// reconstruct masks each image, runs encoder and decoder and writes the
// predictions, masks and losses (or the demo's 4-panel PNGs).
func (e *env) reconstruct(args []string) error {
	o, err := parseOptions("reconstruct", args, func(fs *flag.FlagSet, o *Options) {
		runFlags(fs, o)
		fs.Float64Var(&o.MaskRatio, "mask-ratio", o.MaskRatio, "fraction of patches removed")
		fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the random masks (each image's mask depends on the seed and its input position)")
		fs.StringVar(&o.MaskNoise, "mask-noise", o.MaskNoise, "float32 .npy [N, L]: the masking noise, one row per input in input order")
		fs.Var(autoBoolFlag{&o.NormPixLoss}, "norm-pix-loss", "compute the loss against per-patch normalised targets (default: the model config's norm_pix_loss)")
		fs.StringVar(&o.Shard, "shard", o.Shard, "process shard i of n (i/n)")
	})
	if err != nil {
		return err
	}
	o.Resume = false // masks depend on input positions; a rerun rewrites the set
	switch o.Format {
	case "npy", "parquet", "png":
	default:
		return fmt.Errorf("%w: --format %q: reconstruct writes npy, parquet or png", errUsage, o.Format)
	}
	if o.MaskRatio < 0 || o.MaskRatio >= 1 {
		return fmt.Errorf("%w: --mask-ratio %v outside [0, 1)", errUsage, o.MaskRatio)
	}
	r, src, err := e.newImageRun(o, "reconstruct")
	if err != nil {
		return err
	}
	defer src.Close()
	if o.DryRun {
		return e.dryRun(src)
	}
	m, err := e.openModel(o, true)
	if err != nil {
		return err
	}
	c := m.Config
	l := c.NumPatches()
	var noise []float32
	noiseRows := 0
	if o.MaskNoise != "" {
		shape, data, err := sinks.ReadNpyFloat32(o.MaskNoise)
		if err != nil {
			return fmt.Errorf("--mask-noise: %w", err)
		}
		if len(shape) != 2 || shape[1] != l {
			return fmt.Errorf("--mask-noise %s: shape %v, want [N, %d] (L = %d patches for image %d, patch %d)", o.MaskNoise, shape, l, l, c.ImageSize, c.PatchSize)
		}
		noise, noiseRows = data, shape[0]
		if n, exact := src.Files(); exact && o.Shard == "" && n != noiseRows {
			return fmt.Errorf("--mask-noise %s: %d rows for %d inputs: want one row per input in input order", o.MaskNoise, noiseRows, n)
		}
	}
	normPix := o.NormPixLoss.Or(c.NormPixLoss)
	r.pre.Size = c.ImageSize
	if err := r.start(); err != nil {
		return err
	}
	meta := sinks.ReconMeta{Model: o.Model, Preprocess: r.pre.String(), Version: version, MaskRatio: o.MaskRatio,
		Seed: int64(o.Seed), Patches: l, Patch: c.PatchSize, NormPixLoss: normPix, Precision: m.Precision().String()}
	var w sinks.ReconWriter
	switch o.Format {
	case "npy":
		w, err = sinks.NewReconNpy(o.Output, meta)
	case "parquet":
		w, err = sinks.NewReconParquet(o.Output, meta, sinks.ParquetOptions{})
	case "png":
		w, err = sinks.NewReconPNG(o.Output, meta)
	}
	if err != nil {
		r.errw.Abort()
		return err
	}
	pd := c.PatchDim()
	patches := make([]float32, o.BatchSize*l*pd)
	noiseBuf := make([]float32, o.BatchSize*l)
	var rows []sinks.ReconRow
	img := 3 * c.ImageSize * c.ImageSize
	var imgPool sync.Pool
	imgPool.New = func() any { return make([]float32, o.BatchSize*img) }
	err = r.run(e.ctx, src,
		func(b []prepared) (output, error) {
			n := len(b)
			pp := patches[:n*l*pd]
			nb := noiseBuf[:n*l]
			for i, x := range b {
				mae.Patchify(pp[i*l*pd:], x.chw, 1, c.ImageSize, c.PatchSize)
				idx := x.it.Pos.Index
				if noise != nil {
					if idx >= int64(noiseRows) {
						return output{}, fmt.Errorf("--mask-noise %s has %d rows, input %s is number %d", o.MaskNoise, noiseRows, x.it.ID, idx)
					}
					copy(nb[i*l:(i+1)*l], noise[idx*int64(l):(idx+1)*int64(l)])
				} else {
					mae.NoiseRow(nb[i*l:(i+1)*l], o.Seed, idx)
				}
			}
			rec, err := m.Reconstruct(pp, nb, n, o.MaskRatio, normPix)
			if err != nil {
				return output{}, err
			}
			out := output{items: b, rec: rec}
			if o.Format == "png" {
				// The PNG panels need the model input, whose chw buffers go
				// back to their pool when this returns: copy them into a
				// batch buffer that the write stage gives back.
				out.vals = imgPool.Get().([]float32)[:n*img]
				for i, x := range b {
					copy(out.vals[i*img:], x.chw)
				}
			}
			return out, nil
		},
		func(out output) error {
			rec := out.rec
			rows = rows[:0]
			for i, x := range out.items {
				row := sinks.ReconRow{ID: x.it.ID, Width: int32(x.w), Height: int32(x.h),
					Pred: rec.Pred[i*l*pd : (i+1)*l*pd], Mask: rec.Masking.Mask[i*l : (i+1)*l], Loss: rec.Loss[i]}
				if out.vals != nil {
					row.Image = out.vals[i*img : (i+1)*img]
				}
				rows = append(rows, row)
			}
			err := w.Write(rows)
			if out.vals != nil {
				imgPool.Put(out.vals[:cap(out.vals)])
			}
			return err
		})
	if (err != nil && !errors.Is(err, errInterrupted)) || r.written == 0 {
		w.Abort() // no output file for a run that produced nothing
		return err
	}
	// A drained run (signal) publishes what it finished, then still fails.
	return errors.Join(w.Close(), err)
}
