package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
	"github.com/maeembed/maeembed/train"
)

// pretrain parses the flags of `maeembed pretrain` into a train.Job and
// runs it; everything else lives in package train.
func (e *env) pretrain(args []string) error {
	r := train.DefaultRecipe()
	fs := flag.NewFlagSet("maeembed pretrain", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var (
		model, init, output, augment, resize string
		saveEvery, keep, workers             int
		resume                               bool
		maxPixels                            int64
		imageColumn, idColumn                string
	)
	for _, n := range []string{"model", "m"} {
		fs.StringVar(&model, n, train.TinyName, "architecture: a preset name or an HF-style config.json")
	}
	fs.StringVar(&init, "init", "", "start from this checkpoint's weights (same architecture) instead of the random init")
	for _, n := range []string{"output", "o"} {
		fs.StringVar(&output, n, "", "directory of checkpoints, metrics.csv, loss.png and errors/")
	}
	fs.IntVar(&r.Epochs, "epochs", r.Epochs, "epochs over the training images")
	fs.Float64Var(&r.WarmupEpochs, "warmup-epochs", r.WarmupEpochs, "epochs of linear lr warmup")
	fs.IntVar(&r.BatchSize, "batch-size", r.BatchSize, "images per iteration")
	fs.IntVar(&r.AccumIter, "accum-iter", r.AccumIter, "iterations of gradient accumulation per optimiser step")
	fs.Float64Var(&r.BLR, "blr", r.BLR, "base learning rate: lr = blr × batch size × accum iter / 256")
	fs.Float64Var(&r.LR, "lr", 0, "absolute learning rate (overrides --blr)")
	fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "lower bound of the cosine schedule")
	fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay (not on biases, norms, tokens)")
	fs.Float64Var(&r.MaskRatio, "mask-ratio", r.MaskRatio, "fraction of patches removed")
	fs.BoolVar(&r.NormPixLoss, "norm-pix-loss", false, "normalise each target patch by its mean and std")
	fs.Uint64Var(&r.Seed, "seed", 0, "seed of the init, masks, crops, flips and epoch shuffles")
	fs.StringVar(&augment, "augment", "random-resized-crop", "random-resized-crop (crop 0.2–1 of the area, bicubic, then horizontal flip) | none (the --resize transform)")
	fs.StringVar(&resize, "resize", "center-crop", "with --augment none: center-crop | squash | none")
	fs.IntVar(&saveEvery, "save-every", 500, "checkpoint every this many optimiser steps (0: only at the end)")
	fs.IntVar(&keep, "keep-checkpoints", 2, "checkpoints kept (0: all)")
	fs.BoolVar(&resume, "resume", false, "continue from the latest checkpoint in --output")
	fs.IntVar(&workers, "workers", 0, "decode workers (0 = number of cores)")
	fs.Int64Var(&maxPixels, "max-pixels", 0, "refuse images with more pixels than this (0 = 178956970, as PIL)")
	fs.StringVar(&imageColumn, "image-column", "", "Parquet column of the images (default image)")
	fs.StringVar(&idColumn, "id-column", "", "Parquet column of the ids")
	inputs, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(inputs) == 0 {
		return fmt.Errorf("%w: pretrain needs INPUT... (files, directories, tar or Parquet)", errUsage)
	}
	if output == "" {
		return fmt.Errorf("%w: pretrain needs --output DIR", errUsage)
	}
	switch augment {
	case "random-resized-crop":
		r.Augment = true
	case "none":
	default:
		return fmt.Errorf("%w: --augment %q: want random-resized-crop or none", errUsage, augment)
	}
	mode, err := stages.ParseResizeMode(resize)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	arch, err := train.Architecture(model)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	res, err := train.Pretrain(e.ctx, train.Job{
		Model: arch, Init: init, Recipe: r, Inputs: inputs, Stdin: e.stdin, Workers: workers,
		Options:    train.Options{Output: output, SaveEvery: saveEvery, Keep: keep, Resume: resume, ProgressTo: e.stderr},
		Sources:    sources.Options{Extensions: imageExtensions, ImageColumn: imageColumn, IDColumn: idColumn},
		Preprocess: stages.Preprocess{Mode: mode, MaxPixels: maxPixels},
	})
	if res != nil && res.Steps > 0 {
		slog.Info("pretrain finished", "steps", res.Steps, "loss", res.Loss, "checkpoint", res.Checkpoint,
			"images", res.Images, "took", res.Elapsed.Round(1e9))
	}
	return err
}

// imageExtensions are what directories and globs contribute to training
// (sidecar files such as .svg or .xml next to wallpapers are skipped).
var imageExtensions = []string{"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}

// parseInterleaved parses flags that may come before or after positional
// arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
