// Package kafka is the stream sink of maeembed: embeddings to an output
// topic (docs/streaming.md: key = id, value = little-endian float32 [D],
// headers maeembed-model/-dim/-tokens/-pool/-precision/-kernel/-source) and failed inputs to a dead-letter
// topic (original bytes, maeembed-error and maeembed-stage headers).
// Produce is synchronous with acks from all in-sync replicas: when it
// returns nil the messages are durable and their inputs may be acked.
package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/maeembed/maeembed/kafkaconn"
	"github.com/maeembed/maeembed/sources"
)

// Header names of the output and dead-letter messages (docs/streaming.md).
const (
	HeaderModel = "maeembed-model"
	// HeaderDim is the embedding width D; HeaderTokens, sent with
	// --pool tokens only, the tokens per image (1+L): the value then holds
	// Tokens·D floats, as maeembed.dim and maeembed.tokens say in files.
	HeaderDim    = "maeembed-dim"
	HeaderTokens = "maeembed-tokens"
	HeaderPool   = "maeembed-pool"
	// HeaderPrecision and HeaderKernel carry the model's arithmetic, as
	// maeembed.precision and maeembed.kernel do in files.
	HeaderPrecision = "maeembed-precision"
	HeaderKernel    = "maeembed-kernel"
	HeaderSource    = "maeembed-source"
	HeaderError     = "maeembed-error"
	HeaderStage     = "maeembed-stage"
)

// Config configures a Producer.
type Config struct {
	Brokers  []string
	Security kafkaconn.Security
	// BatchTimeout is how long kafka-go waits to fill a batch; its default
	// of 1 s would add a second to every produce, so ours is 5 ms.
	BatchTimeout time.Duration
	// BatchBytes caps a produce request; default 16 MiB (a DLQ message
	// carries a whole image).
	BatchBytes int64
	// WriteTimeout bounds one produce attempt; default 10 s.
	WriteTimeout time.Duration
	// TopicFlags names the flag that gave each topic (e.g. "embeddings":
	// "--output-topic"), for the log line and the Failing error that say
	// how to fix a topic the brokers do not have.
	TopicFlags map[string]string
}

// Producer writes to output and dead-letter topics. Safe for concurrent
// use.
type Producer struct {
	w        *kgo.Writer
	cfg      Config // Brokers and Security, for the errors
	flags    map[string]string
	produced atomic.Int64
	retries  atomic.Int64

	mu sync.Mutex
	// failing holds, per topic, why its produce is being retried: set by a
	// failed attempt, removed by a successful one (Failing).
	failing map[string]error
}

// NewProducer makes a producer; it connects lazily.
func NewProducer(cfg Config) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka producer: no brokers")
	}
	tr, err := cfg.Security.Transport()
	if err != nil {
		return nil, err
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 16 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	w := &kgo.Writer{
		Addr:         kgo.TCP(cfg.Brokers...),
		Transport:    tr,
		Balancer:     &kgo.Murmur2Balancer{}, // same key → same partition as Java clients and librdkafka's murmur2
		RequiredAcks: kgo.RequireAll,         // kafka-go's default is RequireNone: not durable
		BatchTimeout: cfg.BatchTimeout,
		BatchBytes:   cfg.BatchBytes,
		BatchSize:    1000,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		MaxAttempts:  3,
		ErrorLogger:  kgo.LoggerFunc(func(f string, a ...any) { slog.Debug("kafka-go writer: " + fmt.Sprintf(f, a...)) }),
	}
	return &Producer{w: w, cfg: cfg, flags: cfg.TopicFlags, failing: map[string]error{}}, nil
}

