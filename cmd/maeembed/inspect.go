package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
)

// inspect prints a checkpoint's tensors, the config maeembed infers for it
// and its parameter count.
func (e *env) inspect(args []string) error {
	o, err := parseOptions("inspect", args, modelFlags)
	if err != nil {
		return err
	}
	if len(o.Inputs) == 1 {
		o.Model = o.Inputs[0]
	} else if len(o.Inputs) > 1 {
		return fmt.Errorf("%w: inspect takes one MODEL", errUsage)
	}
	path, err := e.resolveModel(o, false)
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
	cfg, cfgErr := mae.ConfigFor(ck, o.Config)
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
func (e *env) convert(args []string) error {
	var half bool
	o, err := parseOptions("convert", args, func(fs *flag.FlagSet, o *Options) {
		modelFlags(fs, o)
		for _, n := range []string{"output", "o"} {
			fs.StringVar(&o.Output, n, o.Output, "output directory")
		}
		fs.BoolVar(&half, "float16", false, "store the weights as float16 (half the size; loading upcasts)")
	})
	if err != nil {
		return err
	}
	if len(o.Inputs) == 1 {
		o.Model = o.Inputs[0]
	} else if len(o.Inputs) > 1 {
		return fmt.Errorf("%w: convert takes one MODEL", errUsage)
	}
	if o.Output == "" {
		return fmt.Errorf("%w: convert needs --output DIR", errUsage)
	}
	m, err := e.openModel(o, false)
	if err != nil {
		return err
	}
	save := weights.SaveHF
	if half {
		save = weights.SaveHFFloat16
	}
	if err := save(o.Output, m.Tensors(), m.Config.HF()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d parameters)\n", o.Output, m.NumParams())
	return nil
}
