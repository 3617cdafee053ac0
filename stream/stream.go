// Package stream is the stream worker: images from a Kafka consumer group
// through the engine into rolling Parquet parts and/or an output topic,
// failures to error parts or a dead-letter topic, with Prometheus metrics
// and health probes. Delivery is at least once: the consumer commits only
// below the first input whose outputs are not all durable (engine acks).
package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/kafkaconn"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/metrics"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	sinkkafka "github.com/maeembed/maeembed/sinks/kafka"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// Config is one worker. Its own options come from flags and config-file
// keys alike (AddFlags; the yaml tags); the output directory, the part
// options and the engine's are the command's (engine.FileOptions.Output,
// sinks.ParquetOptions, engine.BatchOptions), set by the caller.
type Config struct {
	Consumer srckafka.Config `yaml:",inline"`
	// Output is the directory of rolling Parquet parts ("" = none). Workers
	// of a group may share it.
	Output  string               `yaml:"-"`
	Parquet sinks.ParquetOptions `yaml:"-"` // MaxFileRows, MaxFileBytes, WorkerID (default DefaultWorkerID())
	// OutputTopic receives the embeddings, DLQTopic the failed inputs
	// (with their bytes); "" = none. Without a DLQ topic failures go to
	// Output/errors, or are only logged and counted.
	OutputTopic   string        `yaml:"output_topic"`
	DLQTopic      string        `yaml:"dlq_topic"`
	ProduceLinger time.Duration `yaml:"produce_linger"` // producer batch timeout
	// MetricsAddr serves /metrics, /healthz and /readyz ("" = off).
	MetricsAddr string `yaml:"metrics_addr"`
	// ShutdownTimeout bounds the drain after the first signal; the caller
	// passes it to engine.OnSignals (engine.Startup.OnSignals).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Engine sizes the run: BatchSize, Workers, BatchLatency,
	// FlushInterval, OnFailure. The worker sets the rest.
	Engine engine.Config `yaml:"-"`
}

// DefaultConfig is a worker with the default consumer
// (srckafka.DefaultConfig), a 5 ms produce linger and a 20 s drain.
func DefaultConfig() Config {
	return Config{Consumer: srckafka.DefaultConfig(), ProduceLinger: 5 * time.Millisecond, ShutdownTimeout: 20 * time.Second}
}

// AddFlags adds the consumer's flags (srckafka.Config.AddFlags) and the
// worker's: --output-topic, --dlq-topic, --metrics-addr, --produce-linger,
// --shutdown-timeout.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	c.Consumer.AddFlags(fs)
	fs.StringVar(&c.OutputTopic, "output-topic", c.OutputTopic, "topic for the embeddings (key = id, value = little-endian float32 [D])")
	fs.StringVar(&c.DLQTopic, "dlq-topic", c.DLQTopic, "dead-letter topic for inputs that fail (original bytes, maeembed-error/-stage headers)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics, /healthz and /readyz here (e.g. :9090; empty = off)")
	fs.DurationVar(&c.ProduceLinger, "produce-linger", c.ProduceLinger, "kafka-go writer batch timeout")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM, drain for at most this long, then abort (uncommitted messages are redelivered)")
}

