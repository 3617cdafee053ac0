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
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `maeembed: Masked Autoencoder (MAE) embeddings and reconstructions

usage:
  maeembed embed       [flags] INPUT...   files, dirs (recursive), globs, list files ('-' = stdin)
  maeembed reconstruct [flags] INPUT...
  maeembed stream      [flags]            Kafka in, Parquet and/or Kafka out
  maeembed pretrain    [flags] INPUT...   MAE pretraining; checkpoints in the HF layout
  maeembed inspect     MODEL
  maeembed convert     MODEL --output DIR
  maeembed version

Run 'maeembed COMMAND -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks errors that came from bad command-line input.
var errUsage = errors.New("usage")

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	env := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "embed":
		err = env.embed(rest)
	case "reconstruct":
		err = env.reconstruct(rest)
	case "stream":
		err = env.stream(rest)
	case "pretrain":
		err = env.pretrain(rest)
	case "inspect":
		err = env.inspect(rest)
	case "convert":
		err = env.convert(rest)
	case "version", "--version":
		fmt.Fprintln(stdout, "maeembed", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "maeembed: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "maeembed %s: %v\n", args[0], err)
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
}
