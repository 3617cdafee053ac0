package main

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/probe"
)

// probeConfig is what probe reads from --config-file and flags (YAML keys:
// the flag names in snake case).
type probeConfig struct {
	probe.Options `yaml:",inline"`
	Labels        string `yaml:"labels"`
	LabelColumn   string `yaml:"label_column"`
	LabelFile     string `yaml:"label_file"`
	Output        string `yaml:"output"`
	Format        string `yaml:"format"`
	Pixels        string `yaml:"pixels"`
	PixelSize     int    `yaml:"pixel_size"`
}

// probeCommand is the probe command. Its options are not a run's
// (Options): it reads embeddings, so it has its own config, and for the
// invoked command the --config-file named in args is read first, so flags
// override it.
func (e *env) probeCommand(args []string) *cobra.Command {
	c := probeConfig{
		Options: probe.Options{KNN: probe.DefaultKNN, TestFraction: 0.2, Linear: probe.LinearOptions{Epochs: 100, LR: 1e-2, BatchSize: 256}},
		Format:  "text", PixelSize: probe.DefaultPixelSize,
	}
	cmd := &cobra.Command{
		Use:   "probe [flags] EMBEDDINGS",
		Short: "kNN and linear-probe accuracy of embeddings, labels from folders or a column",
		Long: `probe measures embeddings (a maeembed output directory or file) the way
the MAE paper does: a weighted kNN vote and a linear classifier trained on
a split of them. Labels come from each id's parent folder (ImageFolder) or
from a Parquet column joined on id.`,
		Example: `  maeembed probe out/
  maeembed probe --label-column label --label-file labels.parquet --format json out/`,
	}
	return configured(cmd, args, &c, nil, func(fs *pflag.FlagSet) {
		o := &c.Options
		fs.StringVar(&c.Labels, "labels", c.Labels, "where labels come from: folder (the id's parent directory, ImageFolder) or column (default: column when --label-column is set, else folder)")
		fs.StringVar(&c.LabelColumn, "label-column", c.LabelColumn, "Parquet column holding the label, joined on id")
		fs.StringVar(&c.LabelFile, "label-file", c.LabelFile, "Parquet file or directory with id and --label-column (default: the embeddings' own files)")
		fs.IntVar(&o.KNN.K, "k", o.KNN.K, "neighbours of the kNN probe")
		fs.Float64Var(&o.KNN.T, "temperature", o.KNN.T, "temperature of the kNN vote weights exp(sim/T)")
		fs.Float64Var(&o.TestFraction, "test-fraction", o.TestFraction, "share of each class held out for testing")
		fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the split, the head initialisation and the shuffles")
		fs.IntVar(&o.Linear.Epochs, "epochs", o.Linear.Epochs, "epochs of the linear probe")
		fs.Float64Var(&o.Linear.LR, "lr", o.Linear.LR, "peak learning rate of the linear probe (Adam, cosine decay)")
		fs.IntVar(&o.Linear.BatchSize, "batch-size", o.Linear.BatchSize, "rows per step of the linear probe")
		fs.StringVarP(&c.Output, "output", "o", c.Output, "write the trained linear head here (safetensors)")
		fs.StringVar(&c.Format, "format", c.Format, "report format: text | json")
		fs.StringVar(&c.Pixels, "pixels", c.Pixels, "also probe raw pixels of the same images, read from this directory (the embed input root)")
		fs.IntVar(&c.PixelSize, "pixel-size", c.PixelSize, "side of the raw-pixel baseline (pixels resized to S×S)")
	}, func(inputs []string) error { return e.probe(&c, inputs) })
}

// probe measures embeddings with the kNN and linear probes (package probe)
// and prints the report.
func (e *env) probe(c *probeConfig, inputs []string) error {
	o := &c.Options
	if len(inputs) != 1 {
		return fmt.Errorf("%w: probe takes one EMBEDDINGS path (a maeembed output directory or file)", errUsage)
	}
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("%w: --format %q: want text or json", errUsage, c.Format)
	}
	if c.Labels == "" {
		c.Labels = "folder"
		if c.LabelColumn != "" {
			c.Labels = "column"
		}
	}
	if (c.Labels == "column") != (c.LabelColumn != "") || (c.Labels != "column" && c.Labels != "folder") || (c.LabelFile != "" && c.LabelColumn == "") {
		return fmt.Errorf("%w: --labels folder, or --labels column with --label-column NAME (and optionally --label-file)", errUsage)
	}
	if o.Linear.Epochs < 1 || o.Linear.BatchSize < 1 || c.PixelSize < 1 {
		return fmt.Errorf("%w: --epochs, --batch-size and --pixel-size must be positive", errUsage)
	}

	emb, err := probe.Load(inputs[0])
	if err != nil {
		return err
	}
	label := probe.FolderLabel
	if c.Labels == "column" {
		if c.LabelFile == "" {
			c.LabelFile = inputs[0]
		}
		m, err := probe.ReadLabels(c.LabelFile, c.LabelColumn)
		if err != nil {
			return err
		}
		label = func(id string) (string, bool) { l, ok := m[id]; return l, ok }
	}
	ds, err := probe.NewDataset(emb, label)
	if err != nil {
		return fmt.Errorf("%s: %w", inputs[0], err)
	}
	if ds.Unlabelled > 0 {
		slog.Warn("embeddings without a label are left out", "count", ds.Unlabelled)
	}
	var extra []probe.Features
	if c.Pixels != "" {
		x, d, err := probe.PixelFeatures(c.Pixels, ds.IDs, probe.PixelPreprocess(emb.Meta, c.PixelSize))
		if err != nil {
			return err
		}
		extra = append(extra, probe.Features{Name: fmt.Sprintf("pixels%d", c.PixelSize), X: x, D: d})
	}
	rep, err := probe.Evaluate(ds, *o, extra...)
	if err != nil {
		return err
	}
	rep.Model, rep.Pool = emb.Meta["maeembed.model"], emb.Meta["maeembed.pool"]
	if c.Output != "" {
		err := rep.Results[0].Head.Save(c.Output, map[string]string{
			"maeembed.model": rep.Model, "maeembed.pool": rep.Pool,
			"maeembed.probe.test_top1": strconv.FormatFloat(rep.Results[0].LinearTop1, 'g', -1, 64),
			"maeembed.probe.seed":      strconv.FormatUint(o.Seed, 10),
			"maeembed.version":         version,
		})
		if err != nil {
			return err
		}
	}
	if c.Format == "json" {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteText(e.stdout)
}