// Validate checks a worker's config before it starts (Engine.BatchSize
// set); errors name the flag. A SASL password missing from the config
// is taken from $MAEEMBED_SASL_PASSWORD.
func (c *Config) Validate() error {
	s := &c.Consumer
	switch {
	case len(s.Brokers) == 0:
		return errors.New("stream needs --brokers")
	case len(s.Topics) == 0:
		return errors.New("stream needs at least one --topic")
	case c.Output == "" && c.OutputTopic == "":
		return errors.New("stream needs --output DIR and/or --output-topic T")
	case s.MaxInFlight < c.Engine.BatchSize:
		return fmt.Errorf("--max-in-flight %d is below --batch-size %d", s.MaxInFlight, c.Engine.BatchSize)
	case c.ShutdownTimeout <= 0:
		return errors.New("--shutdown-timeout must be positive")
	}
	if err := engine.CheckOutputNotFile(c.Output); err != nil {
		return err
	}
	// Negative sizes and durations would silently become the defaults.
	for _, n := range []struct {
		flag string
		v    int64
		show any
	}{
		{"--fetch-min-bytes", int64(s.MinBytes), s.MinBytes}, {"--fetch-max-bytes", int64(s.MaxBytes), s.MaxBytes},
		{"--fetch-max-wait", int64(s.MaxWait), s.MaxWait}, {"--commit-interval", int64(s.CommitInterval), s.CommitInterval},
		{"--session-timeout", int64(s.SessionTimeout), s.SessionTimeout}, {"--produce-linger", int64(c.ProduceLinger), c.ProduceLinger},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s %v: must not be negative (0 = the default)", n.flag, n.show)
		}
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if err := s.Security.Validate(); err != nil {
		return err
	}
	// After Validate, which refuses a --sasl-password without a mechanism,
	// and only with SASL on: the variable may be set for other brokers.
	if pw := os.Getenv("MAEEMBED_SASL_PASSWORD"); pw != "" && s.Security.SASLPassword == "" && s.Security.SASLMechanism != "" {
		s.Security.SASLPassword = pw
	}
	if err := c.Parquet.Validate(); err != nil {
		var oe *sinks.OptionError
		if errors.As(err, &oe) {
			return oe.FlagError()
		}
		return err
	}
	return nil
}

// Model is what the worker embeds with: the embedding stage, the
// preprocessing that feeds it (its image size) and the metadata of the
// outputs.
type Model struct {
	Embedder   *mae.Embedder
	Preprocess engine.Preprocessor
	ImageSize  int
	Meta       sinks.Meta
}

// Loader is how a worker gets its model.
type Loader struct {
	// Meta, if set, gives the outputs' metadata without loading the
	// model (from its checkpoint's headers; Weights and Kernel empty): the
	// output directory's settings are checked with it before the model
	// loads, so that a start they refuse is quick and loads nothing.
	Meta func() (sinks.Meta, error)
	// Open loads the model.
	Open func() (Model, error)
}

// Result is what a finished worker did.
type Result struct {
	Counts engine.Counts
	Stats  []pipeline.StageStats
}

