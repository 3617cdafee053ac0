package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

var reconstructCommand = commandSpec{
	use:   "reconstruct [flags] INPUT...",
	short: "Mask each image and reconstruct it with the MAE decoder",
	long: `reconstruct removes a random fraction of each image's patches, runs the
encoder and decoder, and writes the predictions, masks and per-image losses
(npy or Parquet) or the MAE demo's 4-panel PNGs (original | masked |
reconstruction | reconstruction + visible). Masks depend on --seed and each
input's position, or come from --mask-noise.`,
	example: `  maeembed reconstruct --format png -o panels/ photos/
  maeembed reconstruct --mask-ratio 0.5 --seed 7 -o recon/ photos/`,
	positional: "inputs",
	defaults:   func(o *Options) { o.Format, o.Stream.FlushInterval = "npy", batchFlushInterval },
	flags: func(fs *pflag.FlagSet, o *Options) {
		runFlags(fs, o, "npy | parquet | png")
		// Resume is exact: an input's mask depends on its position in the
		// whole input sequence, which skipping done inputs does not change.
		fs.BoolVar(&o.Resume, "resume", o.Resume, "skip inputs already in the output (npy, parquet; png panels are redone)")
		fs.Float64Var(&o.MaskRatio, "mask-ratio", o.MaskRatio, "fraction of patches removed")
		fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the random masks (each image's mask depends on the seed and its input position)")
		fs.StringVar(&o.MaskNoise, "mask-noise", o.MaskNoise, "float32 .npy [N, L]: the masking noise, one row per input in input order")
		fs.VarPF(autoBoolFlag{&o.NormPixLoss}, "norm-pix-loss", "", "compute the loss against per-patch normalised targets (default: the model config's norm_pix_loss)").NoOptDefVal = "true"
	},
	extraKeys: []string{"inputs"},
	run:       (*env).reconstruct,
}

// reconstruct masks each image, runs encoder and decoder and writes the
// predictions, masks and losses (or the demo's 4-panel PNGs).
func (e *env) reconstruct(o *Options) error {
	switch o.Format {
	case "npy", "parquet", "png":
	default:
		return fmt.Errorf("%w: --format %q: reconstruct writes npy, parquet or png", errUsage, o.Format)
	}
	if err := mae.CheckMaskRatio(o.MaskRatio); err != nil {
		return fmt.Errorf("%w: --mask-ratio: %v", errUsage, err)
	}
	r, err := e.openInputs(o, "reconstruct")
	if err != nil {
		return err
	}
	defer r.close()
	if o.DryRun {
		return e.dryRun(r.src)
	}
	m, err := e.openModel(o, true)
	if err != nil {
		return err
	}
	c := m.Config
	l := c.NumPatches()
	if err := c.CheckMaskRatio(o.MaskRatio); err != nil {
		return fmt.Errorf("%w: --mask-ratio: %v", errUsage, err)
	}
	if err := checkBatchSize(o.BatchSize, c.BatchBytes(o.BatchSize, true), r.pre.Budget); err != nil {
		return err
	}
	var noise mae.Noise = mae.SeededNoise(o.Seed)
	if o.MaskNoise != "" {
		shape, data, err := sinks.ReadNpyFloat32(o.MaskNoise)
		if err != nil {
			return fmt.Errorf("--mask-noise: %w", err)
		}
		if len(shape) != 2 || shape[1] != l {
			return fmt.Errorf("--mask-noise %s: shape %v, want [N, %d] (L = %d patches for image %d, patch %d)", o.MaskNoise, shape, l, l, c.ImageSize, c.PatchSize)
		}
		if n, exact := r.src.Files(); exact && o.Shard == "" && n != shape[0] {
			return fmt.Errorf("--mask-noise %s: %d rows for %d inputs: want one row per input in input order", o.MaskNoise, shape[0], n)
		}
		noise = mae.NoiseRows{Name: "--mask-noise " + o.MaskNoise, L: l, Data: data}
	}
	normPix := o.NormPixLoss.Or(c.NormPixLoss)
	rec, err := mae.NewReconstructor(m, o.MaskRatio, normPix, noise, o.BatchSize)
	if err != nil {
		return err
	}
	r.pre.Size = c.ImageSize
	errw, err := r.openOutput(sinks.Meta{Model: o.Model.Name, Pool: o.Pool, Preprocess: r.pre.String(), Version: version, Dim: 1, Precision: m.Precision().String(), Weights: m.Fingerprint, Inputs: r.src.Roots})
	if err != nil {
		return err
	}
	meta := sinks.ReconMeta{Model: o.Model.Name, Preprocess: r.pre.String(), Version: version, MaskRatio: o.MaskRatio,
		Seed: int64(o.Seed), Patches: l, Patch: c.PatchSize, NormPixLoss: normPix, Precision: m.Precision().String(), Weights: m.Fingerprint, Inputs: r.src.Roots}
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
		errw.Abort()
		return err
	}
	model := engine.NewReconstructModel(rec, o.BatchSize, c.ImageSize, o.Format == "png")
	return runFiles(e, r, errw, model, engine.NewReconstructionOutput(w))
}
