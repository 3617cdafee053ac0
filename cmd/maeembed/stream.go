package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	sinkkafka "github.com/maeembed/maeembed/sinks/kafka"
	"github.com/maeembed/maeembed/sources"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// StreamOptions are the stream-only settings; with Options they are the
// one configuration of `maeembed stream`, from YAML (same keys) and flags.
type StreamOptions struct {
	Brokers         []string          `yaml:"brokers"`
	Topics          []string          `yaml:"topics"`
	Group           string            `yaml:"group"`
	StartOffset     string            `yaml:"start_offset"`
	OutputTopic     string            `yaml:"output_topic"`
	DLQTopic        string            `yaml:"dlq_topic"`
	MetricsAddr     string            `yaml:"metrics_addr"`
	BatchLatency    time.Duration     `yaml:"batch_latency"`
	MaxInFlight     int               `yaml:"max_in_flight"`
	FetchMinBytes   int               `yaml:"fetch_min_bytes"`
	FetchMaxBytes   int               `yaml:"fetch_max_bytes"`
	FetchMaxWait    time.Duration     `yaml:"fetch_max_wait"`
	CommitInterval  time.Duration     `yaml:"commit_interval"`
	SessionTimeout  time.Duration     `yaml:"session_timeout"`
	FlushInterval   time.Duration     `yaml:"flush_interval"`
	MaxFileRows     int               `yaml:"max_file_rows"`
	MaxFileBytes    int64             `yaml:"max_file_bytes"`
	ProduceLinger   time.Duration     `yaml:"produce_linger"`
	ShutdownTimeout time.Duration     `yaml:"shutdown_timeout"`
	Security        srckafka.Security `yaml:",inline"`
}

func defaultStreamOptions() StreamOptions {
	return StreamOptions{
		Group: "maeembed", StartOffset: "earliest", BatchLatency: 50 * time.Millisecond, MaxInFlight: 512,
		CommitInterval: time.Second, SessionTimeout: 30 * time.Second, FlushInterval: 10 * time.Second,
		MaxFileRows: 100_000, ProduceLinger: 5 * time.Millisecond, ShutdownTimeout: 20 * time.Second,
	}
}

// streamConfig is the YAML document of a stream config file.
type streamConfig struct {
	Options       `yaml:",inline"`
	StreamOptions `yaml:",inline"`
}

// listFlag is a repeatable, comma-splitting string flag (--topic a --topic b,c).
type listFlag struct {
	v   *[]string
	set bool
}

func (l *listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set { // the first flag replaces the config file's list
		*l.v, l.set = nil, true
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

func parseStreamOptions(args []string) (*streamConfig, error) {
	c := &streamConfig{Options: defaultOptions(), StreamOptions: defaultStreamOptions()}
	if err := loadConfigFile(args, c); err != nil {
		return nil, err
	}
	o, s := &c.Options, &c.StreamOptions
	fs := flag.NewFlagSet("maeembed stream", flag.ContinueOnError)
	var configFile string
	fs.StringVar(&configFile, "config-file", "", "YAML file with these options (flags override it)")
	modelFlags(fs, o)
	for _, n := range []string{"output", "o"} {
		fs.StringVar(&o.Output, n, o.Output, "directory of rolling Parquet part files (one worker per directory)")
	}
	preprocessFlags(fs, o)
	fs.StringVar(&o.Pool, "pool", o.Pool, "cls | mean | tokens | global")

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
	fs.IntVar(&s.MaxFileRows, "max-file-rows", s.MaxFileRows, "publish a Parquet part at this many rows")
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: stream takes no INPUT arguments (got %q): it reads --topic", errUsage, fs.Arg(0))
	}
	if pw := os.Getenv("MAEEMBED_SASL_PASSWORD"); pw != "" && sec.SASLPassword == "" {
		sec.SASLPassword = pw
	}
	switch {
	case len(s.Brokers) == 0:
		return nil, fmt.Errorf("%w: stream needs --brokers", errUsage)
	case len(s.Topics) == 0:
		return nil, fmt.Errorf("%w: stream needs at least one --topic", errUsage)
	case o.Output == "" && s.OutputTopic == "":
		return nil, fmt.Errorf("%w: stream needs --output DIR and/or --output-topic T", errUsage)
	case o.BatchSize < 1:
		return nil, fmt.Errorf("%w: --batch-size must be at least 1, got %d", errUsage, o.BatchSize)
	case s.MaxInFlight < o.BatchSize:
		return nil, fmt.Errorf("%w: --max-in-flight %d is below --batch-size %d", errUsage, s.MaxInFlight, o.BatchSize)
	case s.ShutdownTimeout <= 0:
		return nil, fmt.Errorf("%w: --shutdown-timeout must be positive", errUsage)
	}
	return c, nil
}

// ackQueue holds the acks of rows written to a rolling writer until the part
// file holding them is published: rows publish in write order, so OnPublish
// acks the oldest n.
type ackQueue struct {
	mu      sync.Mutex
	pending []func(error)
	flusher sinks.Flusher
	// limit triggers an early publish: acks wait for publication and the
	// source stops fetching at max-in-flight, so waiting for the timer
	// with that many rows pending would stall the stream.
	limit int
}

// published is the writer's OnPublish; it runs inside write/flush, under mu.
func (q *ackQueue) published(_ string, rows int) {
	for _, ack := range q.pending[:rows] {
		ack(nil)
	}
	q.pending = append(q.pending[:0], q.pending[rows:]...)
}

// write appends acks then writes (the write may publish them at once).
func (q *ackQueue) write(acks []func(error), write func() error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, acks...)
	if err := write(); err != nil {
		return err
	}
	if len(q.pending) >= q.limit {
		return q.flusher.Flush()
	}
	return nil
}