// Produce writes msgs and returns once all are acknowledged by the
// brokers. Transient failures (broker down, leader moving, a topic that
// does not exist yet) are retried with backoff until ctx ends; while they
// last, Failing says so. A permanent one (e.g. message too large) is
// returned (for refused rights, saying so: kafkaconn.Security.AuthError).
// A missing topic is logged once, as an error naming the topic and its
// flag (Config.TopicFlags); other failures once per attempt.
func (p *Producer) Produce(ctx context.Context, msgs ...kgo.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var names []string // msgs' topics, listed once a failure needs them
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.w.WriteMessages(ctx, msgs...)
		if err == nil {
			p.produced.Add(int64(len(msgs)))
			if p.recovered(msgs) || attempt > 1 {
				slog.Info("kafka: produce succeeded after retries", "topics", strings.Join(topics(msgs), ","), "attempts", attempt)
			}
			return nil
		}
		if names == nil {
			names = topics(msgs)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kafka produce: %w (after %d attempts: %v)", ctx.Err(), attempt, err)
		}
		if permanent(err) {
			if anyWriteError(err, kafkaconn.AuthFailed) {
				// Named as the consumer names it: the user, the mechanism.
				err = p.cfg.Security.AuthError(p.cfg.Brokers, err)
			}
			return fmt.Errorf("kafka produce to %s: %w", strings.Join(names, ","), err)
		}
		p.retries.Add(1)
		missing := missingTopic(err)
		switch first := p.fail(names, err); {
		case missing && first:
			slog.Error("kafka: "+describe(p.flags, names, err)+"; retrying until it exists (the inputs wait uncommitted)",
				"messages", len(msgs), "err", err)
		case missing:
			slog.Debug("kafka: produce to a missing topic failed; retrying", "topics", strings.Join(names, ","), "attempt", attempt, "backoff", backoff)
		default:
			slog.Warn("kafka: produce failed; retrying", "topics", strings.Join(names, ","), "messages", len(msgs), "attempt", attempt, "backoff", backoff, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("kafka produce: %w (after %d attempts: %v)", ctx.Err(), attempt, err)
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// fail records err as why the produce to names is retried; first is true
// when a topic of names was not failing already, or failing in another
// way (missing, or not: missingTopic), so that a topic found missing
// after other failures is still reported once.
func (p *Producer) fail(names []string, err error) (first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range names {
		if prev := p.failing[t]; prev == nil || missingTopic(prev) != missingTopic(err) {
			first = true
		}
		p.failing[t] = err
	}
	return first
}

// recovered clears the failures of msgs' topics; it reports whether one
// was set. It allocates nothing: it runs after every produce.
func (p *Producer) recovered(msgs []kgo.Message) (was bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failing) == 0 {
		return false
	}
	for i := range msgs {
		if t := msgs[i].Topic; p.failing[t] != nil {
			was = true
			delete(p.failing, t)
		}
	}
	return was
}

// Failing reports why produces are being retried, per topic (nil when
// none is): a topic the brokers do not have (named with its flag, see
// Config.TopicFlags) or the last error of another failure. It clears once
// a produce to the topic succeeds. A worker is not ready meanwhile: its
// results are not written, and its inputs wait uncommitted.
func (p *Producer) Failing() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.failing))
	for t := range p.failing {
		names = append(names, t)
	}
	slices.Sort(names)
	var errs []error
	for _, t := range names {
		errs = append(errs, errors.New(describe(p.flags, []string{t}, p.failing[t])))
	}
	return errors.Join(errs...)
}

// MissingTopicError is the error of a topic the brokers do not have,
// named with the flag that gave it (flag may be ""), in the words the
// producer logs and Failing reports: which topic, and how to fix it. A
// worker's start-up check of its dead-letter topic returns it.
func MissingTopicError(topic, flag string) error {
	return errors.New(describe(map[string]string{topic: flag}, []string{topic}, kgo.UnknownTopicOrPartition))
}

// describe says why the produce to names fails: for a topic the brokers
// do not have, which and how to fix it. flags names the flag of each
// topic (Config.TopicFlags).
func describe(flags map[string]string, names []string, err error) string {
	var named []string
	for _, t := range names {
		if f := flags[t]; f != "" {
			named = append(named, fmt.Sprintf("%q (%s)", t, f))
		} else {
			named = append(named, strconv.Quote(t))
		}
	}
	what := "topic " + strings.Join(named, ", ")
	if !missingTopic(err) {
		return fmt.Sprintf("produce to %s failing: %v", what, err)
	}
	var given []string
	for _, t := range names {
		if f := flags[t]; f != "" && !slices.Contains(given, f) {
			given = append(given, f)
		}
	}
	fix := "create it"
	if len(given) > 0 {
		fix += " or correct " + strings.Join(given, " / ")
	}
	return fmt.Sprintf("%s does not exist on the brokers: %s (the worker does not create topics)", what, fix)
}

// missingTopic reports a produce refused because the brokers do not have
// the topic. The writer's metadata requests do not ask for topics to be
// created (kgo.Writer.AllowAutoTopicCreation is off), so brokers that
// create topics on demand do not create these either.
func missingTopic(err error) bool {
	return anyWriteError(err, func(err error) bool { return errors.Is(err, kgo.UnknownTopicOrPartition) })
}

// permanent reports errors a retry cannot fix.
func permanent(err error) bool { return anyWriteError(err, permanentOne) }

func permanentOne(err error) bool {
	var tooLarge kgo.MessageTooLargeError // refused client-side (BatchBytes)
	return errors.As(err, &tooLarge) || errors.Is(err, kgo.MessageSizeTooLarge) || errors.Is(err, kgo.InvalidTopic) ||
		errors.Is(err, kgo.RecordListTooLarge) || kafkaconn.AuthFailed(err) // refused credentials or rights, as the consumer's
}

