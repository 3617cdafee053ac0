package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/builtin"
	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/sources"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// Options is the configuration of a run, filled from a YAML config file
// (--config-file, keys = the command's flag names in snake case) and then
// from flags, which override it. Each command accepts only the keys of its
// own flags.
type Options struct {
	Model       mae.Source `yaml:",inline"`
	Output      string     `yaml:"output"`
	Format      string     `yaml:"format"`
	BatchSize   int        `yaml:"batch_size"`
	Workers     int        `yaml:"workers"`
	Resize      string     `yaml:"resize"`
	MaxPixels   int64      `yaml:"max_pixels"`
	MemBudget   string     `yaml:"memory_budget"`
	Pool        string     `yaml:"pool"`
	Shard       string     `yaml:"shard"`
	Resume      bool       `yaml:"resume"`
	FailOnError bool       `yaml:"fail_on_error"`
	DryRun      bool       `yaml:"dry_run"`
	MaskRatio   float64    `yaml:"mask_ratio"`
	Seed        uint64     `yaml:"seed"`
	MaskNoise   string     `yaml:"mask_noise"`
	NormPixLoss autoBool   `yaml:"norm_pix_loss"`
	MaxFileRows int        `yaml:"max_file_rows"`
	Precision   string     `yaml:"precision"`
	Float16     bool       `yaml:"float16"`
	Force       bool       `yaml:"force"`
	Inputs      []string   `yaml:"inputs"`
	// Source holds the input options (extensions, image_column, id_column,
	// image_root): the sources package's own config, same YAML keys.
	Source sources.Options `yaml:",inline"`

	Stream StreamOptions `yaml:",inline"`
}

// StreamOptions are the settings of stream alone.
type StreamOptions struct {
	Consumer        srckafka.Config `yaml:",inline"`
	OutputTopic     string          `yaml:"output_topic"`
	DLQTopic        string          `yaml:"dlq_topic"`
	MetricsAddr     string          `yaml:"metrics_addr"`
	WorkerID        string          `yaml:"worker_id"`
	BatchLatency    time.Duration   `yaml:"batch_latency"`
	FlushInterval   time.Duration   `yaml:"flush_interval"`
	MaxFileBytes    int64           `yaml:"max_file_bytes"`
	ProduceLinger   time.Duration   `yaml:"produce_linger"`
	ShutdownTimeout time.Duration   `yaml:"shutdown_timeout"`
}

func defaultOptions() Options {
	return Options{
		Model: mae.Source{Name: builtin.Name}, Format: "parquet", BatchSize: 8, Resize: "center-crop",
		Pool: "mean", Resume: true, MaskRatio: 0.75, Precision: "fp32",
		Stream: StreamOptions{Consumer: srckafka.Config{Group: "maeembed", StartOffset: "earliest", MaxInFlight: 512,
			CommitInterval: time.Second, SessionTimeout: 30 * time.Second}, BatchLatency: 50 * time.Millisecond, FlushInterval: 10 * time.Second,
			ProduceLinger: 5 * time.Millisecond, ShutdownTimeout: 20 * time.Second},
	}
}

// commandSpec is one command: its help, its flags and what it runs.
type commandSpec struct {
	use, short, long, example string
	// positional: "inputs" (INPUT...), "model" (one MODEL) or "" (none).
	positional string
	defaults   func(o *Options)
	flags      func(fs *pflag.FlagSet, o *Options)
	extraKeys  []string // YAML keys that have no flag (e.g. inputs)
	run        func(e *env, o *Options) error
}

// command builds the cobra command of s on a run's Options.
func (e *env) command(s commandSpec, args []string) *cobra.Command {
	o := defaultOptions()
	if s.defaults != nil {
		s.defaults(&o)
	}
	name, _, _ := strings.Cut(s.use, " ")
	c := &cobra.Command{Use: s.use, Short: s.short, Long: s.long, Example: s.example}
	c.Args = func(_ *cobra.Command, pos []string) error {
		switch {
		case s.positional == "" && len(pos) > 0:
			return fmt.Errorf("%w: %s takes no INPUT arguments (got %q): it reads --topic", errUsage, name, pos[0])
		case s.positional == "model" && len(pos) > 1:
			return fmt.Errorf("%w: %s takes one MODEL", errUsage, name)
		}
		return nil
	}
	return configured(c, args, &o, s.extraKeys, func(fs *pflag.FlagSet) { s.flags(fs, &o) }, func(pos []string) error {
		switch {
		case s.positional == "inputs" && len(pos) > 0:
			o.Inputs = pos
		case s.positional == "model" && len(pos) == 1:
			o.Model.Name = pos[0]
		}
		return s.run(e, &o)
	})
}

