package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/kernels"
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
	defaults:   func(o *Options) { batchDefaults(o); o.Format = "npy" },
	flags: func(fs *pflag.FlagSet, o *Options) {
		fileFlags(fs, o, "npy | parquet | png", "Parquet part", "; an npy set is published when the run ends, each PNG as it is written")
		// Resume is exact: an input's mask depends on its position in the
		// whole input sequence, which skipping done inputs does not change.
		fs.BoolVar(&o.Resume, "resume", o.Resume, "skip inputs already in the output (npy, parquet, png)")
		o.MaskOptions.AddFlags(fs)
	},
	extraKeys: []string{"inputs"},
	run:       (*env).reconstruct,
}

// reconstruct masks each image, runs encoder and decoder and writes the
// predictions, masks and losses (or the demo's 4-panel PNGs).
func (e *env) reconstruct(o *Options) error {
	o.Format = strings.ToLower(o.Format) // as --precision and MAEEMBED_KERNEL take any case
	switch o.Format {
	case "npy", "parquet", "png":
	default:
		return fmt.Errorf("%w: --format %q: reconstruct writes npy, parquet or png", errUsage, o.Format)
	}
	if err := mae.CheckMaskRatio(o.MaskRatio); err != nil {
		return fmt.Errorf("%w: --mask-ratio: %v", errUsage, err)
	}
	b, err := e.openBatch(o, "reconstruct")
	if err != nil {
		return err
	}
	// Until the run starts nothing is written: a failure (the model does
	// not open, an option does not fit it) leaves no new output directory.
	end := b.Discard
	defer func() { end() }()
	if o.DryRun {
		// The checks of the model and its options, from the checkpoint's
		// headers: a dry run fails where the run would, without loading
		// the weights.
		spec, p, err := o.ModelOptions.Check(e.ctx, true)
		if err != nil {
			return err
		}
		e.reportPending(spec)
		if err := checkReconstructRun(e.stderr, o, b, spec, p); err != nil {
			return err
		}
		return b.DryRun(e.ctx, e.stdout, e.stderr)
	}
	if done, err := e.nothingLeftToReconstruct(o, b); done || err != nil {
		if err == nil {
			end = b.Close
			err = b.NothingLeft(e.stderr)
		}
		return err
	}
	m, err := e.openModel(o, true)
	if err != nil {
		return err
	}
	c := m.Config
	l := c.NumPatches()
	if err := checkReconstruct(o, c, b); err != nil {
		return err
	}
	var noise mae.Noise = mae.SeededNoise(o.Seed)
	noiseFP := ""
	if o.MaskNoise != "" {
		rows, fp, err := readMaskNoise(o, c, b)
		if err != nil {
			return err
		}
		noise, noiseFP = rows, fp
	}
	normPix := o.NormPixLoss.Or(c.NormPixLoss)
	rec, err := mae.NewReconstructor(m, o.MaskRatio, normPix, noise, o.BatchSize)
	if err != nil {
		return err
	}
	b.Preprocess.Size = c.ImageSize
	meta := sinks.ReconMeta{Model: o.Model.Name, Preprocess: b.Preprocess.String(), Version: version, MaskRatio: o.MaskRatio,
		Seed: int64(o.Seed), Patches: l, Patch: c.PatchSize, NormPixLoss: normPix, Precision: m.Precision().String(), Kernel: m.Kernel(), Weights: m.Fingerprint, Inputs: b.Inputs.Roots,
		MaskNoise: noiseFP}
	meta.IDColumn, meta.ImageColumn, meta.IDColumnAuto, meta.ImageColumnAuto = b.Inputs.Columns()
	errw, err := sinks.NewReconErrors(o.Output, meta, sinks.ParquetOptions{})
	if err != nil {
		return err
	}
	w, err := sinks.NewReconstructions(o.Format, o.Output, meta, o.Parts)
	if err != nil {
		errw.Abort()
		return err
	}
	model := engine.NewReconstructModel(rec, o.BatchSize, c.ImageSize, o.Format == "png")
	end = b.Close
	return engine.RunBatch(e.ctx, e.stderr, b, o.BatchOptions.Config(), errw, model, engine.NewReconstructionOutput(w))
}

// nothingLeftToReconstruct is nothingLeftToEmbed for reconstruct: whether
// every input of b is already in the output, after the checks a run makes
// before it would find that out (checkReconstructRun), without loading the
// model (false for one not on this machine yet: the run goes on as any).
func (e *env) nothingLeftToReconstruct(o *Options, b *engine.Batch) (bool, error) {
	if done, err := b.AllDone(e.ctx); !done || err != nil {
		return false, err
	}
	spec, p, err := o.ModelOptions.Check(e.ctx, true)
	if err != nil || spec.Pending != nil {
		return false, err
	}
	return true, checkReconstructRun(e.stderr, o, b, spec, p)
}

// checkReconstructRun makes the checks of a reconstruct run of the model
// spec (checked from its headers, mae.Check) that need no loaded model (a
// dry run's, and a rerun's with nothing left to do): --mask-ratio and the
// memory budget against its config, --mask-noise, and the output's
// settings against this run's (checkReconResume).
func checkReconstructRun(stderr io.Writer, o *Options, b *engine.Batch, spec *mae.Spec, p kernels.Precision) error {
	if err := checkReconstruct(o, spec.Config, b); err != nil {
		return err
	}
	noiseFP := ""
	if o.MaskNoise != "" {
		_, fp, err := readMaskNoise(o, spec.Config, b)
		if err != nil {
			return err
		}
		noiseFP = fp
	}
	return checkReconResume(stderr, o, spec, p, noiseFP, b)
}

