package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/metrics"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	sinkkafka "github.com/maeembed/maeembed/sinks/kafka"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
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
		s := &o.Stream
		fs.Var(&listFlag{v: &s.Brokers}, "brokers", "bootstrap brokers host:port[,host:port] (repeatable)")
		fs.Var(&listFlag{v: &s.Topics}, "topic", "input topic (repeatable, or comma-separated)")
		fs.StringVar(&s.Group, "group", s.Group, "consumer group: workers with the same group share the partitions")
		fs.StringVar(&s.StartOffset, "start-offset", s.StartOffset, "earliest | latest: where a group without committed offsets starts")
		fs.StringVar(&s.OutputTopic, "output-topic", s.OutputTopic, "topic for the embeddings (key = id, value = little-endian float32 [D])")
		fs.StringVar(&s.DLQTopic, "dlq-topic", s.DLQTopic, "dead-letter topic for inputs that fail (original bytes, maeembed-error/-stage headers)")
		fs.StringVar(&s.MetricsAddr, "metrics-addr", s.MetricsAddr, "serve /metrics, /healthz and /readyz here (e.g. :9090; empty = off)")
		fs.DurationVar(&s.BatchLatency, "batch-latency", s.BatchLatency, "run a partial batch after waiting this long for it to fill")
		fs.IntVar(&s.MaxInFlight, "max-in-flight", s.MaxInFlight, "messages fetched but not yet durable (bounds memory)")
		fs.IntVar(&s.FetchMinBytes, "fetch-min-bytes", s.FetchMinBytes, "fetch.min.bytes (0 = 1)")
		fs.IntVar(&s.FetchMaxBytes, "fetch-max-bytes", s.FetchMaxBytes, "max bytes per partition fetch; must exceed the largest image (0 = 16 MiB)")
		fs.DurationVar(&s.FetchMaxWait, "fetch-max-wait", s.FetchMaxWait, "longest broker wait for fetch-min-bytes (0 = 250ms)")
		fs.DurationVar(&s.CommitInterval, "commit-interval", s.CommitInterval, "how often durable offsets are committed")
		fs.DurationVar(&s.SessionTimeout, "session-timeout", s.SessionTimeout, "group session timeout: how long a dead worker's partitions wait")
		fs.DurationVar(&s.FlushInterval, "flush-interval", s.FlushInterval, "publish the current Parquet part at least this often")
		fs.IntVar(&o.MaxFileRows, "max-file-rows", o.MaxFileRows, "publish a Parquet part at this many rows (0 = 100000)")
		fs.Int64Var(&s.MaxFileBytes, "max-file-bytes", s.MaxFileBytes, "publish a Parquet part at this many bytes of values (0 = 512 MiB)")
		fs.DurationVar(&s.ProduceLinger, "produce-linger", s.ProduceLinger, "kafka-go writer batch timeout")
		fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", s.ShutdownTimeout, "on SIGTERM, drain for at most this long, then abort (uncommitted messages are redelivered)")
		sec := &s.Security
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
	s := &o.Stream
	if pw := os.Getenv("MAEEMBED_SASL_PASSWORD"); pw != "" && s.Security.SASLPassword == "" {
		s.Security.SASLPassword = pw
	}
	switch {
	case len(s.Brokers) == 0:
		return fmt.Errorf("%w: stream needs --brokers", errUsage)
	case len(s.Topics) == 0:
		return fmt.Errorf("%w: stream needs at least one --topic", errUsage)
	case o.Output == "" && s.OutputTopic == "":
		return fmt.Errorf("%w: stream needs --output DIR and/or --output-topic T", errUsage)
	case o.BatchSize < 1:
		return fmt.Errorf("%w: --batch-size must be at least 1, got %d", errUsage, o.BatchSize)
	case s.MaxInFlight < o.BatchSize:
		return fmt.Errorf("%w: --max-in-flight %d is below --batch-size %d", errUsage, s.MaxInFlight, o.BatchSize)
	case s.ShutdownTimeout <= 0:
		return fmt.Errorf("%w: --shutdown-timeout must be positive", errUsage)
	}
	return nil
}

// streamMetrics are the worker's own metrics, beside the consumer's
// (sources/kafka) and the stages' (metrics.Stages).
type streamMetrics struct {
	reg                            *prometheus.Registry
	eng                            atomic.Pointer[engine.Engine[engine.Embeddings]]
	src                            atomic.Pointer[srckafka.Source]
	failed, deadLetters, published prometheus.Counter
	model, write                   prometheus.Histogram
	fatal, modelLoaded             atomic.Bool
}

func newStreamMetrics() *streamMetrics {
	m := &streamMetrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: metrics.LatencyBuckets})
	}
	m.failed = counter("maeembed_images_failed_total", "Inputs that failed at some stage.")
	m.deadLetters = counter("maeembed_dead_letters_total", "Inputs sent to the dead-letter topic.")
	m.published = counter("maeembed_parquet_parts_published_total", "Parquet part files published.")
	m.model = hist("maeembed_model_batch_seconds", "Forward pass per batch.")
	m.write = hist("maeembed_write_batch_seconds", "Writing one batch until its outputs are durable or queued for the next part.")
	written := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maeembed_images_written_total",
		Help: "Embeddings written and durable (Parquet rows published, output messages acknowledged)."}, func() float64 {
		if e := m.eng.Load(); e != nil {
			return float64(e.Counts().Written)
		}
		return 0
	})
	stages := metrics.Stages(func() []pipeline.StageStats {
		if e := m.eng.Load(); e != nil {
			return e.Stats()
		}
		return nil
	})
	m.reg.MustRegister(m.failed, m.deadLetters, m.published, m.model, m.write, written, stages)
	return m
}