// Run serves the metrics, checks what it can before the model loads (the
// output directory, the brokers: see start), opens the model (readiness
// waits for it), then consumes until stop drains (or aborts) it, and
// leaves the group after committing what is durable. A stop of
// engine.Startup.OnSignals owns the signals from the moment the engine
// starts (Stop.Own): a signal before that ends the process through the
// Startup, the output directory released as a worker that did not start
// leaves it, nothing consumed or committed. A worker that fails
// before it consumes (its model, producer or consumer does not open)
// aborts every writer it opened: it leaves no file in the output
// directory, and no directory it made. Nor does a worker that wrote
// nothing (drained before a message came, or the brokers never reached):
// the directories it made go at its end if they are still empty (a
// worker sharing them keeps them: its lock file is there).
func Run(stop *engine.Stop, cfg Config, load Loader) (Result, error) {
	met := newWorkerMetrics()
	if cfg.MetricsAddr != "" {
		srv, err := metrics.Serve(cfg.MetricsAddr, met.reg, met.healthy, met.ready)
		if err != nil {
			return Result{}, err
		}
		defer srv.Stop()
	}
	popts := cfg.Parquet
	if cfg.Output != "" {
		// The worker id in the part names: the workers sharing the
		// directory never pick one name.
		popts.WorkerID = cmp.Or(popts.WorkerID, DefaultWorkerID())
	}
	release, err := start(stop, cfg, popts.WorkerID, load.Meta)
	if err != nil {
		return Result{}, err
	}
	// wroteNothing: the engine ran and wrote no output or error row (a
	// drain before any message, brokers never reached): the directories
	// start made go at the end as for a worker that did not start, if
	// still empty, as embed's do.
	started, wroteNothing := false, false
	defer func() { release(!started || wroteNothing) }()
	model, err := load.Open()
	if err != nil {
		return Result{}, err
	}
	met.modelLoaded.Store(true)
	meta := model.Meta

	var outs []sinks.Writer[sinks.Row]
	var errW sinks.ErrorWriter
	// opened holds every writer opened: until the engine owns them
	// (started), an error return aborts each, as the engine would have,
	// so that every writer ends closed or aborted whatever later code
	// writes before the engine starts. (Today none has a file yet then:
	// parts are created at their first write.)
	var opened []interface{ Abort() error }
	defer func() {
		if started {
			return
		}
		for _, w := range opened {
			if err := w.Abort(); err != nil {
				slog.Warn("abort an output of a worker that did not start", "err", err)
			}
		}
	}()
	if cfg.Output != "" {
		// Acks wait for a part to be published and the consumer stops at
		// max-in-flight, so a part never waits for more rows than that.
		popts.MaxFileRows = min(cmp.Or(popts.MaxFileRows, 100_000), max(1, cfg.Consumer.MaxInFlight/2))
		popts.OnPublish = func(path string, rows int) {
			met.published.Inc()
			slog.Debug("published", "path", path, "rows", rows)
		}
		w, err := sinks.NewParquet(cfg.Output, meta, popts)
		if err != nil {
			return Result{}, err
		}
		outs, opened = append(outs, w), append(opened, w)
		ew, err := sinks.NewErrors(cfg.Output, meta, popts)
		if err != nil {
			return Result{}, err
		}
		errW, opened = ew, append(opened, ew)
	}
	if cfg.OutputTopic != "" || cfg.DLQTopic != "" {
		prod, err := sinkkafka.NewProducer(sinkkafka.Config{Brokers: cfg.Consumer.Brokers, Security: cfg.Consumer.Security, BatchTimeout: cfg.ProduceLinger,
			TopicFlags: topicFlags(cfg.OutputTopic, cfg.DLQTopic)})
		if err != nil {
			return Result{}, err
		}
		defer func() {
			if err := prod.Close(); err != nil {
				slog.Warn("kafka producer close", "err", err)
			}
		}()
		met.producer(prod)
		if cfg.OutputTopic != "" {
			// The shape as the Parquet metadata gives it: the width, and
			// the tokens per image for --pool tokens.
			em := sinkkafka.EmbeddingMeta{Topic: cfg.OutputTopic, Model: meta.Model, Pool: meta.Pool, Dim: meta.Dim, Tokens: meta.Tokens,
				Precision: meta.Precision, Kernel: meta.Kernel}
			if em.Values() != model.Embedder.Dim() {
				return Result{}, fmt.Errorf("output topic: metadata of %d×%d values per embedding, model gives %d", max(1, em.Tokens), em.Dim, model.Embedder.Dim())
			}
			ew := sinkkafka.NewEmbeddingWriter(stop.Abort, prod, em)
			outs, opened = append(outs, ew), append(opened, ew)
		}
		if cfg.DLQTopic != "" {
			if errW != nil {
				// The dead-letter topic takes the failures: the error
				// parts are aborted here, once (not again on an error
				// return below), and the engine never sees them.
				opened = slices.DeleteFunc(opened, func(w interface{ Abort() error }) bool { return w == errW })
				if err := errW.Abort(); err != nil {
					slog.Warn("abort the error parts that the dead-letter topic replaces", "dir", cfg.Output, "err", err)
				}
			}
			dl := sinkkafka.NewDeadLetterWriter(stop.Abort, prod, cfg.DLQTopic, func(n int) { met.deadLetters.Add(float64(n)) })
			errW, opened = dl, append(opened, dl)
		}
	}

	src, err := srckafka.Open(cfg.Consumer)
	if err != nil {
		return Result{}, err
	}
	met.src.Store(src)
	met.reg.MustRegister(src.Collector())

	ec := cfg.Engine
	ec.Preprocess, ec.ImageSize = model.Preprocess, model.ImageSize
	ec.KeepData, ec.Errors, ec.Drain, ec.PublishOnAbort = cfg.DLQTopic != "", errW, stop.Drain, true
	onFailure := ec.OnFailure
	ec.OnFailure = func(im *engine.Image) {
		met.failed.Inc()
		if onFailure != nil {
			onFailure(im)
		}
	}
	ec.Observe = func(stage string, s float64) {
		if stage == "model" {
			met.model.Observe(s)
		} else {
			met.write.Observe(s)
		}
	}
	eng := engine.New(ec, engine.NewEmbedModel(model.Embedder, ec.BatchSize), engine.NewEmbeddingOutput(outs...))
	met.eng.Store(eng)
	started = true
	// From here on the signals drain and abort the run; until here (a
	// stop of engine.Startup) a signal ended the process, the output
	// directory released, before anything was consumed or committed.
	stop.Own()
	err = eng.Run(stop.Abort, src)
	if err != nil {
		met.fatal.Store(true)
	}
	c := eng.Counts()
	wroteNothing = c.Written == 0 && c.Failed == 0
	// Commit what is durable and leave the group.
	if cerr := src.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return Result{Counts: eng.Counts(), Stats: eng.Stats()}, err
}

