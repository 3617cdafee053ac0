package engine

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// BatchOptions size a run, from flags and config-file keys alike
// (package config): images per model call, preprocessing workers (0 = one
// per core), how long a partial batch waits to fill (stream) and how often
// pending output is published.
type BatchOptions struct {
	BatchSize     int           `yaml:"batch_size"`
	Workers       int           `yaml:"workers"`
	BatchLatency  time.Duration `yaml:"batch_latency"`
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// AddFlags adds --batch-size and --workers.
func (o *BatchOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "images per forward pass")
	fs.IntVar(&o.Workers, "workers", o.Workers, fmt.Sprintf("decode/resize workers, at most %d (0 = the default, one per core)", MaxWorkers))
}

// AddFlushFlag adds --flush-interval; parts says what the command
// publishes ("Parquet/Arrow part"), note what its help adds (the formats
// the interval does not apply to), if anything.
func (o *BatchOptions) AddFlushFlag(fs *pflag.FlagSet, parts, note string) {
	fs.DurationVar(&o.FlushInterval, "flush-interval", o.FlushInterval, "publish the current "+parts+" at least this often (a kill loses at most this much work; 0 = only when full)"+note)
}

// Validate checks the batch size (CheckBatch) and refuses negative
// workers and durations. Errors name the flag. Whether the batch's
// tensors fit in the memory budget needs the model: CheckBudget.
func (o BatchOptions) Validate() error {
	if err := CheckBatch(o.BatchSize); err != nil {
		return fmt.Errorf("--batch-size: %w", err)
	}
	switch {
	case o.Workers < 0 || o.Workers > MaxWorkers:
		return fmt.Errorf("--workers %d: must be 0 (one per core) to %d", o.Workers, MaxWorkers)
	case o.FlushInterval < 0:
		return fmt.Errorf("--flush-interval %v: want 0 (only when a part is full) or more", o.FlushInterval)
	case o.BatchLatency < 0:
		return fmt.Errorf("--batch-latency %v: want 0 (full batches only) or more", o.BatchLatency)
	}
	return nil
}

// ModelMemory is what a run's model stage needs, for CheckBudget.
type ModelMemory struct {
	ImageSize int // S: a model input is float32 [3,S,S]
	// Batch is the model's buffers for a batch, its inputs included
	// (mae.Config.BatchBytes).
	Batch int64
	// Result is the size of one batch's result (Model.Run's): embeddings
	// (EmbeddingsBytes), a reconstruction (ReconstructionBytes).
	Result int64
}

// RunBytes is about what a run of o with a model stage needing m holds in
// tensors at once: the model's buffers for the batch it runs, the other
// model inputs queued around it (QueuedTensors), and the results in flight
// (ResultsInFlight).
func (o BatchOptions) RunBytes(m ModelMemory) int64 {
	queued := int64(QueuedTensors(o.BatchSize, o.Config().Workers) - o.BatchSize)
	return m.Batch + queued*TensorBytes(m.ImageSize) + ResultsInFlight*m.Result
}

// CheckBudget checks that the tensors a run of o holds at once (RunBytes)
// fit in budget (nil: not checked). They are not taken from it, but a
// budget that cannot hold them does not bound the run's memory: the error
// names --memory-budget, --batch-size and --workers, and the bytes needed.
func (o BatchOptions) CheckBudget(m ModelMemory, budget *stages.Budget) error {
	if budget == nil {
		return nil
	}
	need := o.RunBytes(m)
	if need <= budget.Size() {
		return nil
	}
	w := o.Config().Workers
	workers := fmt.Sprint(w)
	if o.Workers == 0 {
		workers += " (one per core)"
	}
	return fmt.Errorf("--memory-budget %s (%d bytes) is too small for --batch-size %d and --workers %s: the tensors the run holds at once (the model's buffers, up to %d model inputs of %s queued between its stages, and %d batches of results) take about %s (%d bytes); lower --batch-size or --workers, or raise --memory-budget",
		stages.FormatBytes(budget.Size()), budget.Size(), o.BatchSize, workers, QueuedTensors(o.BatchSize, w), stages.FormatBytes(TensorBytes(m.ImageSize)),
		ResultsInFlight, stages.FormatBytes(need), need)
}

// Config is the part of a run's Config that o sets.
func (o BatchOptions) Config() Config {
	w := o.Workers
	if w <= 0 {
		w = max(1, runtime.GOMAXPROCS(0))
	}
	return Config{BatchSize: o.BatchSize, Workers: w, BatchLatency: o.BatchLatency, FlushInterval: o.FlushInterval, OnFailure: LogFailure}
}

// LogFailure logs one warning per failed input (Config.OnFailure).
func LogFailure(im *Image) {
	slog.Warn("input failed", "id", im.Item.ID, "stage", im.Stage, "err", im.Err)
}

// FileOptions are a batch run over files (embed, reconstruct), from flags
// and config-file keys alike: the inputs, the output directory and format,
// the shard of the inputs ("i/n"), and how earlier and failed inputs
// count.
type FileOptions struct {
	Inputs      []string `yaml:"inputs" config:"path"`
	Output      string   `yaml:"output" config:"path"`
	Format      string   `yaml:"format"`
	Shard       string   `yaml:"shard"`
	Resume      bool     `yaml:"resume"`
	DryRun      bool     `yaml:"dry_run"`
	FailOnError bool     `yaml:"fail_on_error"`
	// RetryErrors: ids that only have error rows in the output are
	// processed again (Inputs.DropRetried).
	RetryErrors bool `yaml:"retry_errors"`
}

// AddFlags adds --output/-o, --format (formats lists its values, "a | b"),
// --shard, --fail-on-error, --dry-run and --retry-errors. The inputs are the command's
// arguments (config key inputs); --resume is the command's, whose help
// says what it resumes.
func (o *FileOptions) AddFlags(fs *pflag.FlagSet, formats string) {
	fs.StringVarP(&o.Output, "output", "o", o.Output, "output directory")
	fs.StringVar(&o.Format, "format", o.Format, "output format: "+formats)
	fs.StringVar(&o.Shard, "shard", o.Shard, "process shard i of n (i/n), one per machine")
	fs.BoolVar(&o.FailOnError, "fail-on-error", o.FailOnError, "exit non-zero when any input failed")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "list the ids that would be processed, one a line (with resume, without those already done; an id with a control character or a leading '\"' is Go-quoted), and stop, with the run's exit status where it is known without processing (a refusal of the output, a rerun that would fail); the model is checked from its headers, and nothing is downloaded, unpacked or written (a model not on this machine yet is reported on stderr)")
	fs.BoolVar(&o.RetryErrors, "retry-errors", o.RetryErrors, "process again the inputs that failed in an earlier run into the output (their old error rows are dropped when the run ends)")
}

// shard parses o.Shard ("" = the whole input).
func (o FileOptions) shard() (sources.Shard, error) {
	if o.Shard == "" {
		return sources.Shard{}, nil
	}
	s, err := sources.ParseShard(o.Shard)
	if err != nil {
		return s, fmt.Errorf("--shard: %w", err)
	}
	return s, nil
}
