package train

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Config is a pretraining run as the pretrain command takes it, from
// flags and config-file keys alike (package config; the recipe's keys are
// main_pretrain.py's): the architecture (a preset name or config.json),
// the recipe, the inputs and how they are read and augmented, and where
// checkpoints go.
type Config struct {
	Recipe    `yaml:",inline"`
	Model     string `yaml:"model" config:"path"`
	Init      string `yaml:"init" config:"path"`
	Output    string `yaml:"output" config:"path"`
	Augment   string `yaml:"augment"` // random-resized-crop | none
	Resize    string `yaml:"resize"`  // with Augment none
	SaveEvery int    `yaml:"save_every"`
	Keep      int    `yaml:"keep_checkpoints"`
	Resume    bool   `yaml:"resume"`
	Workers   int    `yaml:"workers"`
	MaxPixels int64  `yaml:"max_pixels"`
	// MemBudget bounds the training images kept in memory and those being
	// read and decoded ("4GiB"; "" = stages.DefaultMemoryBudget).
	MemBudget string `yaml:"memory_budget"`
	// Sources says what the inputs hold, as for embed.
	Sources sources.Options `yaml:",inline"`
	Inputs  []string        `yaml:"inputs" config:"path"`
	// WarmupChosen says --warmup-epochs was given (flag or key), so it is
	// kept even where the default would be scaled (Recipe.ScaleWarmup).
	WarmupChosen bool `yaml:"-"`
}

// DefaultConfig is DefaultRecipe on the built-in architecture with
// augmentation, a checkpoint every 500 steps, the last 2 kept.
func DefaultConfig() Config {
	return Config{Recipe: DefaultRecipe(), Model: TinyName, Augment: "random-resized-crop", Resize: "center-crop", SaveEvery: 500, Keep: 2}
}

// AddFlags adds the flags of c, named as its keys in kebab case (the
// inputs are the command's arguments).
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	r := &c.Recipe
	fs.StringVarP(&c.Model, "model", "m", c.Model, "architecture: a preset name or an HF-style config.json (a value ending in .json is a path: missing, exit status 1; another name, 2)")
	fs.StringVar(&c.Init, "init", c.Init, "start from these weights (same architecture) instead of the random init: builtin, a preset or a checkpoint, as --model names them in the other commands")
	fs.StringVarP(&c.Output, "output", "o", c.Output, "directory of checkpoints, metrics.csv, loss.png and errors/")
	fs.IntVar(&r.Epochs, "epochs", r.Epochs, "epochs over the training images")
	fs.Float64Var(&r.WarmupEpochs, "warmup-epochs", r.WarmupEpochs, "epochs of linear lr warmup (unless given, the default 40 becomes a tenth of --epochs when --epochs is 40 or fewer)")
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
	fs.IntVar(&c.Workers, "workers", c.Workers, fmt.Sprintf("decode workers, at most %d (0 = the default, one per core)", engine.MaxWorkers))
	fs.Int64Var(&c.MaxPixels, "max-pixels", c.MaxPixels, "refuse images with more pixels than this (0 = the default, 178956970: PIL's MAX_IMAGE_PIXELS, above which PIL warns; it refuses above twice that)")
	fs.StringVar(&c.MemBudget, "memory-budget", c.MemBudget, "bound on the training images kept in memory and those being read and decoded; e.g. 4GiB (default 1GiB)")
	c.Sources.AddFlags(fs)
}

// Job checks c (errors wrap config.ErrUsage and name the flag) and returns
// the job to Pretrain, reading "-" from stdin, drawing progress on
// progress.
func (c Config) Job(stdin io.Reader, progress io.Writer) (Job, error) {
	switch {
	case len(c.Inputs) == 0:
		return Job{}, fmt.Errorf("%w: pretrain needs INPUT... (files, directories, tar or Parquet)", config.ErrUsage)
	case c.Output == "":
		return Job{}, fmt.Errorf("%w: pretrain needs --output DIR", config.ErrUsage)
	case c.Workers < 0 || c.Workers > engine.MaxWorkers:
		return Job{}, fmt.Errorf("%w: --workers %d: must be 0 (one per core) to %d", config.ErrUsage, c.Workers, engine.MaxWorkers)
	case c.SaveEvery < 0:
		return Job{}, fmt.Errorf("%w: --save-every %d: want 0 (only at the end) or more", config.ErrUsage, c.SaveEvery)
	case c.Keep < 0:
		return Job{}, fmt.Errorf("%w: --keep-checkpoints %d: want 0 (all) or more", config.ErrUsage, c.Keep)
	}
	if err := engine.CheckOutputNotFile(c.Output); err != nil {
		return Job{}, err
	}
	r, scaled := c.Recipe.ScaleWarmup(c.WarmupChosen)
	if scaled {
		slog.Info("warmup scaled to a tenth of --epochs (pass --warmup-epochs to choose)", "epochs", r.Epochs, "warmup_epochs", r.WarmupEpochs)
	}
	if err := r.Validate(); err != nil {
		return Job{}, fmt.Errorf("%w: %v", config.ErrUsage, err)
	}
	switch c.Augment {
	case "random-resized-crop":
		r.Augment = true
	case "none":
		r.Augment = false
	default:
		return Job{}, fmt.Errorf("%w: --augment %q: want random-resized-crop or none", config.ErrUsage, c.Augment)
	}
	pre, err := stages.PreprocessOptions{Resize: c.Resize, MaxPixels: c.MaxPixels, MemBudget: c.MemBudget}.Preprocess()
	if err != nil {
		return Job{}, fmt.Errorf("%w: %v", config.ErrUsage, err)
	}
	arch, err := Architecture(c.Model)
	if err != nil {
		return Job{}, err // usage only for a --model that names nothing
	}
	// As embed and reconstruct do: a budget one batch cannot fit in would
	// fail every image (or never start a step), so refuse it before reading.
	if b := pre.Budget; b != nil {
		if need := arch.BatchBytes(r.BatchSize, true); need > b.Size() {
			return Job{}, fmt.Errorf("%w: --batch-size %d: its tensors take about %s, more than the memory budget of %s (lower --batch-size or raise --memory-budget)",
				config.ErrUsage, r.BatchSize, stages.FormatBytes(need), stages.FormatBytes(b.Size()))
		}
	}
	return Job{
		Model: arch, ModelName: c.Model, Init: c.Init, Recipe: r, Inputs: c.Inputs, Stdin: stdin, Workers: c.Workers,
		Options:    Options{Output: c.Output, SaveEvery: c.SaveEvery, Keep: c.Keep, Resume: c.Resume, ProgressTo: progress},
		Sources:    c.Sources,
		Preprocess: pre,
	}, nil
}
