package kafka

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/maeembed/maeembed/sinks"
)

// Rows handed to the writer are acked with nil once the brokers have them,
// and another client reads them back.
func TestEmbeddingWriterAcksAfterProduce(t *testing.T) {
	addr := cluster(t, "out")
	p, err := NewProducer(Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := NewEmbeddingWriter(context.Background(), p, EmbeddingMeta{Topic: "out", Model: "m", Pool: "mean", Dim: 2})
	acks := map[string][]error{}
	ack := func(id string) func(error) { return func(err error) { acks[id] = append(acks[id], err) } }
	rows := []sinks.Row{
		{ID: "a", Embedding: []float32{1, 2}, Source: "in/0/7", Ack: ack("a")},
		{ID: "b", Embedding: []float32{3, 4}, Source: "in/0/8", Ack: ack("b")},
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if c := acks[id]; len(c) != 1 || c[0] != nil {
			t.Errorf("%s acks %v, want one nil", id, c)
		}
	}
	recs := consume(t, addr, "out", 2)
	for _, r := range recs {
		if header(r, HeaderSource) == "" {
			t.Errorf("record %s without %s", r.Key, HeaderSource)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// With the broker down, Produce retries; Abort from another goroutine ends
// the Write, which acks its rows with the error (so their offsets are not
// committed).
func TestWriterAbortEndsRetriesWithBrokerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens here now
	p, err := NewProducer(Config{Brokers: []string{down}, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, kind := range []string{"embeddings", "dead letters"} {
		t.Run(kind, func(t *testing.T) {
			var acked []error
			ack := func(err error) { acked = append(acked, err) }
			var write func() error
			var abort func() error
			if kind == "embeddings" {
				w := NewEmbeddingWriter(context.Background(), p, EmbeddingMeta{Topic: "out", Dim: 1})
				write = func() error { return w.Write([]sinks.Row{{ID: "x", Embedding: []float32{1}, Ack: ack}}) }
				abort = w.Abort
			} else {
				w := NewDeadLetterWriter(context.Background(), p, "dlq", nil)
				write = func() error { return w.Write([]sinks.ErrorRow{{ID: "x", Stage: "decode", Error: "bad", Ack: ack}}) }
				abort = w.Abort
			}
			done := make(chan error, 1)
			go func() { done <- write() }()
			time.Sleep(300 * time.Millisecond) // let it start retrying
			abort()
			select {
			case err := <-done:
				if err == nil || !errors.Is(err, context.Canceled) {
					t.Errorf("aborted write returned %v, want context.Canceled", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("Abort did not end the produce retries")
			}
			if len(acked) != 1 || acked[0] == nil {
				t.Errorf("acks %v, want one error", acked)
			}
		})
	}
}
