package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
)

var inspectCommand = commandSpec{
	use:        "inspect [flags] MODEL",
	short:      "Print a checkpoint's tensors, inferred config and parameter count",
	example:    "  maeembed inspect mae_pretrain_vit_base.pth\n  maeembed inspect facebook-vit-mae-base/",
	positional: "model",
	flags:      modelFlags,
	run:        (*env).inspect,
}

var convertCommand = commandSpec{
	use:        "convert [flags] MODEL --output DIR",
	short:      "Write a checkpoint in the Hugging Face layout (maeembed's own format)",
	example:    "  maeembed convert mae_visualize_vit_base.pth -o vit-mae-base-hf/\n  maeembed convert --float16 run/checkpoint-00010000 -o model-f16/",
	positional: "model",
	flags: func(fs *pflag.FlagSet, o *Options) {
		modelFlags(fs, o)
		fs.StringVarP(&o.Output, "output", "o", o.Output, "output directory")
		fs.BoolVar(&o.Float16, "float16", o.Float16, "store the weights as float16 (half the size; loading upcasts)")
		fs.BoolVar(&o.Force, "force", o.Force, "replace the checkpoint files in an existing, non-empty --output directory")
	},
	run: (*env).convert,
}

// inspect prints a checkpoint's tensors, the config maeembed infers for it
// and its parameter count.
func (e *env) inspect(o *Options) error {
	path, err := mae.Resolve(e.ctx, e.modelSource(o, false))
	if err != nil {
		return err
	}
	start := time.Now()
	ck, err := weights.Load(path)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ck.Tensors))
	shapes := map[string][]int{}
	total := 0
	for n, t := range ck.Tensors {
		names = append(names, n)
		shapes[n] = t.Shape
		total += len(t.Data)
	}
	sort.Strings(names)
	fmt.Fprintf(e.stdout, "checkpoint  %s\nformat      %s\ntensors     %d\nparameters  %d (%.1fM)\nload time   %s\n",
		path, ck.Format, len(names), total, float64(total)/1e6, time.Since(start).Round(time.Millisecond))
	cfg, cfgErr := mae.ConfigFor(ck, o.Model.Config)
	if cfgErr == nil {
		if _, err := mae.FromTensors(cfg, ck.Tensors, path); err != nil {
			cfgErr = err
		}
	}
	if cfgErr != nil {
		fmt.Fprintf(e.stdout, "config      not a loadable MAE: %v\n", cfgErr)
	} else {
		b, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Fprintf(e.stdout, "config      %s\n", b)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%v\n", n, shapes[n])
	}
	tw.Flush()
	return cfgErr
}

// convert writes a checkpoint in the Hugging Face layout, which is also
// maeembed's own saved format.
func (e *env) convert(o *Options) error {
	if o.Output == "" {
		return fmt.Errorf("%w: convert needs --output DIR", errUsage)
	}
	if !o.Force {
		// A new directory is written whole and renamed into place; an
		// existing one would have its files replaced, so that must be asked for.
		switch ents, err := os.ReadDir(o.Output); {
		case err == nil && len(ents) > 0:
			return fmt.Errorf("%w: convert: --output %s exists and is not empty (--force replaces its checkpoint files)", errUsage, o.Output)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("convert: --output: %w", err)
		}
	}
	m, err := e.openModel(o, false)
	if err != nil {
		return err
	}
	save := weights.SaveHF
	if o.Float16 {
		save = weights.SaveHFFloat16
	}
	if err := save(o.Output, m.Tensors(), m.Config.HF()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d parameters)\n", o.Output, m.NumParams())
	return nil
}
