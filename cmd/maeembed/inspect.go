package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
)

var inspectCommand = commandSpec{
	use:   "inspect [flags] [MODEL]",
	short: "Print a checkpoint's tensors, inferred config and parameter count",
	long: `inspect loads a checkpoint without running it and prints its format, its
parameter count, the MAE config maeembed infers for it (or reads from
config.json) and its tensors (name and shape), or why it is not a
loadable MAE.
MODEL is what --model takes everywhere: builtin, a preset name, a
checkpoint file (.pth, .safetensors, .bin; --config for a bare weights
file) or a Hugging Face directory. Give it once, as the argument or as
--model; without either, inspect shows the built-in model (builtin), as
every command runs it by default.`,
	example: `  maeembed inspect mae_pretrain_vit_base.pth
  maeembed inspect facebook-vit-mae-base/
  maeembed inspect --config config.json weights.safetensors
  maeembed inspect mae_vit_base_patch16          # a preset, downloaded once
  maeembed inspect                               # the built-in model`,
	positional: "model",
	flags:      func(fs *pflag.FlagSet, o *Options) { o.ModelOptions.AddFlags(fs) },
	run:        (*env).inspect,
}

var convertCommand = commandSpec{
	use:   "convert [flags] [MODEL] --output DIR",
	short: "Write a checkpoint in the Hugging Face layout (maeembed's own format)",
	long: `convert loads a checkpoint (the reference .pth, a safetensors or
pytorch_model.bin file, a Hugging Face directory, a preset or a pretrain
checkpoint) and writes it to --output in the Hugging Face layout
(config.json and model.safetensors), which every command loads with
--model and transformers loads as ViTMAEForPreTraining. The directory is
written whole and then renamed into place; an existing, non-empty one is
refused unless --force. One convert at a time writes into a directory: a
second one meanwhile is refused (the first holds .DIR.convert-lock beside
it). --float16 halves the size (loading upcasts).
Give MODEL once, as the argument or as --model; without either, convert
writes the built-in model (builtin).`,
	example: `  maeembed convert mae_visualize_vit_base.pth -o vit-mae-base-hf/
  maeembed convert --float16 run/checkpoint-00010000 -o model-f16/
  maeembed convert --config config.json weights.bin -o model/`,
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
	// A file there is a usage error, as embed's --output FILE is (and
	// --force replaces a directory's checkpoint files, not a file).
	if err := engine.CheckOutputNotFile(o.Output); err != nil {
		return err
	}
	// One convert at a time into a directory, for the whole conversion:
	// two --force converts would otherwise each replace its files, leaving
	// one's model.safetensors beside the other's config.json.
	release, err := weights.LockConvert(o.Output)
	if err != nil {
		return err
	}
	defer release()
	// A convert killed while writing (kill -9) left its temporaries beside
	// or in the destination; only those no live process holds and that
	// stopped changing are removed (a convert of an earlier version takes
	// no lock).
	weights.RemoveStaleTemps(o.Output)
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