// configured completes c (help, Args) as a command whose options are the
// struct cfg points to, YAML keys = the flag names in snake case. For the
// command being invoked, the --config-file named in args is decoded into
// cfg before flags defines the flags (with cfg's values as defaults), so
// flags override the file; a key that is neither a flag nor one of extra
// is a usage error. run gets the positional arguments.
func configured(c *cobra.Command, args []string, cfg any, extra []string, flags func(fs *pflag.FlagSet), run func(pos []string) error) *cobra.Command {
	name, _, _ := strings.Cut(c.Use, " ")
	var cfgErr error
	var keys []string
	path := ""
	if len(args) > 0 && args[0] == name {
		path = findConfigFile(args)
		keys, cfgErr = loadConfigFile(path, cfg)
	}
	c.SilenceErrors, c.SilenceUsage = true, true
	c.SetFlagErrorFunc(flagError)
	fs := c.Flags()
	fs.SortFlags = false
	fs.String("config-file", "", "YAML file with these options (keys in snake case; flags override it)")
	flags(fs)
	c.RunE = func(_ *cobra.Command, pos []string) error {
		if cfgErr != nil {
			return cfgErr
		}
		if err := checkConfigKeys(fs, keys, extra, path, name); err != nil {
			return err
		}
		return run(pos)
	}
	return c
}

// checkConfigKeys refuses a config file key that is not one of the
// command's own options: a flag of fs (in snake case) or one of extra.
func checkConfigKeys(fs *pflag.FlagSet, keys, extra []string, path, name string) error {
	for _, k := range keys {
		if !slices.Contains(extra, k) && fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil {
			return fmt.Errorf("%w: config file %s: %q is not an option of %s", errUsage, path, k, name)
		}
	}
	return nil
}

// loadConfigFile decodes the YAML file at path (if any) into dst key by
// key and returns its top-level keys. Errors name the key and the file,
// not Go types: a key dst has no field for is "unknown key", a fractional
// number for an integer option is refused (YAML would truncate it), and a
// list option also takes the flags' comma form ("extensions: jpg,png").
func loadConfigFile(path string, dst any) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: config file: %v", errUsage, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: config file %s: %v", errUsage, path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: config file %s: want a mapping of option: value (line %d)", errUsage, path, top.Line)
	}
	var keys []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		if slices.Contains(keys, k) {
			return nil, fmt.Errorf("%w: config file %s: key %s given twice (line %d)", errUsage, path, k, top.Content[i].Line)
		}
		keys = append(keys, k)
		f, ok := yamlField(reflect.ValueOf(dst).Elem(), k)
		if !ok {
			return nil, fmt.Errorf("%w: unknown key %s in config file %s (line %d)", errUsage, k, path, top.Content[i].Line)
		}
		if err := decodeOption(f, k, v); err != nil {
			return nil, fmt.Errorf("%w: config file %s: key %s (line %d): %v", errUsage, path, k, v.Line, err)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// pathLists are list keys whose values are paths, which may hold commas.
var pathLists = []string{"inputs"}

// decodeOption decodes the value v of key into the field f.
func decodeOption(f reflect.Value, key string, v *yaml.Node) error {
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!float" && f.Type() == reflect.TypeOf(time.Duration(0)):
		return fmt.Errorf("want a duration such as 50ms or 10s, got %s", v.Value)
	case v.Kind == yaml.ScalarNode && v.Tag == "!!float" && f.Kind() >= reflect.Int && f.Kind() <= reflect.Uint64:
		return fmt.Errorf("want a whole number, got %s", v.Value)
	case v.Kind == yaml.ScalarNode && f.Type() == reflect.TypeOf([]string(nil)):
		// A list option takes "a,b" like its flag (one path for path lists).
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line}
		vals := []string{v.Value}
		if !slices.Contains(pathLists, key) {
			vals = strings.Split(v.Value, ",")
		}
		for _, s := range vals {
			if s = strings.TrimSpace(s); s != "" {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
			}
		}
		v = seq
	}
	err := v.Decode(f.Addr().Interface())
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// "line 3: cannot unmarshal !!str `abc` into int": the caller names the line.
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = lineRe.ReplaceAllString(m, "")
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

var lineRe = regexp.MustCompile(`^line \d+: `)

