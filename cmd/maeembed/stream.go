package main

import (
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
		modelFlags(fs, o)
		precisionFlag(fs, o)
		fs.StringVarP(&o.Output, "output", "o", o.Output, "directory of rolling Parquet part files (workers may share it)")
		preprocessFlags(fs, o)
		fs.StringVar(&o.Pool, "pool", o.Pool, "cls | mean | tokens | global")
		s, c := &o.Stream, &o.Stream.Consumer
		fs.Var(&listFlag{v: &c.Brokers}, "brokers", "bootstrap brokers host:port[,host:port] (repeatable)")
		fs.Var(&listFlag{v: &c.Topics}, "topic", "input topic (repeatable, or comma-separated)")
		fs.StringVar(&c.Group, "group", c.Group, "consumer group: workers with the same group share the partitions")
		fs.StringVar(&c.StartOffset, "start-offset", c.StartOffset, "earliest | latest: where a group without committed offsets starts")
		fs.StringVar(&s.OutputTopic, "output-topic", s.OutputTopic, "topic for the embeddings (key = id, value = little-endian float32 [D])")
		fs.StringVar(&s.DLQTopic, "dlq-topic", s.DLQTopic, "dead-letter topic for inputs that fail (original bytes, maeembed-error/-stage headers)")
		fs.StringVar(&s.WorkerID, "worker-id", s.WorkerID, "in the names of the worker's part files, part-NNNNN-ID.parquet (default: host-pid)")
		fs.StringVar(&s.MetricsAddr, "metrics-addr", s.MetricsAddr, "serve /metrics, /healthz and /readyz here (e.g. :9090; empty = off)")
		fs.DurationVar(&s.BatchLatency, "batch-latency", s.BatchLatency, "run a partial batch after waiting this long for it to fill")
		fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "messages fetched but not yet durable (bounds memory)")
		fs.IntVar(&c.MinBytes, "fetch-min-bytes", c.MinBytes, "fetch.min.bytes (0 = 1)")
		fs.IntVar(&c.MaxBytes, "fetch-max-bytes", c.MaxBytes, "max bytes per partition fetch; must exceed the largest image (0 = 16 MiB)")
		fs.DurationVar(&c.MaxWait, "fetch-max-wait", c.MaxWait, "longest broker wait for fetch-min-bytes (0 = 250ms)")
		fs.DurationVar(&c.CommitInterval, "commit-interval", c.CommitInterval, "how often durable offsets are committed")
		fs.DurationVar(&c.SessionTimeout, "session-timeout", c.SessionTimeout, "group session timeout: how long a dead worker's partitions wait")
		fs.DurationVar(&s.FlushInterval, "flush-interval", s.FlushInterval, "publish the current Parquet part at least this often")
		fs.IntVar(&o.MaxFileRows, "max-file-rows", o.MaxFileRows, "publish a Parquet part once it holds this many rows (whole batches, so up to rows+batch-1; 0 = 100000)")
		fs.Int64Var(&s.MaxFileBytes, "max-file-bytes", s.MaxFileBytes, "publish a Parquet part at this many bytes of values (0 = 512 MiB)")
		fs.DurationVar(&s.ProduceLinger, "produce-linger", s.ProduceLinger, "kafka-go writer batch timeout")
		fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", s.ShutdownTimeout, "on SIGTERM, drain for at most this long, then abort (uncommitted messages are redelivered)")
		sec := &c.Security
		fs.BoolVar(&sec.TLS, "tls", sec.TLS, "connect to the brokers with TLS")
		fs.StringVar(&sec.CAFile, "tls-ca", sec.CAFile, "PEM file of the CA certificates")
		fs.StringVar(&sec.CertFile, "tls-cert", sec.CertFile, "client certificate (PEM)")
		fs.StringVar(&sec.KeyFile, "tls-key", sec.KeyFile, "client key (PEM)")
		fs.BoolVar(&sec.InsecureSkipVerify, "tls-insecure", sec.InsecureSkipVerify, "do not verify the broker certificate")
		fs.StringVar(&sec.SASLMechanism, "sasl-mechanism", sec.SASLMechanism, "plain | scram-sha-256 | scram-sha-512")
		fs.StringVar(&sec.SASLUsername, "sasl-username", sec.SASLUsername, "SASL user")
		fs.StringVar(&sec.SASLPassword, "sasl-password", sec.SASLPassword, "SASL password (better: $MAEEMBED_SASL_PASSWORD)")
		fs.StringVar(&sec.ClientID, "client-id", sec.ClientID, "Kafka client id (default maeembed)")
	},
	extraKeys: []string{"topics", "dial_timeout"},
	run:       (*env).stream,
}

