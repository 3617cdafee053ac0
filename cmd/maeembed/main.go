// Command maeembed turns images into Masked Autoencoder embeddings and
// reconstructions. See the README for the commands and their flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/mae/kernels"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	// Signals are the engine's (engine.OnSignals, one owner per run):
	// before a run starts, SIGINT/SIGTERM end the process as usual.
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks errors that came from bad command-line input.
var errUsage = config.ErrUsage

// run is main without the process: tests call it directly. Exit codes: 0
// done, 1 failed, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := e.rootCommand(args)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	name := "maeembed"
	if cmd != nil && cmd != root {
		name += " " + cmd.Name()
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if errors.Is(err, errUsage) || strings.HasPrefix(err.Error(), "unknown command") {
		if cmd == root {
			fmt.Fprintf(stderr, "\n%s", root.UsageString())
		}
		return 2
	}
	return 1
}

type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
}

// rootCommand is the command tree; args (the whole command line) let the
// invoked command read its --config-file before its flags are defined.
func (e *env) rootCommand(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "maeembed",
		Short: "Masked Autoencoder (MAE) embeddings and reconstructions of images",
		Long: `maeembed turns images into embeddings and reconstructions with a Masked
Autoencoder (He et al. 2021). It reads image files, directories, globs, list
files, tar/WebDataset shards, Parquet datasets or a Kafka topic, runs the
ViT encoder (and decoder) on the CPU, and writes Parquet, Arrow, npy, PNG or
Kafka messages.

Exit status:
  0  done (inputs that failed are rows in OUT/errors, unless --fail-on-error)
  1  failed: every input failed (or any, with --fail-on-error), interrupted
     (stream: once it consumes, its first signal drains and exits 0, a
     second signal or --shutdown-timeout aborts and exits 1), the model did
     not load, the output directory refused the run
  2  usage error, before any input is processed: a command, flag or value
     that is wrong; an INPUT or --config-file that does not exist (or a
     --config-file given twice, or empty); a --mask-noise file that
     cannot be used (missing, not a float npy file, a shape that does
     not fit, a value that is not finite); a --model
     name that is no file, builtin nor a preset; an --output that is a
     file; a bad MAEEMBED_KERNEL or MAEEMBED_STRASSEN value. A --model
     value that names nothing on disk is a path, and missing (1), when it
     holds a "/" or ends in .pth, .safetensors or .bin; else it is a name
     (2). pretrain's --model is a preset name or a file ending in .json:
     such a file missing is 1, any other value 2 (a "/" or an existing
     file without .json too)`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return fmt.Errorf("%w: a command is needed", errUsage)
		},
	}
	root.SetFlagErrorFunc(flagError)
	root.PersistentPreRunE = checkKernelEnv
	root.SetVersionTemplate("maeembed {{.Version}}\n")
	for _, s := range []commandSpec{embedCommand, reconstructCommand, streamCommand} {
		root.AddCommand(e.command(s, args))
	}
	root.AddCommand(e.pretrainCommand(args), e.probeCommand(args))
	for _, s := range []commandSpec{inspectCommand, convertCommand} {
		root.AddCommand(e.command(s, args))
	}
	root.AddCommand(&cobra.Command{
		Use: "version", Short: "Print the version", Args: cobra.NoArgs,
		Run: func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "maeembed", version) },
	})
	completeFlagValues(root)
	root.SetOut(e.stdout) // the completion scripts are written to what is set now
	root.SetErr(e.stderr)
	strictCompletion(root, args)
	return root
}

// strictCompletion makes "maeembed completion" without a shell it knows
// a usage error (exit 2), as an unknown command is: cobra's own prints
// its help and succeeds, so "completion tcsh > file" looked like it
// worked.
func strictCompletion(root *cobra.Command, args []string) {
	root.InitDefaultCompletionCmd(args...)
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, s := range c.Commands() {
			shells = append(shells, s.Name())
		}
		want := strings.Join(shells, ", ")
		c.Args = func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unknown shell %q: want one of %s", errUsage, args[0], want)
			}
			return nil
		}
		c.RunE = func(*cobra.Command, []string) error {
			return fmt.Errorf("%w: completion needs a shell: one of %s (maeembed completion --help)", errUsage, want)
		}
	}
}

// kernelEnvHelp ends the help of the commands that run a model: the
// environment switches are read at start-up, so they have no flags.
const kernelEnvHelp = `

Environment:
  MAEEMBED_KERNEL=avx512|avx2|generic  force a kernel path (default: the
                                       fastest this CPU has)
  MAEEMBED_STRASSEN=0|1                float32 without Strassen–Winograd
                                       (results that do not depend on batching
                                       or the thread count), or with it on
                                       every path (default: on, but off on
                                       the avx512 path of CPUs other than
                                       AMD Zen 4, e.g. Zen 5, Intel)
  Another value (MAEEMBED_STRASSEN also takes off, false, no and on, true,
  yes; any letter case), or a kernel path this CPU lacks, is a usage error
  (exit status 2).`

// runsModel names the commands that run the model's kernels.
var runsModel = map[string]bool{"embed": true, "reconstruct": true, "stream": true, "pretrain": true, "probe": true}

// checkKernelEnv refuses to run a model on a MAEEMBED_KERNEL or
// MAEEMBED_STRASSEN value that could not be followed (a forced setting must
// mean what it says): a usage error (exit 2) that names the variable, its
// value and the values it takes. Other commands only warn.
func checkKernelEnv(c *cobra.Command, _ []string) error {
	err := kernels.EnvError()
	if err == nil {
		return nil
	}
	if runsModel[c.Name()] {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	name := "kernel setting"
	var ev *kernels.EnvVarError
	if errors.As(err, &ev) {
		name = ev.Var
	}
	slog.Warn(name+" ignored", "err", err)
	return nil
}

func flagError(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %v", errUsage, err) }