// anyWriteError reports whether pred holds for err or, when err is a
// batch's kgo.WriteErrors, for any one of its messages' errors.
func anyWriteError(err error, pred func(error) bool) bool {
	var we kgo.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && pred(e) {
				return true
			}
		}
		return false
	}
	return pred(err)
}

// topics lists the topics of msgs, each once, in order.
func topics(msgs []kgo.Message) []string {
	var out []string
	for _, m := range msgs {
		if !slices.Contains(out, m.Topic) {
			out = append(out, m.Topic)
		}
	}
	return out
}

// Produced is the number of messages acknowledged so far.
func (p *Producer) Produced() int64 { return p.produced.Load() }

// Retries is the number of failed produce attempts that were retried.
func (p *Producer) Retries() int64 { return p.retries.Load() }

// Close flushes and closes the connections.
func (p *Producer) Close() error { return p.w.Close() }

// EmbeddingMeta is what every output message says about its vector.
type EmbeddingMeta struct {
	Topic string
	Model string
	Pool  string
	Dim   int // the embedding width D
	// Tokens is 0, or with Pool "tokens" the tokens per image (1+L): a
	// message's value is then [Tokens, Dim] float32.
	Tokens int
	// Precision and Kernel (kernels.Arithmetic) become headers when set.
	Precision, Kernel string
}

// Values is the number of float32 of one message's value: Dim, or
// Tokens·Dim.
func (e EmbeddingMeta) Values() int { return max(1, e.Tokens) * e.Dim }

// Embedding builds the output message of one input, keyed by the id's
// bytes (sources.UnescapeID: a binary input key comes out as it went in;
// an input without a key gives a message without one, see inputKey).
// The value is vec as little-endian float32; buf, if large enough, is
// reused for it (the message then aliases buf until Produce returns).
func (e EmbeddingMeta) Embedding(id, source string, vec []float32, buf []byte) kgo.Message {
	// Room for the optional headers: one allocation per message, not two.
	h := append(make([]kgo.Header, 0, 7),
		kgo.Header{Key: HeaderModel, Value: []byte(e.Model)},
		kgo.Header{Key: HeaderDim, Value: []byte(strconv.Itoa(e.Dim))},
		kgo.Header{Key: HeaderPool, Value: []byte(e.Pool)},
		kgo.Header{Key: HeaderSource, Value: []byte(source)},
	)
	if e.Tokens > 0 {
		h = append(h, kgo.Header{Key: HeaderTokens, Value: []byte(strconv.Itoa(e.Tokens))})
	}
	if e.Precision != "" {
		h = append(h, kgo.Header{Key: HeaderPrecision, Value: []byte(e.Precision)})
	}
	if e.Kernel != "" {
		h = append(h, kgo.Header{Key: HeaderKernel, Value: []byte(e.Kernel)})
	}
	return kgo.Message{Topic: e.Topic, Key: inputKey(id, source), Value: EncodeFloat32(buf, vec), Headers: h}
}

// DeadLetter builds the dead-letter message of a failed input: its original
// bytes under its original key (the id unescaped, sources.UnescapeID; no
// key for an input without one, see inputKey), with the stage and error. A zero-byte value stays a zero-byte value, not a
// null one (the consumer gives nil for both; an input of no bytes is far
// likelier than a tombstone in a topic of images).
func DeadLetter(topic, id, source string, data []byte, stage string, err error) kgo.Message {
	if data == nil {
		data = []byte{}
	}
	return kgo.Message{
		Topic: topic,
		Key:   inputKey(id, source),
		Value: data,
		Headers: []kgo.Header{
			{Key: HeaderError, Value: []byte(err.Error())},
			{Key: HeaderStage, Value: []byte(stage)},
			{Key: HeaderSource, Value: []byte(source)},
		},
	}
}

// inputKey is the key of the input message with this id and source
// ("topic/partition/offset"): the id unescaped, or nil when the id is the
// source itself, the id the Kafka source gives a message without a key (so
// a null key stays null; the source header says where the input was).
func inputKey(id, source string) []byte {
	if id == source {
		return nil
	}
	return []byte(sources.UnescapeID(id))
}

// EncodeFloat32 writes vec as little-endian float32 into buf (grown if
// needed) and returns the bytes.
func EncodeFloat32(buf []byte, vec []float32) []byte {
	n := 4 * len(vec)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	for i, v := range vec {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return buf
}

// DecodeFloat32 is the inverse of EncodeFloat32.
func DecodeFloat32(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("embedding value of %d bytes is not a whole number of float32", len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
