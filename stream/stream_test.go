package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
	"github.com/maeembed/maeembed/stages"
)

const tiny = "../mae/testdata/fixtures/tiny32"

// A worker embeds what is on the topic into Parquet parts (bad inputs into
// errors/), publishing on its timer while the topic is quiet; a drain
// then ends it cleanly and every input is durable exactly once.
func TestWorkerPublishesEveryMessage(t *testing.T) {
	addr := topicWithImages(t, 20, func(i int) bool { return i%7 == 3 })

	out := t.TempDir()
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   out,
		Engine:   engine.Config{BatchSize: 4, Workers: 2, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	res := runUntilPublished(t, cfg, openTiny, 20)
	if c := res.Counts; c.Written != 17 || c.Failed != 3 || c.Lost != 0 {
		t.Errorf("counts %+v, want 17 written, 3 failed", c)
	}
}

// padPNG inserts a private ancillary chunk of n bytes after the IHDR of a
// PNG: a valid PNG (decoders skip the chunk) whose bytes are n larger.
func padPNG(t *testing.T, png []byte, n int) []byte {
	t.Helper()
	const ihdrEnd = 8 + 4 + 4 + 13 + 4 // signature, IHDR length, type, data, CRC
	if len(png) < ihdrEnd || string(png[12:16]) != "IHDR" {
		t.Fatal("not a PNG with IHDR first")
	}
	chunk := binary.BigEndian.AppendUint32(nil, uint32(n))
	chunk = append(chunk, "prVt"...)
	chunk = append(chunk, make([]byte, n)...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	return slices.Concat(png[:ihdrEnd], chunk, png[ihdrEnd:])
}

// The values of fetched messages count against the worker's memory budget
// until they are dropped or dead-lettered: the budget's peak stays within
// its size while messages larger than its input share go through one at a
// time, and a message larger than the whole budget becomes a dead letter
// naming the budget (its value left out, its position in the headers):
// never a crash or a stall, and every other message is embedded.
func TestWorkerCountsMessagesAgainstTheBudget(t *testing.T) {
	addr, cl := broker(t, "images", "dlq")
	img := fixtureImage(t)
	const budget = 512 << 10 // 128 KiB for inputs
	var good []string
	for i := 0; i < 16; i++ {
		id, v := fmt.Sprintf("k%02d", i), img
		switch {
		case i%5 == 1:
			v = padPNG(t, img, 200<<10) // past the input share, within the budget
		case i == 7:
			id, v = "huge", padPNG(t, img, budget+(100<<10))
		}
		if id != "huge" {
			good = append(good, id)
		}
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	b := stages.NewBudget(budget)
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   t.TempDir(),
		DLQTopic: "dlq",
		Engine:   engine.Config{BatchSize: 4, Workers: 2, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond, Budget: b},
	}
	res := runUntilPublished(t, cfg, tinyModel(b), len(good))
	dl := consumeOne(t, addr, "dlq")
	if c := res.Counts; c.Written != int64(len(good)) || c.Failed != 1 || c.Lost != 0 {
		t.Errorf("counts %+v, want %d written, 1 failed", c, len(good))
	}
	if string(dl.Key) != "huge" || len(dl.Value) != 0 || !strings.Contains(header(dl, "maeembed-error"), "larger than the whole memory budget") ||
		header(dl, "maeembed-stage") != "read" || !strings.HasPrefix(header(dl, "maeembed-source"), "images/") {
		t.Errorf("dead letter: key %q, %d bytes, headers %v; want huge's, without its bytes, naming the budget", dl.Key, len(dl.Value), dl.Headers)
	}
	if b.Peak() > b.Size() || b.Peak() < 200<<10 || b.InUse() != 0 {
		t.Errorf("budget peak %d of %d (want at least a padded message), %d in use after", b.Peak(), b.Size(), b.InUse())
	}
}

// runUntilPublished runs a worker until want ids are published in
// cfg.Output, then drains it and returns what it did; the worker must
// end cleanly.
func runUntilPublished(t *testing.T, cfg Config, open func() (Model, error), want int) Result {
	t.Helper()
	parent, drain := context.WithCancel(context.Background())
	defer drain()
	stop := engine.OnSignals(parent, 30*time.Second)
	defer stop.Release()
	type result struct {
		r   Result
		err error
	}
	done := make(chan result, 1)
	go func() { r, err := Run(stop, cfg, Loader{Open: open}); done <- result{r, err} }()

	waitPublished(t, cfg.Output, want)
	drain()
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not stop after a drain")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res.r
}

// consumeOne reads the first record of topic with an independent client.
func consumeOne(t *testing.T, addr, topic string) *franz.Record {
	t.Helper()
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.ConsumeTopics(topic), franz.ConsumeResetOffset(franz.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record on %s: %v", topic, err)
		}
		if rs := fs.Records(); len(rs) > 0 {
			return rs[0]
		}
	}
}

func header(r *franz.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// A --sasl-password without --sasl-mechanism is refused (SASL would be
// off), but $MAEEMBED_SASL_PASSWORD is no error without SASL: it may be
// set for other brokers. It fills in the password only with SASL on, and
// Validate may run again after it did.
func TestValidateSASLPasswordWithoutMechanism(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Consumer.Brokers, c.Consumer.Topics, c.Consumer.Group = []string{"127.0.0.1:1"}, []string{"images"}, "g"
		c.OutputTopic = "embeddings"
		c.Engine.BatchSize = 8
		return c
	}
	c := base()
	c.Consumer.Security.SASLPassword = "p"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--sasl-password without --sasl-mechanism") {
		t.Fatalf("flag password without mechanism: err %v", err)
	}
	t.Setenv("MAEEMBED_SASL_PASSWORD", "env-pw")
	c = base()
	for range 2 {
		if err := c.Validate(); err != nil {
			t.Fatalf("env password without mechanism: %v", err)
		}
	}
	if c.Consumer.Security.SASLPassword != "" {
		t.Errorf("password %q taken from the environment with SASL off", c.Consumer.Security.SASLPassword)
	}
	c = base()
	c.Consumer.Security.SASLMechanism, c.Consumer.Security.SASLUsername = "plain", "u"
	for range 2 {
		if err := c.Validate(); err != nil {
			t.Fatalf("env password with SASL: %v", err)
		}
	}
	if c.Consumer.Security.SASLPassword != "env-pw" {
		t.Errorf("password %q, want the environment's", c.Consumer.Security.SASLPassword)
	}
}