func (q *ackQueue) flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flusher.Flush()
}

// finish closes the writer (publishing the last part) or, if that fails,
// aborts it and fails the pending acks so their offsets stay uncommitted.
func (q *ackQueue) finish(close, abort func() error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := close()
	if err != nil {
		abort()
	}
	for _, ack := range q.pending {
		ack(fmt.Errorf("not published: %v", err))
	}
	q.pending = nil
	return err
}

// joinAck calls ack once all n outputs of an item are durable, with the
// first error if any failed.
func joinAck(n int, ack func(error)) func(error) {
	if n == 1 {
		return ack
	}
	var left atomic.Int32
	left.Store(int32(n))
	var mu sync.Mutex
	var first error
	return func(err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
		if left.Add(-1) == 0 {
			mu.Lock()
			defer mu.Unlock()
			ack(first)
		}
	}
}

// lockDir takes an exclusive lock on dir for this process, so two workers
// never number part files in the same directory.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".maeembed-stream.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("output %s is used by another running worker (%v): give each worker its own --output directory", dir, err)
	}
	return f, nil
}

// streamMetrics are the worker's own counters, beside the consumer's.
type streamMetrics struct {
	p                       atomic.Pointer[pipeline.Pipeline]
	written, failed         atomic.Int64
	deadLetters, published  atomic.Int64
	model, write            *srckafka.Histogram
	fatal                   atomic.Bool
	modelLoaded, outputOpen atomic.Bool
}

