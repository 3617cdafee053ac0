package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/sources"
)

func cluster(t *testing.T, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// consume reads n records of topic with franz-go, an independent client.
func consume(t *testing.T, addr, topic string, n int) []*franz.Record {
	t.Helper()
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.ConsumeTopics(topic), franz.ConsumeResetOffset(franz.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*franz.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %d of %d records of %s: %v", len(out), n, topic, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *franz.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// Output and dead-letter messages reach the broker with the documented keys,
// values and headers, as another client reads them.
func TestProduceEmbeddingsAndDeadLetters(t *testing.T) {
	addr := cluster(t, "out", "dlq")
	p, err := NewProducer(Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	meta := EmbeddingMeta{Topic: "out", Model: "tiny", Pool: "mean", Dim: 3, Precision: "int8", Kernel: "avx2"}
	vecs := map[string][]float32{"a": {1, -2.5, 3e-7}, "b": {0, 1, 2}}
	ctx := context.Background()
	start := time.Now()
	if err := p.Produce(ctx, meta.Embedding("a", "in/0/5", vecs["a"], nil), meta.Embedding("b", "in/1/7", vecs["b"], nil)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("produce took %v: batch timeout not applied", el)
	}
	if err := p.Produce(ctx, DeadLetter("dlq", "c", "in/2/0", []byte("not an image"), "decode", context.DeadlineExceeded)); err != nil {
		t.Fatal(err)
	}
	if p.Produced() != 3 {
		t.Errorf("produced %d, want 3", p.Produced())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range consume(t, addr, "out", 2) {
		want := vecs[string(r.Key)]
		got, err := DecodeFloat32(r.Value)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%s: %v %v", r.Key, got, err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s[%d] = %g, want %g", r.Key, i, got[i], want[i])
			}
		}
		if header(r, HeaderModel) != "tiny" || header(r, HeaderDim) != "3" || header(r, HeaderPool) != "mean" || header(r, HeaderSource) == "" ||
			header(r, HeaderPrecision) != "int8" || header(r, HeaderKernel) != "avx2" {
			t.Errorf("%s: headers %v", r.Key, r.Headers)
		}
	}
	d := consume(t, addr, "dlq", 1)[0]
	if string(d.Key) != "c" || string(d.Value) != "not an image" || header(d, HeaderStage) != "decode" ||
		header(d, HeaderError) != context.DeadlineExceeded.Error() || header(d, HeaderSource) != "in/2/0" {
		t.Errorf("dead letter %q %q %v", d.Key, d.Value, d.Headers)
	}
}

// With tokens, maeembed-dim is the width and maeembed-tokens the tokens
// per image; without, there is no maeembed-tokens header.
func TestEmbeddingHeadersOfTokens(t *testing.T) {
	m := EmbeddingMeta{Topic: "out", Model: "m", Pool: "tokens", Dim: 3, Tokens: 2}
	r := m.Embedding("a", "in/0/0", []float32{1, 2, 3, 4, 5, 6}, nil)
	got := map[string]string{}
	for _, h := range r.Headers {
		got[h.Key] = string(h.Value)
	}
	if got[HeaderDim] != "3" || got[HeaderTokens] != "2" || len(r.Value) != 24 || m.Values() != 6 {
		t.Errorf("headers %v, %d bytes, %d values", got, len(r.Value), m.Values())
	}
	m.Pool, m.Tokens = "mean", 0
	for _, h := range m.Embedding("a", "in/0/0", []float32{1, 2, 3}, nil).Headers {
		if h.Key == HeaderTokens {
			t.Errorf("a %s header without tokens", HeaderTokens)
		}
	}
}

// The same key always lands in the same partition (murmur2, as Java and
// librdkafka clients partition), so per-id order holds in the output.
func TestSameKeySamePartition(t *testing.T) {
	addr := cluster(t, "out")
	p, _ := NewProducer(Config{Brokers: []string{addr}})
	defer p.Close()
	meta := EmbeddingMeta{Topic: "out", Model: "m", Pool: "mean", Dim: 1}
	for i := 0; i < 4; i++ {
		if err := p.Produce(context.Background(), meta.Embedding("same", "x", []float32{float32(i)}, nil)); err != nil {
			t.Fatal(err)
		}
	}
	recs := consume(t, addr, "out", 4)
	for i, r := range recs {
		if r.Partition != recs[0].Partition {
			t.Fatalf("record %d in partition %d, first in %d", i, r.Partition, recs[0].Partition)
		}
		if v, _ := DecodeFloat32(r.Value); v[0] != float32(i) {
			t.Errorf("record %d = %v: order lost", i, v)
		}
	}
}

// A broker that is down makes Produce retry until it comes back or ctx ends.
func TestProduceRetriesUntilContextEnds(t *testing.T) {
	p, _ := NewProducer(Config{Brokers: []string{"127.0.0.1:1"}, WriteTimeout: 200 * time.Millisecond})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := p.Produce(ctx, DeadLetter("dlq", "x", "s", []byte("v"), "decode", context.Canceled))
	if err == nil || ctx.Err() == nil {
		t.Fatalf("err %v before the deadline", err)
	}
	if p.Retries() == 0 {
		t.Error("no retry counted")
	}
}

func TestFloat32RoundTrip(t *testing.T) {
	v := []float32{0, -0, 1.5, -3.25e-12, 7e30}
	b := EncodeFloat32(make([]byte, 0, 64), v)
	if len(b) != 20 || b[4] != 0 || b[8+3] != 0x3f { // 1.5 = 0x3fc00000 little-endian
		t.Fatalf("bytes %x", b)
	}
	got, err := DecodeFloat32(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if got[i] != v[i] {
			t.Errorf("%d: %g != %g", i, got[i], v[i])
		}
	}
	if _, err := DecodeFloat32(b[:5]); err == nil {
		t.Error("odd length accepted")
	}
}

// An error no retry can fix (a message over BatchBytes) returns at once
// instead of retrying until ctx ends.
func TestProducePermanentErrorNotRetried(t *testing.T) {
	addr := cluster(t, "dlq")
	p, err := NewProducer(Config{Brokers: []string{addr}, BatchBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Produce(ctx, DeadLetter("dlq", "x", "s", make([]byte, 4<<10), "decode", context.Canceled))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("err %v, ctx %v: want a prompt permanent error", err, ctx.Err())
	}
	if p.Retries() != 0 {
		t.Errorf("%d retries of a permanent error", p.Retries())
	}
}

// A dead letter keeps the input as it was sent: a zero-byte value stays
// zero bytes (not null), and a binary key comes back as its bytes, not as
// the escaped id; the output message has the input's key too.
func TestDeadLetterKeepsInputAsSent(t *testing.T) {
	addr := cluster(t, "dlq", "out")
	p, err := NewProducer(Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	key := "caf\xe9"
	if err := p.Produce(context.Background(), DeadLetter("dlq", sources.EscapeID(key), "in/0/3", nil, "decode", errors.New("empty"))); err != nil {
		t.Fatal(err)
	}
	meta := EmbeddingMeta{Topic: "out", Model: "m", Pool: "mean", Dim: 1}
	if err := p.Produce(context.Background(), meta.Embedding(sources.EscapeID(key), "in/0/4", []float32{1}, nil)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	d := consume(t, addr, "dlq", 1)[0]
	if d.Value == nil || len(d.Value) != 0 || string(d.Key) != key {
		t.Fatalf("dead letter key %q, value %v (nil: %v)", d.Key, d.Value, d.Value == nil)
	}
	if o := consume(t, addr, "out", 1)[0]; string(o.Key) != key {
		t.Fatalf("output key %q, want the input's %q", o.Key, key)
	}
}

// An input without a key (its id is its position, "topic/partition/offset")
// gives a dead letter and an output message without a key, not one keyed
// by the position; the source header carries the position.
func TestNullKeyStaysNull(t *testing.T) {
	addr := cluster(t, "dlq", "out")
	p, err := NewProducer(Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(context.Background(), DeadLetter("dlq", "images/1/5", "images/1/5", []byte("x"), "decode", errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	meta := EmbeddingMeta{Topic: "out", Model: "m", Pool: "mean", Dim: 1}
	if err := p.Produce(context.Background(), meta.Embedding("images/1/6", "images/1/6", []float32{1}, nil)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if d := consume(t, addr, "dlq", 1)[0]; d.Key != nil || header(d, HeaderSource) != "images/1/5" {
		t.Errorf("dead letter key %q (nil: %v), source %q; want a null key and the position in the header", d.Key, d.Key == nil, header(d, HeaderSource))
	}
	if o := consume(t, addr, "out", 1)[0]; o.Key != nil {
		t.Errorf("output key %q, want null", o.Key)
	}
}