// readMaskNoise reads --mask-noise (float32, or float64 rounded to float32
// as numpy's astype does) and checks its shape against the model (L
// patches) and the inputs (one row each: a tar member and a Parquet row
// are inputs, counted up front by sources.Reader.Count), and that every
// value is finite.
// It returns the rows and their fingerprint (ReconMeta.MaskNoise). Any
// file that cannot be used (missing, unreadable, not an npy file, another
// dtype, byte order or layout, a shape that does not fit, a value that is
// not finite) is a usage error: a bad file named on the command line,
// found before any input is processed; so are inputs that cannot be
// counted (a tar or Parquet file that cannot be read to its end), and a
// --seed, which the file's noise leaves without effect.
func readMaskNoise(o *Options, c mae.Config, b *engine.Batch) (mae.NoiseRows, string, error) {
	if o.Seed != 0 {
		// The file's rows are the noise: a seed would be recorded but
		// change nothing.
		return mae.NoiseRows{}, "", fmt.Errorf("%w: --seed %d with --mask-noise: the masks come from the file, which takes no seed; leave --seed out", errUsage, o.Seed)
	}
	l := c.NumPatches()
	shape, data, err := sinks.ReadNpyFloat32(o.MaskNoise)
	if err != nil {
		return mae.NoiseRows{}, "", fmt.Errorf("%w: --mask-noise: %w", errUsage, err)
	}
	if len(shape) != 2 || shape[1] != l {
		return mae.NoiseRows{}, "", fmt.Errorf("%w: --mask-noise %s: shape %v, want [N, %d] (L = %d patches for image %d, patch %d)", errUsage, o.MaskNoise, shape, l, l, c.ImageSize, c.PatchSize)
	}
	if o.Shard == "" {
		n, exact := b.Inputs.Files()
		what := ""
		if !exact {
			what = " (files, tar members and Parquet rows)"
			// Tar members and Parquet rows are inputs each: counted from
			// the tar headers and Parquet footers, before the run, rather
			// than found short (every image of a batch failing) or long
			// (accepted) on the way, with the rows' fingerprint recorded.
			c, err := b.Inputs.Count()
			if err != nil {
				return mae.NoiseRows{}, "", fmt.Errorf("%w: --mask-noise %s needs one row per input, and the number of inputs cannot be known before the run: %w (leave that input out, or run without --mask-noise)", errUsage, o.MaskNoise, err)
			}
			n = int(c)
		}
		if n != shape[0] {
			return mae.NoiseRows{}, "", fmt.Errorf("%w: --mask-noise %s: %d rows for %d inputs%s: want one row per input in input order", errUsage, o.MaskNoise, shape[0], n, what)
		}
	}
	rows := mae.NoiseRows{Name: "--mask-noise " + o.MaskNoise, L: l, Data: data}
	if err := rows.Check(); err != nil {
		return mae.NoiseRows{}, "", fmt.Errorf("%w: %w", errUsage, err)
	}
	return rows, sinks.MaskNoiseFingerprint(shape, data), nil
}

// checkReconResume refuses an output that the run's writers would refuse
// when they open it (sinks.CheckReconResume): one written with other
// settings (mask ratio, seed, --mask-noise rows, fingerprinted as noiseFP,
// model, precision, preprocessing, inputs), or beside a live run of its
// kind that recorded other settings, and, when it holds results or a live
// run writes into it, other weights. The kernel is not compared, as by the
// run.
func checkReconResume(stderr io.Writer, o *Options, spec *mae.Spec, p kernels.Precision, noiseFP string, b *engine.Batch) error {
	if o.Output == "" {
		return nil
	}
	c := spec.Config
	pre := b.Preprocess
	pre.Size = c.ImageSize
	meta := sinks.ReconMeta{Model: o.Model.Name, Preprocess: pre.String(), Version: version, MaskRatio: o.MaskRatio,
		Seed: int64(o.Seed), Patches: c.NumPatches(), Patch: c.PatchSize, NormPixLoss: o.NormPixLoss.Or(c.NormPixLoss),
		Precision: p.String(), Inputs: b.Inputs.Roots, MaskNoise: noiseFP}
	meta.IDColumn, meta.ImageColumn, meta.IDColumnAuto, meta.ImageColumnAuto = b.Inputs.Columns()
	// Without a fingerprint (an empty meta.Weights) everything else is
	// checked (sinks.CheckReconResume).
	var err error
	if meta.Weights, err = outputWeights(stderr, o.Output, spec); err != nil {
		return err
	}
	return sinks.CheckReconResume(o.Output, o.Format, meta)
}

// checkReconstruct checks reconstruct's options against the model's
// config: the mask ratio and the tensors the run holds (against
// --memory-budget).
func checkReconstruct(o *Options, c mae.Config, b *engine.Batch) error {
	if err := c.CheckMaskRatio(o.MaskRatio); err != nil {
		return fmt.Errorf("%w: --mask-ratio: %v", errUsage, err)
	}
	mem := engine.ModelMemory{ImageSize: c.ImageSize, Batch: c.BatchBytes(o.BatchSize, true),
		Result: engine.ReconstructionBytes(c, o.BatchSize, o.MaskRatio, o.Format == "png")}
	if err := o.CheckBudget(mem, b.Preprocess.Budget); err != nil {
		return usage(err)
	}
	return nil
}
