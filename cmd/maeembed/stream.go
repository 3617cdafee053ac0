package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/stream"
)

var streamCommand = commandSpec{
	use:   "stream [flags]",
	short: "Embed images from a Kafka topic, at least once",
	long: `stream consumes images from Kafka topics in a consumer group and writes
their embeddings to rolling Parquet parts (--output) and/or an output topic,
bad inputs to a dead-letter topic. Offsets are committed only once every
output of the messages before them is durable. Workers of one group share
the partitions (and may share the output directory).`,
	example: `  maeembed stream --brokers kafka:9092 --topic images -o /data/emb/
  maeembed stream --config-file configs/stream.yaml --output-topic embeddings --metrics-addr :9090`,
	flags: func(fs *pflag.FlagSet, o *Options) {
		o.ModelOptions.AddFlags(fs)
		o.AddPrecisionFlag(fs)
		fs.StringVarP(&o.Output, "output", "o", o.Output, "directory of rolling Parquet part files (workers of a group may share it)")
		o.BatchOptions.AddFlags(fs)
		o.PreprocessOptions.AddFlags(fs)
		o.EmbedOptions.AddFlags(fs)
		o.Stream.AddFlags(fs)
		fs.DurationVar(&o.BatchLatency, "batch-latency", o.BatchLatency, "run a partial batch after waiting this long for it to fill (0 = full batches only)")
		o.AddFlushFlag(fs, "Parquet part", "")
		p := &o.Parts
		fs.IntVar(&p.MaxFileRows, "max-file-rows", p.MaxFileRows, "publish a Parquet part once it holds this many rows (whole batches, so up to rows+batch-1; 0 = 100000)")
		fs.Var(&p.MaxFileBytes, "max-file-bytes", "publish a Parquet part at this many bytes of values, e.g. 536870912 or 256MiB (0 = 512MiB)")
		fs.Var(workerIDFlag{&p.WorkerID}, "worker-id", "in the names of the worker's part files, part-NNNNN-ID.parquet: 1-64 letters, digits, '_' or '-' (default: host-pid)")
	},
	extraKeys: []string{"topics", "dial_timeout"},
	run:       (*env).stream,
}

// workerIDFlag is --worker-id: a string that refuses an empty value,
// which would otherwise pass as "not given" (the help promises 1-64
// characters; the default comes from leaving the flag out).
type workerIDFlag struct{ p *string }

func (f workerIDFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f workerIDFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty: give 1-64 letters, digits, '_' or '-', or leave the flag out for the default (host-pid)")
	}
	*f.p = v
	return nil
}

func (f workerIDFlag) Type() string { return "string" }

// stream consumes images from Kafka and writes embeddings to rolling
// Parquet and/or an output topic, at least once (package stream).
func (e *env) stream(o *Options) error {
	// Until the engine starts (the model loads, the brokers are asked), a
	// signal ends the process with status 1, the output released and
	// nothing consumed (engine.Startup).
	startup := engine.WatchStartup(exitInterrupted)
	defer startup.Release()
	cfg := o.Stream
	cfg.Output, cfg.Parquet, cfg.Engine = o.Output, o.Parts, o.BatchOptions.Config()
	if err := cfg.Validate(); err != nil {
		return usage(err)
	}
	if err := o.BatchOptions.Validate(); err != nil {
		return usage(err)
	}
	pool, err := mae.ParsePool(o.Pool)
	if err != nil {
		return fmt.Errorf("%w: --pool: %v", errUsage, err)
	}
	pre, err := o.Preprocess()
	if err != nil {
		return usage(err)
	}
	// One owner of the signals once the engine starts (stream.Run calls
	// stop.Own): the first drains, the second or the shutdown timeout
	// aborts; the abort also ends produce retries.
	stop := startup.OnSignals(e.ctx, cfg.ShutdownTimeout, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()
	cfg.Engine.Budget = pre.Budget
	cfg.Consumer.CloseTimeout = 5 * time.Second
	start := time.Now()
	res, err := stream.Run(stop, cfg, stream.Loader{
		// The checkpoint's headers, for the output directory's checks
		// before the weights load: the same checks as openEmbedder's.
		Meta: func() (sinks.Meta, error) {
			p := pre
			_, meta, err := e.checkEmbedder(o, pool, &p)
			return meta, err
		},
		Open: func() (stream.Model, error) {
			em, meta, err := e.openEmbedder(o, pool, &pre)
			return stream.Model{Embedder: em, Preprocess: pre, ImageSize: pre.Size, Meta: meta}, err
		},
	})
	engine.Summary(nil, "stream", res.Counts, engine.RunInfo{Budget: pre.Budget}, res.Stats, time.Since(start))
	return err
}
