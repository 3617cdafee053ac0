package probe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
)

// Job is a probe of one embeddings output as the probe command runs it,
// from flags and config-file keys alike (package config): the probes'
// Options, where labels come from (the ids' folders, or a Parquet column
// joined on id), an optional raw-pixel baseline, the report format, and
// where the trained linear head is saved.
type Job struct {
	Options     `yaml:",inline"`
	Labels      string `yaml:"labels"` // folder | column ("" = column when LabelColumn is set)
	LabelColumn string `yaml:"label_column"`
	LabelFile   string `yaml:"label_file" config:"path"` // default: the embeddings' own files
	Output      string `yaml:"output" config:"path"`     // the linear head (safetensors); "" = not saved
	Format      string `yaml:"format"`                   // text | json
	Pixels      string `yaml:"pixels" config:"path"`     // the images' root, for the raw-pixel baseline
	PixelSize   int    `yaml:"pixel_size"`
}

// DefaultJob is DINO's kNN, MAE's linear probe (100 epochs, lr 1e-2, batch
// 256) on a 20% test split, a text report.
func DefaultJob() Job {
	return Job{Options: Options{KNN: DefaultKNN, TestFraction: 0.2, Linear: LinearOptions{Epochs: 100, LR: 1e-2, BatchSize: 256}},
		Format: "text", PixelSize: DefaultPixelSize}
}

// AddFlags adds the job's flags, named as its yaml keys in kebab case.
func (j *Job) AddFlags(fs *pflag.FlagSet) {
	o := &j.Options
	fs.StringVar(&j.Labels, "labels", j.Labels, "where labels come from: folder (the id's parent directory, ImageFolder) or column (default: column when --label-column is set, else folder)")
	fs.StringVar(&j.LabelColumn, "label-column", j.LabelColumn, "Parquet column holding the label, joined on id")
	fs.StringVar(&j.LabelFile, "label-file", j.LabelFile, "Parquet file or directory with id and --label-column (default: the embeddings' own files)")
	fs.IntVar(&o.KNN.K, "k", o.KNN.K, "neighbours of the kNN probe")
	fs.Float64Var(&o.KNN.T, "temperature", o.KNN.T, "temperature of the kNN vote weights exp(sim/T)")
	fs.Float64Var(&o.TestFraction, "test-fraction", o.TestFraction, "share of each class held out for testing, in (0, 1)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the split, the head initialisation and the shuffles")
	fs.IntVar(&o.Linear.Epochs, "epochs", o.Linear.Epochs, "epochs of the linear probe")
	fs.Float64Var(&o.Linear.LR, "lr", o.Linear.LR, "peak learning rate of the linear probe (Adam, cosine decay)")
	fs.IntVar(&o.Linear.BatchSize, "batch-size", o.Linear.BatchSize, "rows per step of the linear probe")
	fs.StringVarP(&j.Output, "output", "o", j.Output, "write the trained linear head here (safetensors)")
	fs.StringVar(&j.Format, "format", j.Format, "report format: text | json")
	fs.StringVar(&j.Pixels, "pixels", j.Pixels, "also probe raw pixels of the same images, read from this directory (the embed input root)")
	fs.IntVar(&j.PixelSize, "pixel-size", j.PixelSize, "side of the raw-pixel baseline (pixels resized to S×S)")
}

