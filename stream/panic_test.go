package stream

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"strings"
	"testing"
	"time"

	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/engine"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// streamPanicMagic starts the messages of a test-only image format whose
// header is a fine 32×32 and whose pixel decoder panics, as a decoder does
// on malformed data it does not guard against.
const streamPanicMagic = "\x00maeembed-stream-test-panic\x00"

func init() {
	image.RegisterFormat("streampanic", streamPanicMagic,
		func(io.Reader) (image.Image, error) { panic("test decoder: malformed data") },
		func(io.Reader) (image.Config, error) {
			return image.Config{ColorModel: color.NRGBAModel, Width: 32, Height: 32}, nil
		})
}

// A message whose decoder panics is dead-lettered like any corrupt
// message (stage decode, the error saying the decoder failed on malformed
// data), and the worker goes on embedding the others: no crash, so no
// crash loop on a message that would be fetched again.
func TestWorkerDeadLettersADecoderPanic(t *testing.T) {
	addr, cl := broker(t, "images", "dlq")
	img := fixtureImage(t)
	const n = 9
	for i := 0; i < n; i++ {
		id, v := fmt.Sprintf("k%02d", i), img
		if i == 4 {
			id, v = "boom", []byte(streamPanicMagic+"malformed")
		}
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   t.TempDir(),
		DLQTopic: "dlq",
		Engine:   engine.Config{BatchSize: 4, Workers: 2, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	res := runUntilPublished(t, cfg, openTiny, n-1)
	if c := res.Counts; c.Written != n-1 || c.Failed != 1 || c.Lost != 0 {
		t.Errorf("counts %+v, want %d written, 1 failed", c, n-1)
	}
	dl := consumeOne(t, addr, "dlq")
	if string(dl.Key) != "boom" || string(dl.Value) != streamPanicMagic+"malformed" || header(dl, "maeembed-stage") != "decode" ||
		!strings.Contains(header(dl, "maeembed-error"), "decoder failed on malformed data (panic: test decoder: malformed data)") {
		t.Errorf("dead letter: key %q, value %q, headers %v; want boom's bytes, stage decode, the decoder's panic", dl.Key, dl.Value, dl.Headers)
	}
}
