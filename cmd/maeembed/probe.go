package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/maeembed/maeembed/probe"
)

// probeCmd measures embeddings with the kNN and linear probes (package
// probe) and prints the report; flags only.
func (e *env) probeCmd(args []string) error {
	var (
		labels, labelColumn, labelFile string
		output, format, pixels         string
		pixelSize                      int
		o                              = probe.Options{KNN: probe.DefaultKNN, TestFraction: 0.2}
	)
	opts, err := parseOptions("probe", args, func(fs *flag.FlagSet, _ *Options) {
		fs.StringVar(&labels, "labels", "", "where labels come from: folder (the id's parent directory, ImageFolder) or column (default: column when --label-column is set, else folder)")
		fs.StringVar(&labelColumn, "label-column", "", "Parquet column holding the label, joined on id")
		fs.StringVar(&labelFile, "label-file", "", "Parquet file or directory with id and --label-column (default: the embeddings' own files)")
		fs.IntVar(&o.KNN.K, "k", o.KNN.K, "neighbours of the kNN probe")
		fs.Float64Var(&o.KNN.T, "temperature", o.KNN.T, "temperature of the kNN vote weights exp(sim/T)")
		fs.Float64Var(&o.TestFraction, "test-fraction", o.TestFraction, "share of each class held out for testing")
		fs.Uint64Var(&o.Seed, "seed", 0, "seed of the split, the head initialisation and the shuffles")
		fs.IntVar(&o.Linear.Epochs, "epochs", 100, "epochs of the linear probe")
		fs.Float64Var(&o.Linear.LR, "lr", 1e-2, "peak learning rate of the linear probe (Adam, cosine decay)")
		fs.IntVar(&o.Linear.BatchSize, "batch-size", 256, "rows per step of the linear probe")
		for _, n := range []string{"output", "o"} {
			fs.StringVar(&output, n, "", "write the trained linear head here (safetensors)")
		}
		fs.StringVar(&format, "format", "text", "report format: text | json")
		fs.StringVar(&pixels, "pixels", "", "also probe raw pixels of the same images, read from this directory (the embed input root)")
		fs.IntVar(&pixelSize, "pixel-size", probe.DefaultPixelSize, "side of the raw-pixel baseline (pixels resized to S×S)")
	})
	if err != nil {
		return err
	}
	if len(opts.Inputs) != 1 {
		return fmt.Errorf("%w: probe takes one EMBEDDINGS path (a maeembed output directory or file)", errUsage)
	}
	if format != "text" && format != "json" {
		return fmt.Errorf("%w: --format %q: want text or json", errUsage, format)
	}
	if labels == "" {
		labels = "folder"
		if labelColumn != "" {
			labels = "column"
		}
	}
	if (labels == "column") != (labelColumn != "") || (labels != "column" && labels != "folder") || (labelFile != "" && labelColumn == "") {
		return fmt.Errorf("%w: --labels folder, or --labels column with --label-column NAME (and optionally --label-file)", errUsage)
	}
	if o.Linear.Epochs < 1 || o.Linear.BatchSize < 1 || pixelSize < 1 {
		return fmt.Errorf("%w: --epochs, --batch-size and --pixel-size must be positive", errUsage)
	}

	emb, err := probe.Load(opts.Inputs[0])
	if err != nil {
		return err
	}
	label := probe.FolderLabel
	if labels == "column" {
		if labelFile == "" {
			labelFile = opts.Inputs[0]
		}
		m, err := probe.ReadLabels(labelFile, labelColumn)
		if err != nil {
			return err
		}
		label = func(id string) (string, bool) { l, ok := m[id]; return l, ok }
	}
	ds, err := probe.NewDataset(emb, label)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Inputs[0], err)
	}
	if ds.Unlabelled > 0 {
		slog.Warn("embeddings without a label are left out", "count", ds.Unlabelled)
	}
	var extra []probe.Features
	if pixels != "" {
		x, d, err := probe.PixelFeatures(pixels, ds.IDs, probe.PixelPreprocess(emb.Meta, pixelSize))
		if err != nil {
			return err
		}
		extra = append(extra, probe.Features{Name: fmt.Sprintf("pixels%d", pixelSize), X: x, D: d})
	}
	rep, err := probe.Evaluate(ds, o, extra...)
	if err != nil {
		return err
	}
	rep.Model, rep.Pool = emb.Meta["maeembed.model"], emb.Meta["maeembed.pool"]
	if output != "" {
		err := rep.Results[0].Head.Save(output, map[string]string{
			"maeembed.model": rep.Model, "maeembed.pool": rep.Pool,
			"maeembed.probe.test_top1": strconv.FormatFloat(rep.Results[0].LinearTop1, 'g', -1, 64),
			"maeembed.probe.seed":      strconv.FormatUint(o.Seed, 10),
			"maeembed.version":         version,
		})
		if err != nil {
			return err
		}
	}
	if format == "json" {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteText(e.stdout)
}
