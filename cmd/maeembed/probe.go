package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/probe"
)

// probeCommand is the probe command: flags and YAML into a probe.Job. It
// reads embeddings, not images, so its options are not a run's (Options).
func (e *env) probeCommand(args []string) *cobra.Command {
	j := probe.DefaultJob()
	cmd := &cobra.Command{
		Use:   "probe [flags] EMBEDDINGS",
		Short: "kNN and linear-probe accuracy of embeddings, labels from folders or a column",
		Long: `probe measures embeddings (a maeembed output directory or file) the way
the MAE paper does: a weighted kNN vote and a linear classifier trained on
a split of them. Labels come from each id's parent folder (ImageFolder) or
from a Parquet column joined on id.` + kernelEnvHelp,
		Example: `  # labels from folders: the images must be in class folders, photos/CLASS/*.jpg
  maeembed embed -o emb/ photos/ && maeembed probe emb/
  maeembed probe --label-column label --label-file labels.parquet --format json out/`,
	}
	return configured(cmd, args, &j, nil, func(fs *pflag.FlagSet) { j.AddFlags(fs) }, func(inputs []string) error {
		if len(inputs) != 1 {
			return fmt.Errorf("%w: probe takes one EMBEDDINGS path (a maeembed output directory or file)", errUsage)
		}
		return j.Run(inputs[0], e.stdout, version)
	})
}