// With --pool tokens the output topic's headers give the shape as the
// Parquet metadata does: maeembed-dim the embedding width D,
// maeembed-tokens the tokens per image, the value [tokens, D] float32.
func TestOutputTopicHeadersOfTokens(t *testing.T) {
	addr, cl := broker(t, "images", "emb")
	img := fixtureImage(t)
	for i := range 4 {
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: img}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var dim, tokens int
	open := func() (Model, error) {
		m, err := mae.Load(filepath.Join(tiny, "model.pth"), filepath.Join(tiny, "hf", "config.json"))
		if err != nil {
			return Model{}, err
		}
		emb, err := mae.NewEmbedder(m, mae.PoolTokens, 4)
		pre := stages.Preprocess{Mode: stages.NoResize, Size: m.Config.ImageSize}
		dim, tokens = m.Config.Dim, 1+m.Config.NumPatches()
		return Model{Embedder: emb, Preprocess: pre, ImageSize: pre.Size,
			Meta: sinks.Meta{Model: "tiny32", Pool: "tokens", Preprocess: pre.String(), Dim: dim, Tokens: tokens}}, err
	}
	cfg := Config{
		Consumer:    srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:      t.TempDir(),
		OutputTopic: "emb",
		Engine:      engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	runUntilPublished(t, cfg, open, 4)
	r := consumeOne(t, addr, "emb")
	if header(r, "maeembed-dim") != strconv.Itoa(dim) || header(r, "maeembed-tokens") != strconv.Itoa(tokens) || len(r.Value) != 4*dim*tokens {
		t.Errorf("maeembed-dim %q, maeembed-tokens %q, %d bytes; want %d, %d and %d×%d float32", header(r, "maeembed-dim"), header(r, "maeembed-tokens"),
			len(r.Value), dim, tokens, tokens, dim)
	}
}
