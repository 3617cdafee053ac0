package train

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// TinyName is the architecture of maeembed's built-in model: a ViT-Tiny
// encoder (D 192, depth 12, 3 heads, patch 16, image 224) with a decoder
// 128 wide, 4 deep, 4 heads. The decoder is narrower than the encoder, as
// in every configuration of the paper, and 4 blocks deep: on 197 tokens
// it costs about a third of the encoder's 12 blocks on 50, so most of a
// small CPU budget goes to the encoder that embed uses.
const TinyName = "mae_vit_tiny_patch16"

// Architectures are the architectures pretrain builds by name: the
// reference's presets and TinyName.
func Architectures() map[string]mae.Config {
	m := maps.Clone(mae.Presets)
	m[TinyName] = mae.Config{Name: TinyName, ImageSize: 224, PatchSize: 16, Channels: 3,
		Dim: 192, Depth: 12, Heads: 3, MLPDim: 768,
		DecDim: 128, DecDepth: 4, DecHeads: 4, DecMLPDim: 512,
		Eps: 1e-6, MaskRatio: 0.75}
	return m
}

// Architecture resolves --model for pretraining: a name of Architectures
// or an HF-style config.json. One that is neither is a usage error
// (config.ErrUsage); a config.json that is missing or unusable is not:
// it fails at run time, as a missing --model file does in the other
// commands.
func Architecture(nameOrConfig string) (mae.Config, error) {
	if c, ok := Architectures()[nameOrConfig]; ok {
		return c, nil
	}
	if strings.HasSuffix(nameOrConfig, ".json") {
		// "model /x.json: no such file or directory", as embed says it.
		if _, err := os.Stat(nameOrConfig); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return mae.Config{}, fmt.Errorf("model %s: %w", nameOrConfig, err)
		}
		h, err := weights.ReadHFConfig(nameOrConfig)
		if err != nil {
			return mae.Config{}, err
		}
		c := mae.FromHF(h)
		if c.DecDim <= 0 || c.DecDepth <= 0 {
			return mae.Config{}, fmt.Errorf("%s: pretraining needs a decoder (decoder_hidden_size, decoder_num_hidden_layers)", nameOrConfig)
		}
		return c, nil
	}
	return mae.Config{}, fmt.Errorf("%w: model %q: want one of %s or an HF-style config.json", config.ErrUsage, nameOrConfig, strings.Join(slices.Sorted(maps.Keys(Architectures())), ", "))
}

// Job is one pretraining run: what the pretrain command gathers from flags.
type Job struct {
	Model mae.Config // the architecture
	// ModelName is --model as given (a preset name or a config.json
	// path), for the log: a config.json's architecture has no Name.
	// "" = Model.Name.
	ModelName string
	Init      string // checkpoint to start from; "" = the reference's random init
	Recipe    Recipe
	Options   Options
	Inputs    []string
	Stdin     io.Reader
	Sources   sources.Options
	// Preprocess decodes (and, without augmentation, resizes) the inputs;
	// its Size is set to the model's image size.
	Preprocess stages.Preprocess
	Workers    int
	// Begin, if set, is called once the model is built (or Init loaded),
	// before the run takes its output directory: from then on ctx is what
	// stops the run (the pretrain command hands its signals over to the
	// run there; before, a signal ends the process, with nothing taken).
	Begin func()
}

