package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// openTiny is the worker's model: the tiny32 fixture, mean pool.
func openTiny() (Model, error) { return tinyModel(nil)() }

// tinyModel opens the tiny32 fixture model, mean pool, its preprocessing
// under budget b (nil: none).
func tinyModel(b *stages.Budget) func() (Model, error) {
	return func() (Model, error) {
		m, err := mae.Load(filepath.Join(tiny, "model.pth"), filepath.Join(tiny, "hf", "config.json"))
		if err != nil {
			return Model{}, err
		}
		emb, err := mae.NewEmbedder(m, mae.PoolMean, 4)
		pre := stages.Preprocess{Mode: stages.NoResize, Size: m.Config.ImageSize, Budget: b}
		return Model{Embedder: emb, Preprocess: pre, ImageSize: pre.Size,
			Meta: sinks.Meta{Model: "tiny32", Pool: "mean", Preprocess: pre.String(), Dim: m.Config.Dim}}, err
	}
}

// broker starts a kfake broker with topics (2 partitions each) and
// returns its address and a client producing to the first topic.
func broker(t *testing.T, topics ...string) (addr string, cl *franz.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr = c.ListenAddrs()[0]
	if cl, err = franz.NewClient(franz.SeedBrokers(addr), franz.DefaultProduceTopic(topics[0])); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return addr, cl
}

