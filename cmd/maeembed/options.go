package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
	"github.com/maeembed/maeembed/stream"
)

// Options are the options of the commands that run the model or convert
// it: the config structs of the components, each with its yaml keys and
// its AddFlags, inlined (package config). A command defines the flags of
// its components only, so it accepts only their keys.
type Options struct {
	mae.ModelOptions         `yaml:",inline"`     // model, config, cache_dir, precision
	mae.EmbedOptions         `yaml:",inline"`     // pool
	mae.MaskOptions          `yaml:",inline"`     // mask_ratio, seed, mask_noise, norm_pix_loss
	mae.ConvertOptions       `yaml:",inline"`     // float16, force
	stages.PreprocessOptions `yaml:",inline"`     // resize, max_pixels, memory_budget
	engine.BatchOptions      `yaml:",inline"`     // batch_size, workers, batch_latency, flush_interval
	engine.FileOptions       `yaml:",inline"`     // inputs, output, format, shard, resume, dry_run, fail_on_error, retry_errors
	Parts                    sinks.ParquetOptions `yaml:",inline"` // max_file_rows, max_file_bytes, worker_id
	Source                   sources.Options      `yaml:",inline"` // extensions, image_column, id_column, image_root
	Stream                   stream.Config        `yaml:",inline"` // the consumer, output_topic, dlq_topic, ...
}

func defaultOptions() Options {
	return Options{ModelOptions: mae.DefaultModelOptions(), EmbedOptions: mae.EmbedOptions{Pool: "mean"}, MaskOptions: mae.MaskOptions{MaskRatio: 0.75},
		PreprocessOptions: stages.PreprocessOptions{Resize: "center-crop"},
		BatchOptions:      engine.BatchOptions{BatchSize: 8, BatchLatency: 50 * time.Millisecond, FlushInterval: 10 * time.Second},
		FileOptions:       engine.FileOptions{Format: "parquet", Resume: true}, Stream: stream.DefaultConfig()}
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
	long := s.long
	if runsModel[name] {
		long += kernelEnvHelp
	}
	c := &cobra.Command{Use: s.use, Short: s.short, Long: long, Example: s.example}
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
			// Two models on one line is a mistake, not a precedence rule.
			if c.Flags().Changed("model") {
				return fmt.Errorf("%w: %s got MODEL %q and --model %q: give MODEL once, as the argument or as --model", errUsage, name, pos[0], o.Model.Name)
			}
			o.Model.Name = pos[0]
		}
		return s.run(e, &o)
	})
}

// configured completes c (help, Args) as a command whose options are the
// struct cfg points to. For the command being invoked, the --config-file
// named in args is decoded into cfg (config.Load) before flags defines
// the flags on cfg's fields (with the file's values as defaults), so flags
// override the file; a key that is neither a flag nor one of extra is a
// usage error. The flags the file set are annotated (given tells them,
// and the changed flags, from defaults). run gets the positional arguments.
func configured(c *cobra.Command, args []string, cfg any, extra []string, flags func(fs *pflag.FlagSet), run func(pos []string) error) *cobra.Command {
	name, _, _ := strings.Cut(c.Use, " ")
	var cfgErr error
	var keys config.Keys
	path := ""
	if len(args) > 0 && args[0] == name {
		if path, cfgErr = config.FindFile(args); cfgErr == nil {
			keys, cfgErr = config.Load(path, cfg, "inputs")
		}
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
		if err := config.CheckKeys(fs, keys, extra, path, name); err != nil {
			return err
		}
		for _, k := range keys.Names() {
			if fs.Lookup(strings.ReplaceAll(k, "_", "-")) != nil {
				_ = fs.SetAnnotation(strings.ReplaceAll(k, "_", "-"), fromConfigFile, []string{path})
			}
		}
		return fromFile(run(pos), fs, path)
	}
	return c
}

// fromFile adds to a usage error that names a flag whose value came from
// the config file at path (a key the command line did not override) where
// that value is: the error names the flag, which the user did not type.
func fromFile(err error, fs *pflag.FlagSet, path string) error {
	if err == nil || path == "" || !errors.Is(err, errUsage) {
		return err
	}
	msg := err.Error()
	var keys []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Changed && f.Annotations[fromConfigFile] != nil && namesFlag(msg, f.Name) {
			keys = append(keys, strings.ReplaceAll(f.Name, "-", "_"))
		}
	})
	if len(keys) == 0 {
		return err
	}
	return fmt.Errorf("%w (from key %s of --config-file %s)", err, strings.Join(keys, ", "), path)
}

// namesFlag reports whether msg names --name (not a longer flag that
// starts with it).
func namesFlag(msg, name string) bool {
	flag := "--" + name
	for i := strings.Index(msg, flag); i >= 0; {
		end := i + len(flag)
		if end == len(msg) || !(msg[end] == '-' || msg[end] >= 'a' && msg[end] <= 'z') {
			return true
		}
		j := strings.Index(msg[end:], flag)
		if j < 0 {
			break
		}
		i = end + j
	}
	return false
}

// fromConfigFile annotates the flags whose value the config file gave.
const fromConfigFile = "maeembed/config-file"

// given says whether the option of flag name was given, as a flag or as a
// key of the config file, rather than left at its default.
func given(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && (f.Changed || f.Annotations[fromConfigFile] != nil)
}

// fileFlags are the flags of the file commands (embed, reconstruct);
// formats lists the command's --format values ("a | b"); parts and
// flushNote describe --flush-interval for it (AddFlushFlag).
func fileFlags(fs *pflag.FlagSet, o *Options, formats, parts, flushNote string) {
	o.ModelOptions.AddFlags(fs)
	o.AddPrecisionFlag(fs)
	o.Source.AddFlags(fs)
	o.FileOptions.AddFlags(fs, formats)
	o.BatchOptions.AddFlags(fs)
	o.PreprocessOptions.AddFlags(fs)
	o.AddFlushFlag(fs, parts, flushNote)
}

// batchDefaults are embed's and reconstruct's: --flush-interval 1m, long
// enough for few small parts, short enough that a kill -9 loses little
// work.
func batchDefaults(o *Options) { o.FlushInterval = time.Minute }

// usage marks err, if any, as a usage error; one already marked (e.g.
// engine.CheckOutputNotFile's) is returned as is, so that its message
// says "usage:" once.
func usage(err error) error {
	if err == nil || errors.Is(err, errUsage) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}