// validate checks the options (errors wrap config.ErrUsage) and settles
// Labels.
func (j *Job) validate() error {
	if j.Format != "text" && j.Format != "json" {
		return fmt.Errorf("%w: --format %q: want text or json", config.ErrUsage, j.Format)
	}
	if j.Labels == "" {
		j.Labels = "folder"
		if j.LabelColumn != "" {
			j.Labels = "column"
		}
	}
	if (j.Labels == "column") != (j.LabelColumn != "") || (j.Labels != "column" && j.Labels != "folder") || (j.LabelFile != "" && j.LabelColumn == "") {
		return fmt.Errorf("%w: --labels folder, or --labels column with --label-column NAME (and optionally --label-file)", config.ErrUsage)
	}
	for _, f := range []struct {
		flag string
		v    int
	}{{"--epochs", j.Linear.Epochs}, {"--batch-size", j.Linear.BatchSize}, {"--pixel-size", j.PixelSize}} {
		if f.v < 1 {
			return fmt.Errorf("%w: %s %d: want 1 or more", config.ErrUsage, f.flag, f.v)
		}
	}
	// The head is a file: refuse a directory before the work, not when
	// saving its result.
	if j.Output != "" {
		if st, err := os.Stat(j.Output); (err == nil && st.IsDir()) || strings.HasSuffix(j.Output, "/") {
			return fmt.Errorf("%w: --output %s is a directory: give the head's file name, e.g. %s", config.ErrUsage, j.Output, filepath.Join(j.Output, "head.safetensors"))
		}
	}
	// The library reads zeros as its defaults; from a flag they are
	// mistakes, so they are refused here, with the range.
	switch {
	case !(j.TestFraction > 0 && j.TestFraction < 1):
		return fmt.Errorf("%w: --test-fraction %v: want a value in (0, 1)", config.ErrUsage, j.TestFraction)
	case j.KNN.K < 1:
		return fmt.Errorf("%w: --k %d: want 1 or more", config.ErrUsage, j.KNN.K)
	case !(j.KNN.T > 0) || math.IsInf(j.KNN.T, 1):
		return fmt.Errorf("%w: --temperature %v: want a positive number", config.ErrUsage, j.KNN.T)
	case !(j.Linear.LR > 0) || math.IsInf(j.Linear.LR, 1):
		return fmt.Errorf("%w: --lr %v: want a positive number", config.ErrUsage, j.Linear.LR)
	}
	return nil
}

// Run probes the embeddings at path (a maeembed output directory or file),
// writes the report to w and saves the head if j.Output is set (its
// metadata records version). Bad options, and a path that does not exist,
// are usage errors (config.ErrUsage), found before any work.
func (j Job) Run(path string, w io.Writer, version string) error {
	if err := j.validate(); err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: EMBEDDINGS %s does not exist", config.ErrUsage, path)
	}
	emb, err := Load(path)
	if err != nil {
		return err
	}
	label := FolderLabel
	if j.Labels == "column" {
		if j.LabelFile == "" {
			j.LabelFile = path
		}
		m, err := ReadLabels(j.LabelFile, j.LabelColumn)
		if err != nil {
			return err
		}
		label = func(id string) (string, bool) { l, ok := m[id]; return l, ok }
	}
	ds, err := NewDataset(emb, label)
	if errors.Is(err, ErrNoLabels) && j.Labels != "column" {
		// Embeddings of a flat folder (the quickstart's): say what folder
		// labels need, and the other way to give them.
		return fmt.Errorf("%s: %w: labels from folders need images in class folders (embed DIR with DIR/CLASS/IMAGE; an id's parent folder is its class), or give --label-column and --label-file", path, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if ds.Unlabelled > 0 {
		slog.Warn("embeddings without a label are left out", "count", ds.Unlabelled)
	}
	var extra []Features
	if j.Pixels != "" {
		x, d, err := PixelFeatures(j.Pixels, ds.IDs, PixelPreprocess(emb.Meta, j.PixelSize))
		if err != nil {
			return err
		}
		extra = append(extra, Features{Name: fmt.Sprintf("pixels%d", j.PixelSize), X: x, D: d})
	}
	rep, err := Evaluate(ds, j.Options, extra...)
	if err != nil {
		return err
	}
	rep.Model, rep.Pool = emb.Meta["maeembed.model"], emb.Meta["maeembed.pool"]
	if j.Output != "" {
		if err := os.MkdirAll(filepath.Dir(j.Output), 0o755); err != nil {
			return fmt.Errorf("save the head: %w", err)
		}
		err := rep.Results[0].Head.Save(j.Output, map[string]string{
			"maeembed.model": rep.Model, "maeembed.pool": rep.Pool,
			"maeembed.probe.test_top1": strconv.FormatFloat(rep.Results[0].LinearTop1, 'g', -1, 64),
			"maeembed.probe.seed":      strconv.FormatUint(j.Seed, 10),
			"maeembed.version":         version,
		})
		if err != nil {
			return err
		}
	}
	if j.Format == "json" {
		return rep.WriteJSON(w)
	}
	return rep.WriteText(w)
}
