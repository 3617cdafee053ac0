package stream

import (
	"context"
	"testing"
	"time"

	"github.com/maeembed/maeembed/engine"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

const tiny = "../mae/testdata/fixtures/tiny32"

// A worker embeds what is on the topic into Parquet parts (bad inputs into
// errors/), publishing on its timer while the topic is quiet; a drain
// then ends it cleanly and every input is durable exactly once.
func TestWorkerPublishesEveryMessage(t *testing.T) {
	addr := topicWithImages(t, 20, func(i int) bool { return i%7 == 3 })

	out := t.TempDir()
	parent, drain := context.WithCancel(context.Background())
	stop := engine.OnSignals(parent, 30*time.Second)
	defer stop.Release()
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   out,
		Engine:   engine.Config{BatchSize: 4, Workers: 2, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	type result struct {
		r   Result
		err error
	}
	done := make(chan result, 1)
	go func() { r, err := Run(stop, cfg, openTiny); done <- result{r, err} }()

	waitPublished(t, out, 20)
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
	if c := res.r.Counts; c.Written != 17 || c.Failed != 3 || c.Lost != 0 {
		t.Errorf("counts %+v, want 17 written, 3 failed", c)
	}
}
