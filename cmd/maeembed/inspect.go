package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/mae"
)

var inspectCommand = commandSpec{
	use:        "inspect [flags] MODEL",
	short:      "Print a checkpoint's tensors, inferred config and parameter count",
	example:    "  maeembed inspect mae_pretrain_vit_base.pth\n  maeembed inspect facebook-vit-mae-base/",
	positional: "model",
	flags:      func(fs *pflag.FlagSet, o *Options) { o.ModelOptions.AddFlags(fs) },
	run:        (*env).inspect,
}

var convertCommand = commandSpec{
	use:        "convert [flags] MODEL --output DIR",
	short:      "Write a checkpoint in the Hugging Face layout (maeembed's own format)",
	example:    "  maeembed convert mae_visualize_vit_base.pth -o vit-mae-base-hf/\n  maeembed convert --float16 run/checkpoint-00010000 -o model-f16/",
	positional: "model",
	flags: func(fs *pflag.FlagSet, o *Options) {
		o.ModelOptions.AddFlags(fs)
		fs.StringVarP(&o.Output, "output", "o", o.Output, "output directory")
		o.ConvertOptions.AddFlags(fs)
	},
	run: (*env).convert,
}

// inspect prints a checkpoint's tensors, the config maeembed infers for it
// and its parameter count.
func (e *env) inspect(o *Options) error {
	path, err := mae.Resolve(e.ctx, o.Model)
	if err != nil {
		return err
	}
	return mae.Inspect(e.stdout, path, o.Model.Config)
}

// convert writes a checkpoint in the Hugging Face layout, which is also
// maeembed's own saved format.
func (e *env) convert(o *Options) error {
	if o.Output == "" {
		return fmt.Errorf("%w: convert needs --output DIR", errUsage)
	}
	if err := o.CheckOutput(o.Output); err != nil {
		return err
	}
	m, err := e.openModel(o, false)
	if err != nil {
		return err
	}
	if err := o.Save(m, o.Output); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d parameters)\n", o.Output, m.NumParams())
	return nil
}