// Pretrain runs a job: it builds the model (random init seeded by the
// recipe's seed, or Init), reads and decodes every input (the unusable
// ones become error rows in OUTPUT/errors/, as embed writes them) and
// trains. Bad configurations fail before anything is written.
func Pretrain(ctx context.Context, j Job) (res *Result, err error) {
	cfg := j.Model
	cfg.NormPixLoss, cfg.MaskRatio = j.Recipe.NormPixLoss, j.Recipe.MaskRatio
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if err := j.Recipe.Validate(); err != nil {
		return nil, err
	}
	if j.Options.Output == "" {
		return nil, errors.New("no --output directory")
	}
	var m *mae.Model
	if j.Init != "" {
		// --init names a model as --model does in every other command
		// (builtin, a preset, a checkpoint file or directory), resolved by
		// the same code; a preset without a decoder is swapped for its
		// official visualize checkpoint, since training needs the decoder.
		path, err := mae.Resolve(ctx, mae.Source{Name: j.Init, NeedDecoder: true})
		if err != nil {
			return nil, fmt.Errorf("--init: %w", err)
		}
		if m, err = mae.Load(path, ""); err != nil {
			return nil, fmt.Errorf("--init: %w", err)
		}
		if !m.HasDecoder() {
			return nil, fmt.Errorf("--init %s has no decoder weights: pretraining trains the decoder too (pass a checkpoint with one, e.g. a pretrain checkpoint)", path)
		}
		got := m.Config
		got.Name, got.NormPixLoss, got.MaskRatio = cfg.Name, cfg.NormPixLoss, cfg.MaskRatio
		if got != cfg {
			return nil, fmt.Errorf("--init %s is a different architecture from the model to train: %s", j.Init, configDiff(got, cfg))
		}
		m.Config = cfg
	} else if m, err = mae.New(cfg, true, j.Recipe.Seed); err != nil {
		return nil, err
	}
	tr, err := NewTrainer(m, j.Recipe)
	if err != nil {
		return nil, err
	}
	if j.Begin != nil {
		j.Begin()
	}
	// Two runs in one directory would interleave checkpoints and
	// metrics.csv, and the "already holds checkpoints" check cannot see a
	// run that has not saved yet: hold the directory for the whole run.
	// A run refused once it read its inputs (e.g. fewer usable images
	// than one batch) leaves no output directory it created: nothing was
	// written in it (error rows would be; then it stays). Deferred before
	// the lock's release, so it runs after it.
	if _, serr := os.Stat(j.Options.Output); errors.Is(serr, os.ErrNotExist) {
		defer func() {
			if err != nil {
				os.Remove(j.Options.Output) // only if empty
			}
		}()
	}
	release, err := sinks.LockOutput(j.Options.Output, "pretrain", "one training run per output directory: give each run its own --output")
	if err != nil {
		return nil, err
	}
	defer release()
	// Holding the directory, no other run is writing in it: temporaries
	// left there are a killed run's (a checkpoint directory being built is
	// as large as the model and optimiser state), never to be published.
	removeStaleTemps(j.Options.Output)
	pre := j.Preprocess
	pre.Size = cfg.ImageSize
	srcOpts := j.Sources
	// An output inside an input directory holds no training images.
	srcOpts.SkipDirs = append(srcOpts.SkipDirs[:len(srcOpts.SkipDirs):len(srcOpts.SkipDirs)], j.Options.Output)
	// Nor does another run's output (reconstruct's PNG panels).
	srcOpts.OtherOutput = sinks.OutputOf
	src, err := sources.OpenWith(j.Inputs, j.Stdin, srcOpts)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// Every run reads every input again and writes an error row for each
	// unusable one, in parts of its own: the rows of earlier runs in this
	// directory (a resumed run's, or one stopped before its first
	// checkpoint) are dropped once this run's are all written, as embed's
	// retry runs drop the rows they supersede, so that each input has one
	// row. A run stopped before then leaves them, and the next one drops
	// them.
	done, err := sinks.ReadDone(j.Options.Output)
	if err != nil {
		return nil, err
	}
	errw, err := sinks.NewErrors(j.Options.Output, sinks.Meta{Model: cfg.Name, Pool: "none", Preprocess: pre.String(), Version: "pretrain", Dim: 1}, sinks.ParquetOptions{})
	if err != nil {
		return nil, err
	}
	var failed atomic.Int64
	ds, err := LoadDataset(ctx, src, pre, j.Recipe.Augment, j.Workers, errw, func(Failure) { failed.Add(1) })
	if err == nil || errors.Is(err, errNoUsableImage) {
		all := func(string) bool { return true }
		if derr := sinks.DropErrorRows(j.Options.Output, done.ErrorParts, all); derr != nil {
			if ds != nil {
				ds.Free()
			}
			return nil, derr
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			// A signal while the training set was read: no step was
			// taken, so there is nothing to resume (a bare "context
			// canceled" said neither).
			return nil, fmt.Errorf("%w while reading the training images, before the first step: rerun to start", ErrInterrupted)
		}
		return nil, err
	}
	if failed.Load() > 0 {
		slog.Warn("some inputs are not usable images (see errors/)", "failed", failed.Load(), "errors", filepath.Join(j.Options.Output, "errors"))
	}
	slog.Info("training set", "images", len(ds.Images), "augment", j.Recipe.Augment,
		"model", cmp.Or(j.ModelName, cfg.Name), "params", m.NumParams(), "lr", j.Recipe.PeakLR(), "effective_batch", j.Recipe.EffectiveBatch(),
		"steps", TotalSteps(len(ds.Images), j.Recipe))
	return Run(ctx, tr, ds, j.Options)
}

// configDiff names the architecture settings in which have (the --init
// checkpoint's) and want (the model to train) differ, by their config.json
// keys: "hidden_size 48 (--init) vs 24 (--model), ...".
func configDiff(have, want mae.Config) string {
	hv, wv := reflect.ValueOf(have), reflect.ValueOf(want)
	var diffs []string
	for i := 0; i < hv.NumField(); i++ {
		if h, w := hv.Field(i).Interface(), wv.Field(i).Interface(); h != w {
			name, _, _ := strings.Cut(hv.Type().Field(i).Tag.Get("json"), ",")
			diffs = append(diffs, fmt.Sprintf("%s %v (--init) vs %v (--model)", name, h, w))
		}
	}
	return strings.Join(diffs, ", ")
}