// checkStream validates the stream options.
func checkStream(o *Options) error {
	s := &o.Stream.Consumer
	if pw := os.Getenv("MAEEMBED_SASL_PASSWORD"); pw != "" && s.Security.SASLPassword == "" {
		s.Security.SASLPassword = pw
	}
	switch {
	case len(s.Brokers) == 0:
		return fmt.Errorf("%w: stream needs --brokers", errUsage)
	case len(s.Topics) == 0:
		return fmt.Errorf("%w: stream needs at least one --topic", errUsage)
	case o.Output == "" && o.Stream.OutputTopic == "":
		return fmt.Errorf("%w: stream needs --output DIR and/or --output-topic T", errUsage)
	case checkBatchSize(o.BatchSize, 0, nil) != nil:
		return checkBatchSize(o.BatchSize, 0, nil)
	case s.MaxInFlight < o.BatchSize:
		return fmt.Errorf("%w: --max-in-flight %d is below --batch-size %d", errUsage, s.MaxInFlight, o.BatchSize)
	case o.Stream.ShutdownTimeout <= 0:
		return fmt.Errorf("%w: --shutdown-timeout must be positive", errUsage)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := (sinks.ParquetOptions{MaxFileRows: o.MaxFileRows, MaxFileBytes: o.Stream.MaxFileBytes, WorkerID: o.Stream.WorkerID}).Validate(); err != nil {
		return fmt.Errorf("%w: --max-file-rows/--max-file-bytes/--worker-id: %v", errUsage, err)
	}
	return checkWorkers(o.Workers)
}

// stream consumes images from Kafka and writes embeddings to rolling
// Parquet and/or an output topic, at least once (package stream).
func (e *env) stream(o *Options) error {
	if err := checkStream(o); err != nil {
		return err
	}
	so := &o.Stream
	pool, err := mae.ParsePool(o.Pool)
	if err != nil {
		return fmt.Errorf("%w: --pool: %v", errUsage, err)
	}
	pre, err := o.preprocess()
	if err != nil {
		return err
	}
	// One owner of the signals: the first drains, the second or the
	// shutdown timeout aborts; the abort also ends produce retries.
	stop := engine.OnSignals(e.ctx, so.ShutdownTimeout, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()
	cfg := stream.Config{Consumer: so.Consumer, Output: o.Output, OutputTopic: so.OutputTopic, DLQTopic: so.DLQTopic,
		Parquet:       sinks.ParquetOptions{MaxFileRows: o.MaxFileRows, MaxFileBytes: so.MaxFileBytes},
		ProduceLinger: so.ProduceLinger, MetricsAddr: so.MetricsAddr, WorkerID: so.WorkerID,
		Engine: engine.Config{BatchSize: o.BatchSize, Workers: workers(o), BatchLatency: so.BatchLatency,
			FlushInterval: so.FlushInterval, Budget: pre.Budget, OnFailure: logFailure}}
	cfg.Consumer.CloseTimeout = 5 * time.Second
	start := time.Now()
	res, err := stream.Run(stop, cfg, func() (stream.Model, error) {
		em, meta, err := e.openEmbedder(o, pool, &pre)
		return stream.Model{Embedder: em, Preprocess: pre, ImageSize: pre.Size, Meta: meta}, err
	})
	engine.Summary(nil, "stream", res.Counts, engine.RunInfo{Budget: pre.Budget}, res.Stats, time.Since(start))
	return err
}
