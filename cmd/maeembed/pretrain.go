package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/train"
)

// pretrainCommand is the pretrain command: flags and YAML into a
// train.Config; everything else lives in package train.
func (e *env) pretrainCommand(args []string) *cobra.Command {
	c := train.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "pretrain [flags] INPUT...",
		Short: "Pretrain an MAE on images; checkpoints in the Hugging Face layout",
		Long: `pretrain trains a Masked Autoencoder from scratch (or from --init) on the
input images as the reference main_pretrain.py does: AdamW with its weight
decay groups, per-iteration warmup and half-cycle cosine learning rate,
gradient accumulation, seeded masks, crops and shuffles. It writes
checkpoints (OUT/checkpoint-NNNNNNNN, loadable with --model by every
command), metrics.csv and loss.png; inputs that are not usable images are
error rows in OUT/errors. A run interrupted at any moment continues with
--resume exactly where an uninterrupted run would be. INPUT is what embed
takes (files, directories, globs, list files, tar, Parquet).` + kernelEnvHelp,
		Example: `  maeembed pretrain --epochs 100 -o run/ photos/
  maeembed pretrain --model mae_vit_base_patch16 --batch-size 32 --accum-iter 8 -o run/ 'shards/*.tar'
  maeembed pretrain --resume -o run/ photos/          # after an interruption
  maeembed embed -m run/checkpoint-00010000 -o emb/ photos/`,
	}
	return configured(cmd, args, &c, []string{"inputs"}, func(fs *pflag.FlagSet) { c.AddFlags(fs) }, func(inputs []string) error {
		// Until the run takes its output directory (the model is built or
		// --init loads), a signal ends the process with status 1: nothing
		// is written yet (engine.Startup).
		startup := engine.WatchStartup(exitInterrupted)
		defer startup.Release()
		if len(inputs) > 0 {
			c.Inputs = inputs
		}
		if err := sources.CheckExtensions(c.Sources.Extensions); err != nil {
			return usage(err)
		}
		c.WarmupChosen = given(cmd.Flags(), "warmup-epochs")
		job, err := c.Job(e.stdin, e.stderr)
		if err != nil {
			return err
		}
		// Once the run takes its output directory (job.Begin), the first
		// SIGINT/SIGTERM stops reading the training set, or ends training
		// before its first step, writing nothing, or after the current
		// step, with a checkpoint (train.Run checks its context between
		// steps); a second one stops at once, like a kill: the checkpoints
		// already published are whole (written aside, then renamed), and
		// the temporaries of the one in progress are removed by the next
		// run.
		stop := startup.OnSignals(e.ctx, 0, os.Interrupt, syscall.SIGTERM)
		defer stop.Release()
		job.Begin = stop.Own
		go func() {
			<-stop.Abort.Done()
			if context.Cause(stop.Abort) == engine.ErrInterrupted {
				fmt.Fprintf(e.stderr, "maeembed pretrain: %v; --resume continues from the last checkpoint\n", engine.ErrInterrupted)
				os.Exit(1)
			}
		}()
		res, err := train.Pretrain(stop.Drain, job)
		if res != nil && res.Steps > 0 {
			msg := "pretrain finished"
			if err != nil {
				msg = "pretrain stopped" // interrupted or failed: the error says why
			}
			slog.Info(msg, "steps", res.Steps, "loss", res.Loss, "checkpoint", res.Checkpoint,
				"images", res.Images, "took", res.Elapsed.Round(1e9))
		}
		return err
	})
}