func (m *streamMetrics) serve(addr string, src func() *srckafka.Source, prod func() *sinkkafka.Producer) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if m.fatal.Load() {
			http.Error(w, "fatal error", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		s := src()
		switch {
		case !m.modelLoaded.Load():
			http.Error(w, "model loading", http.StatusServiceUnavailable)
		case s == nil || !s.Ready():
			http.Error(w, "kafka brokers not reachable", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		srckafka.WriteMetric(w, "maeembed_images_written_total", "counter", "Embeddings written (Parquet rows or output messages).", float64(m.written.Load()))
		srckafka.WriteMetric(w, "maeembed_images_failed_total", "counter", "Inputs that failed at some stage.", float64(m.failed.Load()))
		srckafka.WriteMetric(w, "maeembed_dead_letters_total", "counter", "Inputs sent to the dead-letter topic.", float64(m.deadLetters.Load()))
		srckafka.WriteMetric(w, "maeembed_parquet_parts_published_total", "counter", "Parquet part files published.", float64(m.published.Load()))
		if p := prod(); p != nil {
			srckafka.WriteMetric(w, "maeembed_kafka_produced_total", "counter", "Messages acknowledged by the brokers.", float64(p.Produced()))
			srckafka.WriteMetric(w, "maeembed_kafka_produce_retries_total", "counter", "Produce attempts retried.", float64(p.Retries()))
		}
		if p := m.p.Load(); p != nil {
			stats := p.Stats()
			for _, k := range []struct{ name, typ, help string }{
				{"maeembed_stage_items_total", "counter", "Items through each pipeline stage."},
				{"maeembed_stage_errors_total", "counter", "Per-item failures per stage."},
				{"maeembed_stage_busy_seconds_total", "counter", "Time spent in each stage, summed over its workers (busy/items = mean latency)."},
				{"maeembed_stage_queue", "gauge", "Items waiting in each stage's input queue."},
			} {
				fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", k.name, k.help, k.name, k.typ)
				for _, s := range stats {
					var v float64
					switch k.name {
					case "maeembed_stage_items_total":
						v = float64(s.Items)
					case "maeembed_stage_errors_total":
						v = float64(s.Errors)
					case "maeembed_stage_busy_seconds_total":
						v = s.Busy.Seconds()
					default:
						v = float64(s.Queue)
					}
					fmt.Fprintf(w, "%s{stage=%q} %g\n", k.name, s.Name, v)
				}
			}
		}
		m.model.Write(w, "maeembed_model_batch_seconds", "Forward pass per batch.", "")
		m.write.Write(w, "maeembed_write_batch_seconds", "Writing one batch until its outputs are durable or queued for the next part.", "")
		if s := src(); s != nil {
			s.WriteMetrics(w)
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	slog.Info("metrics and health endpoints", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

var errShutdownTimeout = errors.New("shutdown timeout: aborted the items still in flight (their offsets are not committed; they will be redelivered)")

// stream consumes images from Kafka and writes embeddings to rolling
// Parquet and/or an output topic, at least once.
func (e *env) stream(args []string) error {
	c, err := parseStreamOptions(args)
	if err != nil {
		return err
	}
	o, so := &c.Options, &c.StreamOptions
	pool, err := mae.ParsePool(o.Pool)
	if err != nil {
		return fmt.Errorf("%w: --pool: %v", errUsage, err)
	}
	pre, err := o.preprocess()
	if err != nil {
		return err
	}
	r := &imageRun{o: o, pre: pre, batchLatency: so.BatchLatency, keepData: so.DLQTopic != "", streaming: true}

	met := &streamMetrics{model: srckafka.NewHistogram(srckafka.LatencyBuckets), write: srckafka.NewHistogram(srckafka.LatencyBuckets)}
	var srcPtr atomic.Pointer[srckafka.Source]
	var prodPtr atomic.Pointer[sinkkafka.Producer]
	if so.MetricsAddr != "" {
		stop, err := met.serve(so.MetricsAddr, srcPtr.Load, prodPtr.Load)
		if err != nil {
			return err
		}
		defer stop()
	}

	em, meta, err := e.openEmbedder(o, pool, r)
	if err != nil {
		return err
	}
	met.modelLoaded.Store(true)

	// Outputs. Each item's ack waits for all of them.
	var emb, errq *ackQueue
	var embW sinks.EmbeddingWriter
	var errW sinks.ErrorWriter
	if o.Output != "" {
		lock, err := lockDir(o.Output)
		if err != nil {
			return err
		}
		defer lock.Close()
		if err := sinks.CleanTemps(o.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		limit := max(1, so.MaxInFlight/2)
		emb, errq = &ackQueue{limit: limit}, &ackQueue{limit: limit}
		popts := func(q *ackQueue) sinks.ParquetOptions {
			return sinks.ParquetOptions{MaxFileRows: so.MaxFileRows, MaxFileBytes: so.MaxFileBytes, OnPublish: func(path string, rows int) {
				met.published.Add(1)
				slog.Debug("published", "path", path, "rows", rows)
				q.published(path, rows)
			}}
		}
		if embW, err = sinks.NewParquet(o.Output, meta, popts(emb)); err != nil {
			return err
		}
		if errW, err = sinks.NewErrors(o.Output, meta, popts(errq)); err != nil {
			embW.Abort()
			return err
		}
		emb.flusher, errq.flusher = embW.(sinks.Flusher), errW.(sinks.Flusher)
	}
	var prod *sinkkafka.Producer
	if so.OutputTopic != "" || so.DLQTopic != "" {
		prod, err = sinkkafka.NewProducer(sinkkafka.Config{Brokers: so.Brokers, Security: so.Security, BatchTimeout: so.ProduceLinger})
		if err != nil {
			return err
		}
		prodPtr.Store(prod)
	}
	outMeta := sinkkafka.EmbeddingMeta{Topic: so.OutputTopic, Model: o.Model, Pool: string(pool), Dim: em.dim}

	src, err := srckafka.Open(srckafka.Config{
		Brokers: so.Brokers, Topics: so.Topics, Group: so.Group, StartOffset: so.StartOffset, Security: so.Security,
		MinBytes: so.FetchMinBytes, MaxBytes: so.FetchMaxBytes, MaxWait: so.FetchMaxWait, MaxInFlight: so.MaxInFlight,
		CommitInterval: so.CommitInterval, SessionTimeout: so.SessionTimeout, CloseTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	srcPtr.Store(src)

	// runCtx outlives e.ctx: a signal (e.ctx done) drains the pipeline
	// instead of aborting it; the shutdown timeout aborts what is left.
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	flushDone := make(chan struct{})
	var flushWG sync.WaitGroup
	r.onStart = func(p *pipeline.Pipeline) {
		met.p.Store(p)
		flushWG.Add(1)
		go func() {
			defer flushWG.Done()
			var tick <-chan time.Time
			if emb != nil {
				t := time.NewTicker(so.FlushInterval)
				defer t.Stop()
				tick = t.C
			}
			for {
				select {
				case <-tick:
					if err := emb.flush(); err != nil {
						slog.Error("publish parquet part", "err", err)
						met.fatal.Store(true)
						p.Abort(fmt.Errorf("publish: %w", err))
					}
					if err := errq.flush(); err != nil {
						slog.Error("publish error part", "err", err)
					}
				case <-e.ctx.Done():
					slog.Info("stopping: no new messages; finishing the ones in flight", "timeout", so.ShutdownTimeout)
					p.Drain()
					t := time.NewTimer(so.ShutdownTimeout)
					select {
					case <-t.C:
						slog.Error("shutdown timeout: aborting", "timeout", so.ShutdownTimeout)
						p.Abort(errShutdownTimeout)
					case <-flushDone:
						t.Stop()
					}
					return
				case <-flushDone:
					return
				}
			}
		}()
	}

	r.onFail = func(it sources.Item, stage string, ferr error) {
		met.failed.Add(1)
		switch {
		case so.DLQTopic != "":
			msg := sinkkafka.DeadLetter(so.DLQTopic, it.ID, it.Pos.String(), it.Data, stage, ferr)
			err := prod.Produce(runCtx, msg)
			if err != nil && runCtx.Err() == nil {
				// A permanent refusal (e.g. the image exceeds the broker's
				// message.max.bytes): dead-letter the headers alone rather
				// than block the partition's commits for ever.
				slog.Error("dead letter refused; sending it without the original bytes", "id", it.ID, "err", err)
				msg.Value = nil
				msg.Headers = append(msg.Headers, kgo.Header{Key: sinkkafka.HeaderError + "-dlq", Value: []byte(err.Error())})
				err = prod.Produce(runCtx, msg)
			}
			if err != nil {
				it.Ack(err)
				return
			}
			met.deadLetters.Add(1)
			it.Ack(nil)
		case errW != nil:
			row := []sinks.ErrorRow{{ID: it.ID, Stage: stage, Error: ferr.Error()}}
			if err := errq.write([]func(error){it.Ack}, func() error { return errW.Write(row) }); err != nil {
				slog.Error("write error row", "err", err)
			}
		default:
			it.Ack(nil) // no dead-letter topic and no error files: dropped, logged and counted
		}
	}

	rows := make([]sinks.Row, 0, o.BatchSize)
	acks := make([]func(error), 0, o.BatchSize)
	msgs := make([]kgo.Message, 0, o.BatchSize)
	produceAcks := make([]func(error), 0, o.BatchSize)
	// Message values of one batch: Produce is synchronous and the write
	// stage has one worker, so a batch's values are free once it returns.
	valBytes := 4 * em.dim
	vals := make([]byte, o.BatchSize*valBytes)
	outputs := 0
	if embW != nil {
		outputs++
	}
	if so.OutputTopic != "" {
		outputs++
	}
	err = r.run(runCtx, src,
		func(b []prepared) (output, error) {
			start := time.Now()
			out, err := em.run(b)
			if err == nil {
				met.model.Observe(time.Since(start).Seconds())
			}
			return out, err
		},
		func(out output) error {
			start := time.Now()
			defer em.release(out)
			rows, acks, msgs, produceAcks = rows[:0], acks[:0], msgs[:0], produceAcks[:0]
			for i, x := range out.items {
				v := em.vector(out, i)
				ack := joinAck(outputs, x.it.Ack)
				if embW != nil {
					rows = append(rows, sinks.Row{ID: x.it.ID, Width: int32(x.w), Height: int32(x.h), Embedding: v})
					acks = append(acks, ack)
				}
				if so.OutputTopic != "" {
					buf := vals[i*valBytes : (i+1)*valBytes : (i+1)*valBytes]
					msgs = append(msgs, outMeta.Embedding(x.it.ID, x.it.Pos.String(), v, buf))
					produceAcks = append(produceAcks, ack)
				}
			}
			if embW != nil {
				if err := emb.write(acks, func() error { return embW.Write(rows) }); err != nil {
					return err
				}
			}
			if len(msgs) > 0 {
				if err := prod.Produce(runCtx, msgs...); err != nil {
					for _, a := range produceAcks {
						a(err)
					}
					return err
				}
				for _, a := range produceAcks {
					a(nil)
				}
			}
			met.written.Add(int64(len(out.items)))
			met.write.Observe(time.Since(start).Seconds())
			return nil
		})
	close(flushDone)
	flushWG.Wait()
	if err != nil {
		met.fatal.Store(true)
	}
	// Publish what is written (complete rows, even after an abort), then
	// commit what is durable and leave the group.
	if embW != nil {
		if ferr := emb.finish(embW.Close, embW.Abort); ferr != nil && err == nil {
			err = ferr
		}
		if ferr := errq.finish(errW.Close, errW.Abort); ferr != nil && err == nil {
			err = ferr
		}
	}
	if prod != nil {
		if perr := prod.Close(); perr != nil {
			slog.Warn("kafka producer close", "err", perr)
		}
	}
	if cerr := src.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