// start makes the checks a worker can make before its model loads, so
// that a start they refuse is quick and loads nothing; release(discard)
// gives the output directory back at the end of the run and, with
// discard, removes the directories start made that are still empty.
//
// The output directory first (Stop.TakeOutputDir, which the worker
// then holds, and which a signal before the engine starts releases): another group's or a batch run's, a live worker's with
// workerID, another format's; then, with meta (Loader.Meta), outputs or
// live workers of other settings (sinks.CheckResumeAnyWeights: all but
// the weights' fingerprint, which the writer compares once the model is
// loaded; it records nothing). A directory the worker made is removed
// again by a run that ends before consuming, if it is still empty.
//
// Then the brokers (checkBrokers): credentials or rights they refuse,
// and a dead-letter topic they do not have. Brokers that are not
// reachable yet are no error: the worker may start before them.
func start(stop *engine.Stop, cfg Config, workerID string, meta func() (sinks.Meta, error)) (release func(discard bool), err error) {
	ctx := stop.Abort
	release = func(bool) {}
	if cfg.Output != "" {
		// Workers of one group may share the directory (part names carry
		// the worker id, and the clean-up of temporaries leaves those of
		// live workers alone); a live batch run, a worker of another group
		// or a live worker with the same id refuses it, and so does a
		// directory of another format.
		take, err := stop.TakeOutputDir(engine.OutputDir{Dir: cfg.Output, Format: "parquet", Resume: true, Group: cfg.Consumer.Group, WorkerID: workerID})
		if err != nil {
			return nil, err
		}
		release = take
		if meta != nil {
			err := func() error {
				m, err := meta()
				if err != nil {
					return err
				}
				return sinks.CheckResumeAnyWeights(cfg.Output, "parquet", m)
			}()
			if err != nil {
				release(true)
				return nil, err
			}
		}
	}
	if err := checkBrokers(ctx, cfg); err != nil {
		release(true)
		return nil, err
	}
	return release, nil
}

// checkBrokers asks the brokers, before the worker consumes anything,
// what they would otherwise only say later: whether they accept its
// credentials (SASL) and rights, and whether they have the dead-letter
// topic, which would otherwise be found missing only at the first failed
// input. Either refusal is an error (kafkaconn.Security.AuthError; for
// the topic, naming it and --dlq-topic, as the producer does, and, for a
// worker the brokers know as a user, that ACLs may hide it). It
// creates no topic. Input topics are not checked here (the consumer
// reports missing ones and waits for them), and brokers not reachable
// yet are no error: that is logged, and the worker starts (a dead-letter
// topic missing then is reported when a failure is produced to it).
func checkBrokers(ctx context.Context, cfg Config) error {
	c := cfg.Consumer
	d, err := c.Security.Dialer()
	if err != nil {
		return err
	}
	// The dead-letter topic is looked for among all the brokers' topics
	// (without one, any answer will do): a request naming it would
	// create it on brokers that create topics on demand, typo and all.
	var topics []string
	if cfg.DLQTopic != "" {
		topics = []string{cfg.DLQTopic}
	}
	err = kafkaconn.Probe(ctx, d, c.Brokers, topics, false)
	switch {
	case err == nil || ctx.Err() != nil:
		return nil
	case kafkaconn.AuthFailed(err):
		return c.Security.AuthError(c.Brokers, err)
	case errors.Is(err, kafkaconn.ErrTopicMissing):
		missing := sinkkafka.MissingTopicError(cfg.DLQTopic, topicFlags(cfg.OutputTopic, cfg.DLQTopic)[cfg.DLQTopic])
		if user := c.Security.Principal(); user != "" {
			// Brokers with ACLs list only the topics the user may
			// describe: one it may not write to looks missing too.
			return fmt.Errorf("kafka: %w; or the brokers hide it from %s (ACLs): the worker needs Write on it", missing, user)
		}
		return fmt.Errorf("kafka: %w", missing)
	}
	slog.Warn("kafka: brokers not reachable at start; starting anyway (the consumer connects when they are)", "brokers", strings.Join(c.Brokers, ","), "err", err)
	return nil
}