func (m *streamMetrics) healthy() error {
	if m.fatal.Load() {
		return errors.New("fatal error")
	}
	return nil
}

func (m *streamMetrics) ready() error {
	switch s := m.src.Load(); {
	case !m.modelLoaded.Load():
		return errors.New("model loading")
	case s == nil || !s.Ready():
		return errors.New("kafka brokers not reachable")
	}
	return nil
}

var errShutdownTimeout = errors.New("shutdown timeout: aborted the items still in flight (their offsets are not committed; they will be redelivered)")

// stream consumes images from Kafka and writes embeddings to rolling
// Parquet and/or an output topic, at least once.
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
	met := newStreamMetrics()
	if so.MetricsAddr != "" {
		srv, err := metrics.Serve(so.MetricsAddr, met.reg, met.healthy, met.ready)
		if err != nil {
			return err
		}
		defer srv.Stop()
	}
	em, meta, err := e.openEmbedder(o, pool, &pre)
	if err != nil {
		return err
	}
	met.modelLoaded.Store(true)

	// One owner of the signals: the first drains, the second or the
	// shutdown timeout aborts; the abort also ends produce retries.
	stop := engine.OnSignals(e.ctx, so.ShutdownTimeout, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()

	var outs []sinks.Writer[sinks.Row]
	var errW sinks.ErrorWriter
	if o.Output != "" {
		// Workers of one group may share the directory: part numbers
		// never collide (no-clobber publish) and CleanTemps leaves the
		// temporaries of live workers alone.
		if err := sinks.CleanTemps(o.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		// Acks wait for a part to be published and the source stops at
		// max-in-flight, so a part never waits for more rows than that.
		popts := sinks.ParquetOptions{MaxFileRows: min(cmp.Or(o.MaxFileRows, 100_000), max(1, so.MaxInFlight/2)), MaxFileBytes: so.MaxFileBytes,
			OnPublish: func(path string, rows int) {
				met.published.Inc()
				slog.Debug("published", "path", path, "rows", rows)
			}}
		w, err := sinks.NewParquet(o.Output, meta, popts)
		if err != nil {
			return err
		}
		outs = append(outs, w)
		if errW, err = sinks.NewErrors(o.Output, meta, popts); err != nil {
			w.Abort()
			return err
		}
	}
	if so.OutputTopic != "" || so.DLQTopic != "" {
		prod, err := sinkkafka.NewProducer(sinkkafka.Config{Brokers: so.Brokers, Security: so.Security, BatchTimeout: so.ProduceLinger})
		if err != nil {
			return err
		}
		defer func() {
			if err := prod.Close(); err != nil {
				slog.Warn("kafka producer close", "err", err)
			}
		}()
		met.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maeembed_kafka_produced_total", Help: "Messages acknowledged by the brokers."}, func() float64 { return float64(prod.Produced()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maeembed_kafka_produce_retries_total", Help: "Produce attempts retried."}, func() float64 { return float64(prod.Retries()) }))
		if so.OutputTopic != "" {
			outs = append(outs, sinkkafka.NewEmbeddingWriter(stop.Abort, prod, sinkkafka.EmbeddingMeta{Topic: so.OutputTopic, Model: o.Model, Pool: string(pool), Dim: em.Dim()}))
		}
		if so.DLQTopic != "" {
			if errW != nil {
				errW.Abort() // the dead-letter topic takes the failures
			}
			errW = sinkkafka.NewDeadLetterWriter(stop.Abort, prod, so.DLQTopic, func(n int) { met.deadLetters.Add(float64(n)) })
		}
	}

	src, err := srckafka.Open(srckafka.Config{
		Brokers: so.Brokers, Topics: so.Topics, Group: so.Group, StartOffset: so.StartOffset, Security: so.Security,
		MinBytes: so.FetchMinBytes, MaxBytes: so.FetchMaxBytes, MaxWait: so.FetchMaxWait, MaxInFlight: so.MaxInFlight,
		CommitInterval: so.CommitInterval, SessionTimeout: so.SessionTimeout, CloseTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	met.src.Store(src)
	met.reg.MustRegister(src.Collector())

	eng := engine.New(engine.Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: o.BatchSize, Workers: workers(o), BatchLatency: so.BatchLatency,
		Budget: pre.Budget, KeepData: so.DLQTopic != "", Errors: errW, FlushInterval: so.FlushInterval, Drain: stop.Drain, PublishOnAbort: true,
		OnFailure: func(im *engine.Image) { met.failed.Inc(); logFailure(im) },
		Observe: func(stage string, s float64) {
			if stage == "model" {
				met.model.Observe(s)
			} else {
				met.write.Observe(s)
			}
		}}, engine.NewEmbedModel(em, o.BatchSize), engine.NewEmbeddingOutput(outs...))
	met.eng.Store(eng)
	start := time.Now()
	err = eng.Run(stop.Abort, src)
	if err != nil {
		met.fatal.Store(true)
	}
	engine.Summary(nil, "stream", eng.Counts(), engine.RunInfo{Budget: pre.Budget}, eng.Stats(), time.Since(start))
	// Commit what is durable and leave the group.
	if cerr := src.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