// yamlField finds the field of struct v that YAML key maps to, as yaml.v3
// does: the tag's name, else the lower-cased field name; inline structs
// searched in turn; "-" skipped.
func yamlField(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct {
			if f, ok := yamlField(v.Field(i), key); ok {
				return f, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func findConfigFile(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config-file="); ok {
			return v
		}
		if a == "--config-file" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// modelFlags are the flags every model-loading command shares.
func modelFlags(fs *pflag.FlagSet, o *Options) {
	fs.StringVarP(&o.Model.Name, "model", "m", o.Model.Name, "builtin (the built-in ViT-Tiny MAE), preset name, checkpoint file (.pth, .safetensors, .bin) or Hugging Face directory")
	fs.StringVar(&o.Model.Config, "config", o.Model.Config, "HF-style config.json for a bare weights file")
	fs.StringVar(&o.Model.CacheDir, "cache-dir", o.Model.CacheDir, "where presets are downloaded (default $MAEEMBED_CACHE or the user cache dir)")
}

// precisionFlag is the flag of the commands that run the model on images
// (embed, reconstruct, stream); inspect and convert keep the weights as
// they are.
func precisionFlag(fs *pflag.FlagSet, o *Options) {
	fs.StringVar(&o.Precision, "precision", o.Precision, "arithmetic of the model's linear layers: "+strings.Join(kernels.PrecisionNames(), " | "))
}

// preprocessFlags are the flags of the read → preprocess → batch stages.
func preprocessFlags(fs *pflag.FlagSet, o *Options) {
	fs.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "images per forward pass")
	fs.IntVar(&o.Workers, "workers", o.Workers, "decode/resize workers (0 = number of cores)")
	fs.StringVar(&o.Resize, "resize", o.Resize, "center-crop | squash | none")
	fs.Int64Var(&o.MaxPixels, "max-pixels", o.MaxPixels, "refuse images with more pixels than this (0 = 178956970, as PIL)")
	fs.StringVar(&o.MemBudget, "memory-budget", o.MemBudget, "bound on the bytes of images read and being decoded, all workers together; one batch's tensors must fit in it too; e.g. 512MiB (default 1GiB)")
}

// parseBytes reads a size such as 1073741824, 512MiB, 2GiB or 100MB.
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBb")
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "KB": 1e3, "M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9, "T": 1 << 40, "TiB": 1 << 40, "TB": 1e12}[s[len(num):]]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want bytes, optionally with KiB, MiB, GiB (or KB, MB, GB)", s)
	}
	return n * mult, nil
}

// inputFlags are the flags that say what an INPUT holds.
func inputFlags(fs *pflag.FlagSet, o *Options) { inputFlagsOf(fs, &o.Source) }

func inputFlagsOf(fs *pflag.FlagSet, s *sources.Options) {
	fs.Var(&listFlag{v: &s.Extensions}, "extensions", "extensions directories and globs take, comma-separated or repeated (default: "+strings.Join(sources.ImageExtensions, ",")+")")
	fs.StringVar(&s.ImageColumn, "image-column", s.ImageColumn, "Parquet column with the images (default: the first of "+strings.Join(sources.ImageColumns, ", ")+")")
	fs.StringVar(&s.IDColumn, "id-column", s.IDColumn, "Parquet column with the ids, - for none (default: the first of "+strings.Join(sources.IDColumns, ", ")+")")
	fs.StringVar(&s.ImageRoot, "image-root", s.ImageRoot, "directory a Parquet image path may point into (default: the Parquet file's own)")
}

// runFlags are the flags of the file commands (embed, reconstruct);
// formats lists the command's --format values ("a | b").
func runFlags(fs *pflag.FlagSet, o *Options, formats string) {
	modelFlags(fs, o)
	precisionFlag(fs, o)
	inputFlags(fs, o)
	fs.StringVarP(&o.Output, "output", "o", o.Output, "output directory")
	fs.StringVar(&o.Format, "format", o.Format, "output format: "+formats)
	preprocessFlags(fs, o)
	fs.StringVar(&o.Shard, "shard", o.Shard, "process shard i of n (i/n), one per machine")
	fs.BoolVar(&o.FailOnError, "fail-on-error", o.FailOnError, "exit non-zero when any input failed")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "list what would be processed and stop")
	fs.DurationVar(&o.Stream.FlushInterval, "flush-interval", o.Stream.FlushInterval, "publish the current Parquet/Arrow part at least this often (a kill loses at most this much work; 0 = only when full)")
}

// batchFlushInterval is embed's and reconstruct's default --flush-interval:
// long enough for few small parts, short enough that a kill -9 loses
// little work.
const batchFlushInterval = time.Minute

// listFlag is a repeatable, comma-splitting string flag (--topic a --topic b,c).
type listFlag struct {
	v   *[]string
	set bool
}

func (l *listFlag) String() string { return strings.Join(*l.v, ",") }
func (l *listFlag) Type() string   { return "list" }

func (l *listFlag) Set(s string) error {
	if !l.set { // the first flag replaces the config file's list
		*l.v, l.set = nil, true
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
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

// autoBoolFlag adapts autoBool to pflag.Value (a method named Set would
// clash with the field).
type autoBoolFlag struct{ b *autoBool }

func (f autoBoolFlag) String() string     { return f.b.String() }
func (f autoBoolFlag) Set(s string) error { return f.b.parse(s) }
func (f autoBoolFlag) Type() string       { return "bool" }

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