// fixtureImage is the tiny32 fixture's first image (a 32×32 PNG).
func fixtureImage(t *testing.T) []byte {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(tiny, "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// topicWithImages starts a broker with a 2-partition topic "images" of
// n messages keyed k00, k01, ...: the tiny32 fixture's first image, or
// bytes that are not an image where bad says so. It returns the address.
func topicWithImages(t *testing.T, n int, bad func(i int) bool) string {
	t.Helper()
	addr, cl := broker(t, "images")
	img := fixtureImage(t)
	for i := 0; i < n; i++ {
		v := img
		if bad(i) {
			v = []byte("not an image")
		}
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(fmt.Sprintf("k%02d", i)), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return addr
}

// waitPublished waits (a minute at most) until out holds n ids.
func waitPublished(t *testing.T, out string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := sinks.ReadDoneIDs(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ids published within a minute", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two workers of one group write into one directory: each part name
// carries its worker's id, every input is published, the error parts have
// the embeddings' metadata (as embed's have), and while they run a batch run
// into the directory is refused, saying why.
func TestWorkersShareOutputDir(t *testing.T) {
	const n = 24
	addr := topicWithImages(t, n, func(i int) bool { return i%8 == 5 })
	out := t.TempDir()
	parent, drain := context.WithCancel(context.Background())
	defer drain()
	errs := make(chan error, 2)
	for _, id := range []string{"w1", "w2"} {
		stop := engine.OnSignals(parent, 30*time.Second)
		defer stop.Release()
		cfg := Config{
			Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g.1", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
			Output:   out, Parquet: sinks.ParquetOptions{WorkerID: id},
			Engine: engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
		}
		go func() { _, err := Run(stop, cfg, Loader{Open: openTiny}); errs <- err }()
	}
	waitPublished(t, out, n)
	// The workers are live (they stop on the drain below): a batch run of
	// their format would mix its ids into theirs, one of another format
	// would mix formats.
	_, err := engine.TakeOutputDir(engine.OutputDir{Dir: out, Format: "parquet", Resume: true})
	if err == nil || !strings.Contains(err.Error(), "another kind (parquet-group-g.1; this run: parquet-1-shards)") || !strings.Contains(err.Error(), "consumer group") {
		t.Errorf("a parquet batch run beside live stream workers: %v", err)
	}
	if _, err = engine.TakeOutputDir(engine.OutputDir{Dir: out, Format: "npy", Resume: true}); err == nil || !strings.Contains(err.Error(), "one format") {
		t.Errorf("an npy run beside live stream workers: %v", err)
	}
	drain()
	for range 2 {
		drained(t, errs, "a worker")
	}
	name := regexp.MustCompile(`^part-\d{5}-w[12]\.parquet$`)
	for _, d := range []string{out, filepath.Join(out, "errors")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !e.IsDir() && !name.MatchString(e.Name()) {
				t.Errorf("%s: %s is not a worker's part name", d, e.Name())
			}
		}
	}
	kvs := map[string]map[string]string{}
	for _, d := range []string{out, filepath.Join(out, "errors")} {
		parts, _ := filepath.Glob(filepath.Join(d, "part-*.parquet"))
		if len(parts) == 0 {
			t.Fatalf("no parts in %s", d)
		}
		tbl, kv, err := sinks.ReadParquet(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		tbl.Release()
		kvs[d] = kv
	}
	for k, v := range kvs[out] {
		if strings.HasPrefix(k, "maeembed.") && kvs[filepath.Join(out, "errors")][k] != v {
			t.Errorf("error part %s = %q, the embeddings' %q", k, kvs[filepath.Join(out, "errors")][k], v)
		}
	}
}

// A worker refuses a directory a live batch run writes into (another
// format here), before it consumes anything.
func TestWorkerRefusesBatchRunsDirectory(t *testing.T) {
	out := t.TempDir()
	release, err := engine.TakeOutputDir(engine.OutputDir{Dir: out, Format: "npy", Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer release(false)
	stop := engine.OnSignals(context.Background(), time.Second)
	defer stop.Release()
	cfg := Config{Consumer: srckafka.Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"images"}, Group: "g"}, Output: out,
		Engine: engine.Config{BatchSize: 4}}
	_, err = Run(stop, cfg, Loader{Open: openTiny})
	if err == nil || !strings.Contains(err.Error(), "another kind (npy-1-shards; this run: parquet-group-g)") {
		t.Errorf("stream beside a live npy run: %v", err)
	}
}

// The default worker id is a valid part-name id and names this process.
func TestDefaultWorkerID(t *testing.T) {
	id := DefaultWorkerID()
	if err := (sinks.ParquetOptions{WorkerID: id}).Validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, fmt.Sprintf("-%d", os.Getpid())) {
		t.Errorf("worker id %q does not end in the pid", id)
	}
	// A long pod name keeps its unique suffix.
	pod := strings.Repeat("embedding-worker-", 4) + "5d9c7b8f6-x2k4q"
	if id := workerID(pod, 4242); len(id) != 64 || !strings.HasSuffix(id, "-5d9c7b8f6-x2k4q-4242") {
		t.Errorf("workerID(%q) = %q, want 64 characters ending in the pod suffix and pid", pod, id)
	}
	if id := workerID("host.example", 7); id != "host-example-7" {
		t.Errorf("workerID(host.example) = %q", id)
	}
}

// A second live worker with the id of one already writing into the
// directory is refused, naming --worker-id, before it loads its model or
// consumes anything (its part files would take the first one's names);
// the first goes on.
func TestWorkerIDInUseRefused(t *testing.T) {
	addr := topicWithImages(t, 4, func(int) bool { return false })
	out := t.TempDir()
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   out, Parquet: sinks.ParquetOptions{WorkerID: "same"},
		Engine: engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	parent, drain := context.WithCancel(context.Background())
	defer drain()
	first := engine.OnSignals(parent, 30*time.Second)
	defer first.Release()
	done := make(chan error, 1)
	go func() { _, err := Run(first, cfg, Loader{Open: openTiny}); done <- err }()
	waitPublished(t, out, 4) // the first is live

	// Bounded: a second worker that is let in ends with the drain.
	bounded, cancelBounded := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelBounded()
	second := engine.OnSignals(bounded, 30*time.Second)
	defer second.Release()
	if _, err := Run(second, cfg, Loader{Open: noModel(t)}); err == nil || !strings.Contains(err.Error(), "--worker-id same") {
		t.Errorf("a second worker with id same: %v, want a refusal naming --worker-id", err)
	}
	drain()
	drained(t, done, "the first worker")
	// Another id may join the group's directory.
	cfg.Parquet.WorkerID = "other"
	drained, cancel := context.WithCancel(context.Background())
	cancel() // drained from the start: open, then stop
	other := engine.OnSignals(drained, 30*time.Second)
	defer other.Release()
	if _, err := Run(other, cfg, Loader{Open: openTiny}); err != nil {
		t.Errorf("a worker with another id: %v", err)
	}
}

// noModel is the Open of a worker that must be refused before it loads
// its model.
func noModel(t *testing.T) func() (Model, error) {
	return func() (Model, error) {
		t.Error("the model was loaded")
		return Model{}, errors.New("no model")
	}
}

// A worker whose output settings differ from those of the live workers
// sharing its directory, or from the parts it holds, is refused before
// its model loads (from the checkpoint's headers: Loader.Meta), naming
// the setting; one with the same settings joins.
func TestWorkerSettingsRefusedBeforeModel(t *testing.T) {
	addr := topicWithImages(t, 4, func(int) bool { return false })
	out := t.TempDir()
	cfg := Config{
		Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
		Output:   out, Parquet: sinks.ParquetOptions{WorkerID: "first"},
		Engine: engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
	}
	m, err := openTiny()
	if err != nil {
		t.Fatal(err)
	}
	same := m.Meta
	cls := same
	cls.Pool = "cls"
	headers := func(meta sinks.Meta) func() (sinks.Meta, error) {
		return func() (sinks.Meta, error) { return meta, nil }
	}

	parent, drain := context.WithCancel(context.Background())
	defer drain()
	first := engine.OnSignals(parent, 30*time.Second)
	defer first.Release()
	done := make(chan error, 1)
	go func() { _, err := Run(first, cfg, Loader{Meta: headers(same), Open: openTiny}); done <- err }()
	waitPublished(t, out, 4) // the first is live, its settings recorded

	second := cfg
	second.Parquet.WorkerID = "second"
	refused := func(what string) {
		t.Helper()
		bounded, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stop := engine.OnSignals(bounded, 30*time.Second)
		defer stop.Release()
		if _, err := Run(stop, second, Loader{Meta: headers(cls), Open: noModel(t)}); err == nil || !strings.Contains(err.Error(), "maeembed.pool") {
			t.Errorf("%s: a worker with --pool cls: %v, want a refusal naming maeembed.pool", what, err)
		}
	}
	refused("beside a live worker")
	drain()
	drained(t, done, "the first worker")
	refused("after it") // its parts' metadata

	drained, cancel := context.WithCancel(context.Background())
	cancel() // drained from the start: open, then stop
	stop := engine.OnSignals(drained, 30*time.Second)
	defer stop.Release()
	if _, err := Run(stop, second, Loader{Meta: headers(same), Open: openTiny}); err != nil {
		t.Errorf("a worker with the same settings: %v", err)
	}
}

// A worker that fails before it consumes (here: its model does not open)
// leaves no output directory it made.
func TestWorkerFailingAtStartLeavesNoDirectory(t *testing.T) {
	out := filepath.Join(t.TempDir(), "new")
	stop := engine.OnSignals(context.Background(), time.Second)
	defer stop.Release()
	cfg := Config{Consumer: srckafka.Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"images"}, Group: "g"}, Output: out,
		Engine: engine.Config{BatchSize: 4}}
	_, err := Run(stop, cfg, Loader{Open: func() (Model, error) { return Model{}, errors.New("no model") }})
	if err == nil || !strings.Contains(err.Error(), "no model") {
		t.Errorf("err %v, want the model's", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind (%v)", out, err)
	}
}

// drained waits for the error of a worker (who) that was drained, a
// minute at most, and reports it.
func drained(t *testing.T, done <-chan error, who string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", who, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop after a drain", who)
	}
}
