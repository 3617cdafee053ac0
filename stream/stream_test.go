package stream

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
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
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, "images"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	img, err := os.ReadFile(filepath.Join(tiny, "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.DefaultProduceTopic("images"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var ids []string
	for i := 0; i < 20; i++ {
		id, v := fmt.Sprintf("k%02d", i), img
		if i%7 == 3 {
			v = []byte("not an image")
		}
		ids = append(ids, id)
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	out := t.TempDir()
	parent, drain := context.WithCancel(context.Background())
	stop := engine.OnSignals(parent, 30*time.Second)
	defer stop.Release()
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   out,
		Engine:   engine.Config{BatchSize: 4, Workers: 2, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	open := func() (Model, error) {
		m, err := mae.Load(filepath.Join(tiny, "model.pth"), filepath.Join(tiny, "hf", "config.json"))
		if err != nil {
			return Model{}, err
		}
		emb, err := mae.NewEmbedder(m, mae.PoolMean, 4)
		pre := stages.Preprocess{Mode: stages.NoResize, Size: m.Config.ImageSize}
		return Model{Embedder: emb, Preprocess: pre, ImageSize: pre.Size,
			Meta: sinks.Meta{Model: "tiny32", Pool: "mean", Preprocess: pre.String(), Dim: m.Config.Dim}}, err
	}
	type result struct {
		r   Result
		err error
	}
	done := make(chan result, 1)
	go func() { r, err := Run(stop, cfg, open); done <- result{r, err} }()

	deadline := time.Now().Add(time.Minute)
	for {
		got, err := sinks.ReadDoneIDs(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ids published within a minute", len(got), len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
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
