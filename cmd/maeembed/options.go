package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/mae/builtin"
	"gopkg.in/yaml.v3"
)

var errHelp = errors.New("help shown")

// Options is the one configuration of a run, filled from a YAML config file
// (--config-file) and then from flags, which override it.
type Options struct {
	Model       string   `yaml:"model"`
	Config      string   `yaml:"config"`
	Output      string   `yaml:"output"`
	Format      string   `yaml:"format"`
	BatchSize   int      `yaml:"batch_size"`
	Workers     int      `yaml:"workers"`
	Resize      string   `yaml:"resize"`
	MaxPixels   int64    `yaml:"max_pixels"`
	CacheDir    string   `yaml:"cache_dir"`
	Pool        string   `yaml:"pool"`
	Shard       string   `yaml:"shard"`
	Resume      bool     `yaml:"resume"`
	FailOnError bool     `yaml:"fail_on_error"`
	DryRun      bool     `yaml:"dry_run"`
	MaskRatio   float64  `yaml:"mask_ratio"`
	Seed        uint64   `yaml:"seed"`
	MaskNoise   string   `yaml:"mask_noise"`
	NormPixLoss autoBool `yaml:"norm_pix_loss"`
	Inputs      []string `yaml:"inputs"`
}

func defaultOptions() Options {
	return Options{
		Model: builtin.Name, Format: "parquet", BatchSize: 8, Resize: "center-crop",
		Pool: "mean", Resume: true, MaskRatio: 0.75,
	}
}

// parseOptions reads --config-file first, then every flag; flags may come
// before or after the positional arguments.
func parseOptions(cmd string, args []string, define func(fs *flag.FlagSet, o *Options)) (*Options, error) {
	o := defaultOptions()
	if cmd == "reconstruct" {
		o.Format = "npy"
	}
	if err := loadConfigFile(args, &o); err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("maeembed "+cmd, flag.ContinueOnError)
	var configFile string
	fs.StringVar(&configFile, "config-file", "", "YAML file with these options (flags override it)")
	define(fs, &o)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		o.Inputs = pos
	}
	return &o, nil
}

// loadConfigFile decodes the --config-file named in args, if any, into dst
// (strictly: an unknown key is a usage error).
func loadConfigFile(args []string, dst any) error {
	path := findConfigFile(args)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %v", errUsage, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: config file %s: %v", errUsage, path, err)
	}
	return nil
}

func findConfigFile(args []string) string {
	for i, a := range args {
		for _, p := range []string{"--config-file=", "-config-file="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v
			}
		}
		if (a == "--config-file" || a == "-config-file") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// modelFlags are the flags every model-running command shares.
func modelFlags(fs *flag.FlagSet, o *Options) {
	for _, n := range []string{"model", "m"} {
		fs.StringVar(&o.Model, n, o.Model, "builtin (the built-in ViT-Tiny MAE), preset name, checkpoint file or Hugging Face directory")
	}
	fs.StringVar(&o.Config, "config", o.Config, "HF-style config.json for a bare weights file")
	fs.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "where presets are downloaded (default $MAEEMBED_CACHE or the user cache dir)")
}

// preprocessFlags are the flags of the read → preprocess → batch stages.
func preprocessFlags(fs *flag.FlagSet, o *Options) {
	fs.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "images per forward pass")
	fs.IntVar(&o.Workers, "workers", o.Workers, "decode/resize workers (0 = number of cores)")
	fs.StringVar(&o.Resize, "resize", o.Resize, "center-crop | squash | none")
	fs.Int64Var(&o.MaxPixels, "max-pixels", o.MaxPixels, "refuse images with more pixels than this (0 = 178956970, as PIL)")
}

func runFlags(fs *flag.FlagSet, o *Options) {
	modelFlags(fs, o)
	for _, n := range []string{"output", "o"} {
		fs.StringVar(&o.Output, n, o.Output, "output directory")
	}
	fs.StringVar(&o.Format, "format", o.Format, "output format")
	preprocessFlags(fs, o)
	fs.BoolVar(&o.FailOnError, "fail-on-error", o.FailOnError, "exit non-zero when any input failed")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "list what would be processed and stop")
}

// autoBool is a boolean option whose default comes from elsewhere (the
// model's config) unless a flag or the YAML file sets it.
type autoBool struct {
	Set, Value bool
}

func (b *autoBool) String() string {
	if b == nil || !b.Set {
		return "auto"
	}
	return strconv.FormatBool(b.Value)
}

// flagValue adapts autoBool to flag.Value (a method named Set would clash
// with the field).
type autoBoolFlag struct{ b *autoBool }

func (f autoBoolFlag) String() string     { return f.b.String() }
func (f autoBoolFlag) Set(s string) error { return f.b.parse(s) }
func (f autoBoolFlag) IsBoolFlag() bool   { return true }

func (b *autoBool) parse(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.Set, b.Value = true, v
	return nil
}

// Or returns the value if set, else def.
func (b autoBool) Or(def bool) bool {
	if b.Set {
		return b.Value
	}
	return def
}

func (b *autoBool) UnmarshalYAML(n *yaml.Node) error { return b.parse(n.Value) }
