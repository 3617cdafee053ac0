package kafka

import (
	"context"
	"errors"
	"log/slog"

	kgo "github.com/segmentio/kafka-go"

	"github.com/maeembed/maeembed/sinks"
)

// EmbeddingWriter writes embedding rows to an output topic, one message per
// row (EmbeddingMeta.Embedding), and acks each row once Produce returns:
// with nil when the brokers have it, else with the produce error. It has
// the shape of the file writers (sinks.Writer).
type EmbeddingWriter struct {
	p      *Producer
	meta   EmbeddingMeta
	ctx    context.Context
	cancel context.CancelFunc
	msgs   []kgo.Message
	vals   []byte
}

// NewEmbeddingWriter writes through p. Cancelling ctx (the run's abort)
// ends a Write that is retrying against an unreachable broker.
func NewEmbeddingWriter(ctx context.Context, p *Producer, meta EmbeddingMeta) *EmbeddingWriter {
	ctx, cancel := context.WithCancel(ctx)
	return &EmbeddingWriter{p: p, meta: meta, ctx: ctx, cancel: cancel}
}

// Write produces rows and returns once they are durable or failed; message
// values reuse one buffer, free again when Write returns.
func (w *EmbeddingWriter) Write(rows []sinks.Row) error {
	n := 4 * w.meta.Values()
	if cap(w.vals) < len(rows)*n {
		w.vals = make([]byte, len(rows)*n)
	}
	w.msgs = w.msgs[:0]
	for i := range rows {
		buf := w.vals[i*n : (i+1)*n : (i+1)*n]
		w.msgs = append(w.msgs, w.meta.Embedding(rows[i].ID, rows[i].Source, rows[i].Embedding, buf))
	}
	err := w.p.Produce(w.ctx, w.msgs...)
	for i := range rows {
		if a := rows[i].Ack; a != nil {
			a(err)
		}
	}
	return err
}

// Flush has nothing pending: every Write waited for the brokers.
func (w *EmbeddingWriter) Flush() error { return nil }

// Close has nothing pending: every Write waited for the brokers.
func (w *EmbeddingWriter) Close() error { w.cancel(); return nil }

// Abort ends a Write in progress (it may be called from another goroutine);
// its rows are acked with the error.
func (w *EmbeddingWriter) Abort() error { w.cancel(); return nil }

// DeadLetterWriter sends error rows to a dead-letter topic with their
// original bytes (DeadLetter) and acks each once Produce returns. A message
// the broker refuses for good (e.g. larger than message.max.bytes) is sent
// again without its bytes, with the refusal in a maeembed-error-dlq
// header, rather than block the input's offset for ever.
type DeadLetterWriter struct {
	p      *Producer
	topic  string
	ctx    context.Context
	cancel context.CancelFunc
	sent   func(n int)
}

// NewDeadLetterWriter writes to topic through p; sent, if set, counts the
// messages delivered. Cancelling ctx ends a Write that is retrying.
func NewDeadLetterWriter(ctx context.Context, p *Producer, topic string, sent func(n int)) *DeadLetterWriter {
	ctx, cancel := context.WithCancel(ctx)
	return &DeadLetterWriter{p: p, topic: topic, ctx: ctx, cancel: cancel, sent: sent}
}

// Write produces one message per row, in order.
func (w *DeadLetterWriter) Write(rows []sinks.ErrorRow) error {
	var first error
	for i := range rows {
		r := &rows[i]
		err := w.one(r)
		if r.Ack != nil {
			r.Ack(err)
		}
		if err != nil && first == nil {
			first = err
		} else if err == nil && w.sent != nil {
			w.sent(1)
		}
	}
	return first
}

func (w *DeadLetterWriter) one(r *sinks.ErrorRow) error {
	msg := DeadLetter(w.topic, r.ID, r.Source, r.Data, r.Stage, errors.New(r.Error))
	err := w.p.Produce(w.ctx, msg)
	if err != nil && w.ctx.Err() == nil {
		slog.Error("dead letter refused; sending it without the original bytes", "id", r.ID, "err", err)
		msg.Value = nil
		msg.Headers = append(msg.Headers, kgo.Header{Key: HeaderError + "-dlq", Value: []byte(err.Error())})
		err = w.p.Produce(w.ctx, msg)
	}
	return err
}

// Flush has nothing pending.
func (w *DeadLetterWriter) Flush() error { return nil }

// Close has nothing pending.
func (w *DeadLetterWriter) Close() error { w.cancel(); return nil }

// Abort ends a Write in progress; it may be called from another goroutine.
func (w *DeadLetterWriter) Abort() error { w.cancel(); return nil }

var (
	_ sinks.Writer[sinks.Row]      = (*EmbeddingWriter)(nil)
	_ sinks.Writer[sinks.ErrorRow] = (*DeadLetterWriter)(nil)
)
