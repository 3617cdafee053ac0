package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
	"github.com/maeembed/maeembed/train"
)

// pretrainConfig is what pretrain reads from --config-file and flags (YAML
// keys: the flag names in snake case; the recipe's are main_pretrain.py's).
// It trains rather than runs a model, so it is not a run's Options.
type pretrainConfig struct {
	train.Recipe `yaml:",inline"`
	Model        string `yaml:"model"`
	Init         string `yaml:"init"`
	Output       string `yaml:"output"`
	Augment      string `yaml:"augment"`
	Resize       string `yaml:"resize"`
	SaveEvery    int    `yaml:"save_every"`
	Keep         int    `yaml:"keep_checkpoints"`
	Resume       bool   `yaml:"resume"`
	Workers      int    `yaml:"workers"`
	MaxPixels    int64  `yaml:"max_pixels"`
	MemBudget    string `yaml:"memory_budget"`
	// Source holds the input options (extensions, image_column, id_column,
	// image_root), as for embed.
	Source sources.Options `yaml:",inline"`
	Inputs []string        `yaml:"inputs"`
}

// pretrainCommand is the pretrain command: flags into a train.Job;
// everything else lives in package train.
func (e *env) pretrainCommand(args []string) *cobra.Command {
	c := pretrainConfig{Recipe: train.DefaultRecipe(), Model: train.TinyName, Augment: "random-resized-crop", Resize: "center-crop",
		SaveEvery: 500, Keep: 2}
	cmd := &cobra.Command{
		Use:   "pretrain [flags] INPUT...",
		Short: "Pretrain an MAE on images; checkpoints in the Hugging Face layout",
		Long: `pretrain trains a Masked Autoencoder from scratch (or from --init) on the
input images as the reference main_pretrain.py does: AdamW with its weight
decay groups, per-iteration warmup and half-cycle cosine learning rate,
gradient accumulation, seeded masks, crops and shuffles. It writes
checkpoints (OUT/checkpoint-NNNNNNNN, loadable with --model by every
command), metrics.csv and loss.png; inputs that are not usable images are
error rows in OUT/errors. A run interrupted at any moment continues with
--resume exactly where an uninterrupted run would be. INPUT is what embed
takes (files, directories, globs, list files, tar, Parquet).`,
		Example: `  maeembed pretrain --epochs 100 -o run/ photos/
  maeembed pretrain --model mae_vit_base_patch16 --batch-size 32 --accum-iter 8 -o run/ 'shards/*.tar'
  maeembed pretrain --resume -o run/ photos/          # after an interruption
  maeembed embed -m run/checkpoint-00010000 -o emb/ photos/`,
	}
	return configured(cmd, args, &c, []string{"inputs"}, func(fs *pflag.FlagSet) {
		r := &c.Recipe
		fs.StringVarP(&c.Model, "model", "m", c.Model, "architecture: a preset name or an HF-style config.json")
		fs.StringVar(&c.Init, "init", c.Init, "start from this checkpoint's weights (same architecture) instead of the random init")
		fs.StringVarP(&c.Output, "output", "o", c.Output, "directory of checkpoints, metrics.csv, loss.png and errors/")
		fs.IntVar(&r.Epochs, "epochs", r.Epochs, "epochs over the training images")
		fs.Float64Var(&r.WarmupEpochs, "warmup-epochs", r.WarmupEpochs, "epochs of linear lr warmup")
		fs.IntVar(&r.BatchSize, "batch-size", r.BatchSize, "images per iteration")
		fs.IntVar(&r.AccumIter, "accum-iter", r.AccumIter, "iterations of gradient accumulation per optimiser step")
		fs.Float64Var(&r.BLR, "blr", r.BLR, "base learning rate: lr = blr × batch size × accum iter / 256")
		fs.Float64Var(&r.LR, "lr", r.LR, "absolute learning rate (overrides --blr)")
		fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "lower bound of the cosine schedule")
		fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay (not on biases, norms, tokens)")
		fs.Float64Var(&r.MaskRatio, "mask-ratio", r.MaskRatio, "fraction of patches removed")
		fs.BoolVar(&r.NormPixLoss, "norm-pix-loss", r.NormPixLoss, "normalise each target patch by its mean and std")
		fs.Uint64Var(&r.Seed, "seed", r.Seed, "seed of the init, masks, crops, flips and epoch shuffles")
		fs.StringVar(&c.Augment, "augment", c.Augment, "random-resized-crop (crop 0.2–1 of the area, bicubic, then horizontal flip) | none (the --resize transform)")
		fs.StringVar(&c.Resize, "resize", c.Resize, "with --augment none: center-crop | squash | none")
		fs.IntVar(&c.SaveEvery, "save-every", c.SaveEvery, "checkpoint every this many optimiser steps (0: only at the end)")
		fs.IntVar(&c.Keep, "keep-checkpoints", c.Keep, "checkpoints kept (0: all)")
		fs.BoolVar(&c.Resume, "resume", c.Resume, "continue from the latest checkpoint in --output")
		fs.IntVar(&c.Workers, "workers", c.Workers, "decode workers (0 = number of cores)")
		fs.Int64Var(&c.MaxPixels, "max-pixels", c.MaxPixels, "refuse images with more pixels than this (0 = 178956970, as PIL)")
		fs.StringVar(&c.MemBudget, "memory-budget", c.MemBudget, "bound on the training images kept in memory and those being read and decoded; e.g. 4GiB (default 1GiB)")
		inputFlagsOf(fs, &c.Source)
	}, func(inputs []string) error {
		if len(inputs) > 0 {
			c.Inputs = inputs
		}
		return e.pretrain(&c)
	})
}

// pretrain checks the options and runs the training job.
func (e *env) pretrain(c *pretrainConfig) error {
	if len(c.Inputs) == 0 {
		return fmt.Errorf("%w: pretrain needs INPUT... (files, directories, tar or Parquet)", errUsage)
	}
	if c.Output == "" {
		return fmt.Errorf("%w: pretrain needs --output DIR", errUsage)
	}
	if err := checkWorkers(c.Workers); err != nil {
		return err
	}
	r := c.Recipe
	switch c.Augment {
	case "random-resized-crop":
		r.Augment = true
	case "none":
		r.Augment = false
	default:
		return fmt.Errorf("%w: --augment %q: want random-resized-crop or none", errUsage, c.Augment)
	}
	mode, err := stages.ParseResizeMode(c.Resize)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	pre, err := (&Options{Resize: c.Resize, MaxPixels: c.MaxPixels, MemBudget: c.MemBudget}).preprocess()
	if err != nil {
		return err
	}
	arch, err := train.Architecture(c.Model)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	res, err := train.Pretrain(e.ctx, train.Job{
		Model: arch, Init: c.Init, Recipe: r, Inputs: c.Inputs, Stdin: e.stdin, Workers: c.Workers,
		Options:    train.Options{Output: c.Output, SaveEvery: c.SaveEvery, Keep: c.Keep, Resume: c.Resume, ProgressTo: e.stderr},
		Sources:    c.Source,
		Preprocess: stages.Preprocess{Mode: mode, MaxPixels: c.MaxPixels, Budget: pre.Budget},
	})
	if res != nil && res.Steps > 0 {
		slog.Info("pretrain finished", "steps", res.Steps, "loss", res.Loss, "checkpoint", res.Checkpoint,
			"images", res.Images, "took", res.Elapsed.Round(1e9))
	}
	return err
}
