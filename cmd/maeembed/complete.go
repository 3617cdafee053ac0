package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagValues are the words a flag that takes one of a few accepts, for
// shell completion (maeembed completion ...): "COMMAND --FLAG" where the
// commands differ, else "--FLAG". Without them a shell offers file names.
var flagValues = map[string][]string{
	"--precision":          {"fp32", "bf16", "int8"},
	"--pool":               {"cls", "mean", "tokens", "global"},
	"--resize":             {"center-crop", "squash", "none"},
	"embed --format":       {"parquet", "arrow", "npy"},
	"reconstruct --format": {"npy", "parquet", "png"},
	"probe --format":       {"text", "json"},
	"--labels":             {"folder", "column"},
	"--augment":            {"random-resized-crop", "none"},
	"--start-offset":       {"earliest", "latest"},
	"--sasl-mechanism":     {"plain", "scram-sha-256", "scram-sha-512"},
}

// completeFlagValues registers flagValues' completions on every
// subcommand of root that has such a flag.
func completeFlagValues(root *cobra.Command) {
	for _, c := range root.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			vals, ok := flagValues[c.Name()+" --"+f.Name]
			if !ok {
				vals, ok = flagValues["--"+f.Name]
			}
			if ok {
				c.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
			}
		})
	}
}