// topicFlags names the flag of each output topic, for the producer's
// errors (one topic may be both).
func topicFlags(output, dlq string) map[string]string {
	m := map[string]string{}
	if output != "" {
		m[output] = "--output-topic"
	}
	if dlq != "" {
		m[dlq] = strings.TrimPrefix(m[dlq]+", --dlq-topic", ", ")
	}
	return m
}

// DefaultWorkerID is the host name and the process id (host-pid; other
// characters than letters, digits, '_' and '-' as '-', at most 64): unique
// among the live workers of a deployment, since a Kubernetes pod's host
// name is its own, and on one host the pids differ.
func DefaultWorkerID() string {
	host, _ := os.Hostname()
	return workerID(host, os.Getpid())
}

// workerID is DefaultWorkerID of a host name and pid. A host name too long
// keeps its end: a pod's name ends in its unique suffix
// (deployment-5d9c7b8f6-x2k4q), while its start is shared by the pods of
// a deployment.
func workerID(host string, pid int) string {
	id := []byte(strings.Trim(host, "."))
	for i, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			id[i] = '-'
		}
	}
	p := strconv.Itoa(pid)
	if len(id) == 0 {
		return "worker-" + p
	}
	return string(id[max(0, len(id)-(63-len(p))):]) + "-" + p
}

// workerMetrics are the worker's own metrics, beside the consumer's
// (sources/kafka) and the stages' (metrics.Stages).
type workerMetrics struct {
	reg                            *prometheus.Registry
	eng                            atomic.Pointer[engine.Engine[engine.Embeddings]]
	src                            atomic.Pointer[srckafka.Source]
	prod                           atomic.Pointer[sinkkafka.Producer]
	failed, deadLetters, published prometheus.Counter
	model, write                   prometheus.Histogram
	fatal, modelLoaded             atomic.Bool
}

func newWorkerMetrics() *workerMetrics {
	m := &workerMetrics{reg: prometheus.NewRegistry()}
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

func (m *workerMetrics) producer(p *sinkkafka.Producer) {
	m.prod.Store(p)
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maeembed_kafka_produced_total", Help: "Messages acknowledged by the brokers."},
			func() float64 { return float64(p.Produced()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "maeembed_kafka_produce_retries_total", Help: "Produce attempts retried."},
			func() float64 { return float64(p.Retries()) }))
}

func (m *workerMetrics) healthy() error {
	if m.fatal.Load() {
		return errors.New("fatal error")
	}
	return nil
}

func (m *workerMetrics) ready() error {
	switch s := m.src.Load(); {
	case !m.modelLoaded.Load():
		return errors.New("model loading")
	case s != nil && !s.Ready() && s.TopicsMissing():
		return errors.New("kafka input topics missing on the brokers")
	case s == nil || !s.Ready():
		return errors.New("kafka brokers not reachable")
	}
	if p := m.prod.Load(); p != nil {
		// The results are not written (the produces retry, the inputs
		// wait uncommitted): a missing output or dead-letter topic.
		if err := p.Failing(); err != nil {
			return fmt.Errorf("kafka output not written: %w", err)
		}
	}
	return nil
}
