package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/testwait"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

const tiny = "../mae/testdata/fixtures/tiny32"

// tinyEmbedder loads the 32×32 fixture model (real weights of the
// reference implementation's architecture) as an embedding stage.
func tinyEmbedder(t testing.TB, batch int) (*EmbedModel, sinks.Meta, stages.Preprocess) {
	t.Helper()
	m, err := mae.Load(filepath.Join(tiny, "model.pth"), filepath.Join(tiny, "hf", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	em, err := mae.NewEmbedder(m, mae.PoolMean, batch)
	if err != nil {
		t.Fatal(err)
	}
	pre := stages.Preprocess{Mode: stages.NoResize, Size: m.Config.ImageSize}
	meta := sinks.Meta{Model: "tiny32", Pool: "mean", Preprocess: pre.String(), Version: "test", Dim: em.Dim()}
	return NewEmbedModel(em, batch), meta, pre
}

// inputs writes n good images and a few undecodable files into a fresh
// directory and returns it with the ids of each kind.
func inputs(t testing.TB, n int) (dir string, good, bad []string) {
	t.Helper()
	dir = t.TempDir()
	src, err := os.ReadFile(filepath.Join(tiny, "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("img_%03d.png", i)
		if err := os.WriteFile(filepath.Join(dir, id), src, 0o644); err != nil {
			t.Fatal(err)
		}
		good = append(good, id)
		if i%5 == 2 {
			id := fmt.Sprintf("img_%03d_bad.png", i)
			if err := os.WriteFile(filepath.Join(dir, id), []byte("not a png"), 0o644); err != nil {
				t.Fatal(err)
			}
			bad = append(bad, id)
		}
	}
	return dir, good, bad
}

// acks records each item's acks by id.
type acks struct {
	mu    sync.Mutex
	calls map[string][]error
}

func (a *acks) on(it sources.Item, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[it.ID] = append(a.calls[it.ID], err)
}

func (a *acks) get(id string) []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

func done(t *testing.T, dir string) map[string]bool {
	t.Helper()
	d, err := sinks.ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// embedRun wires an embedding run of the folder in over Parquet parts of
// partRows rows into out, recording every input's acks.
func embedRun(t *testing.T, in, out string, batch, partRows int, publishOnAbort bool) (*Engine[Embeddings], *sources.Reader, *acks) {
	t.Helper()
	model, meta, pre := tinyEmbedder(t, batch)
	rec := &acks{calls: map[string][]error{}}
	src, err := sources.OpenWith([]string{in}, nil, sources.Options{OnAck: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	w, err := sinks.NewParquet(out, meta, sinks.ParquetOptions{MaxFileRows: partRows})
	if err != nil {
		t.Fatal(err)
	}
	errw, err := sinks.NewErrors(out, meta, sinks.ParquetOptions{MaxFileRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: batch, Workers: 2, Errors: errw, PublishOnAbort: publishOnAbort}
	return New(cfg, model, NewEmbeddingOutput(w)), src, rec
}

// A run acks every input exactly once, after its row (or error row) is
// published, and counts from the acks.
func TestRunAcksEveryInputOnce(t *testing.T) {
	in, good, bad := inputs(t, 23)
	out := t.TempDir()
	e, src, rec := embedRun(t, in, out, 4, 5, false)
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	pub := done(t, out)
	for _, id := range append(append([]string{}, good...), bad...) {
		if c := rec.get(id); len(c) != 1 || c[0] != nil {
			t.Errorf("%s: acks %v, want one nil", id, c)
		}
		if !pub[id] {
			t.Errorf("%s acked but not published", id)
		}
	}
	if c := e.Counts(); c.Written != int64(len(good)) || c.Failed != int64(len(bad)) || c.Lost != 0 {
		t.Errorf("counts %+v, want %d written, %d failed", c, len(good), len(bad))
	}
}

// endless is a source that, after its items, waits like a quiet topic.
type endless struct{ sources.Source }

func (s endless) Next(ctx context.Context) (sources.Item, error) {
	it, err := s.Source.Next(ctx)
	if errors.Is(err, io.EOF) {
		<-ctx.Done()
		return it, ctx.Err()
	}
	return it, err
}

// After an abort, an input is acked with nil if and only if its row is in
// a published file; nothing is acked twice, and every input read that was
// not published is acked with an error (retried on resume), also those
// still between the stages when the run aborted.
func TestAbortAcksIffPublished(t *testing.T) {
	in, good, bad := inputs(t, 40)
	for _, publish := range []bool{false, true} {
		t.Run(fmt.Sprintf("PublishOnAbort=%v", publish), func(t *testing.T) {
			out := t.TempDir()
			e, src, rec := embedRun(t, in, out, 3, 7, publish)
			ctx, abort := context.WithCancelCause(context.Background())
			res := make(chan error, 1)
			go func() { res <- e.Run(ctx, endless{src}) }()
			// Every input's row is handed to a writer; the last part
			// waits for more rows.
			testwait.Until(t, "every row handed to the writers", func() bool { return e.Counts().Processed >= int64(len(good)+len(bad)) })
			abort(errors.New("test abort"))
			if err := <-res; err == nil {
				t.Fatal("aborted run returned nil")
			}
			pub := done(t, out)
			nilAcked := 0
			for _, id := range append(append([]string{}, good...), bad...) {
				c := rec.get(id)
				if len(c) > 1 {
					t.Errorf("%s acked %d times", id, len(c))
				}
				acked := len(c) == 1 && c[0] == nil
				if acked != pub[id] {
					t.Errorf("%s: acked %v (%v), published %v", id, acked, c, pub[id])
				}
				if acked {
					nilAcked++
				}
			}
			// The counters are what is published (a disk-full run's summary
			// must not count rows that never became durable).
			published := 0
			for _, id := range good {
				if pub[id] {
					published++
				}
			}
			if c := e.Counts(); c.Written != int64(published) {
				t.Errorf("counted %d written, %d published", c.Written, published)
			}
			if publish && nilAcked != len(good)+len(bad) {
				t.Errorf("PublishOnAbort: %d acked, want all %d", nilAcked, len(good)+len(bad))
			}
			if !publish && nilAcked == len(good)+len(bad) {
				t.Errorf("abort published everything: the test did not abort with rows pending")
			}
			if st := src.Stats(); st.Acked != st.Emitted {
				t.Errorf("%d inputs read, %d acked", st.Emitted, st.Acked)
			}
		})
	}
}

// A PNG the file system refuses becomes that input's error row (stage
// write) and the run goes on.
func TestWriteFailureOfOneItemIsItsErrorRow(t *testing.T) {
	in, good, _ := inputs(t, 5)
	good = good[:5]
	out := t.TempDir()
	m, err := mae.Load(filepath.Join(tiny, "model.pth"), filepath.Join(tiny, "hf", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := mae.NewReconstructor(m, 0.75, false, mae.SeededNoise(1), 2)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	pre := stages.Preprocess{Mode: stages.NoResize, Size: c.ImageSize}
	w, err := sinks.NewReconPNG(out, sinks.ReconMeta{Model: "tiny", Patches: c.NumPatches(), Patch: c.PatchSize})
	if err != nil {
		t.Fatal(err)
	}
	errw, err := sinks.NewErrors(out, sinks.Meta{Model: "tiny", Dim: 1}, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blocked := good[3]
	if err := os.MkdirAll(sinks.PNGPath(out, blocked), 0o755); err != nil {
		t.Fatal(err)
	}
	acked := &acks{calls: map[string][]error{}}
	src, err := sources.OpenWith(func() []string {
		var p []string
		for _, id := range good {
			p = append(p, filepath.Join(in, id))
		}
		return p
	}(), nil, sources.Options{OnAck: acked.on})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Errors: errw}, NewReconstructModel(rec, 2, c.ImageSize, true), NewReconstructionOutput(w))
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if cnt := e.Counts(); cnt.Written != 4 || cnt.Failed != 1 {
		t.Errorf("counts %+v, want 4 written and 1 failed", cnt)
	}
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 1 {
		t.Fatalf("%d error rows, want 1", tbl.NumRows())
	}
	id := tbl.Column(0).Data().Chunk(0).ValueStr(0)
	stage := tbl.Column(1).Data().Chunk(0).ValueStr(0)
	if id != blocked || stage != "write" {
		t.Errorf("error row %s/%s, want %s/write", id, stage, blocked)
	}
	for _, id := range good {
		if c := acked.get(id); len(c) != 1 || c[0] != nil {
			t.Errorf("%s: acks %v", id, c)
		}
	}
}

// With a flush interval, a stream that goes quiet still publishes: the
// timer publishes the pending part (under the write stage's lock) and
// its inputs are acked, with no part ever full.
func TestFlushIntervalPublishesAQuietStream(t *testing.T) {
	in, good, bad := inputs(t, 12)
	out := t.TempDir()
	e, src, rec := embedRun(t, in, out, 4, 1000, false)
	e.cfg.FlushInterval = 20 * time.Millisecond
	e.cfg.BatchLatency = 20 * time.Millisecond // the last partial batch must not wait for more
	ctx, abort := context.WithCancelCause(context.Background())
	res := make(chan error, 1)
	go func() { res <- e.Run(ctx, endless{src}) }()
	deadline := time.Now().Add(time.Minute)
	for e.Counts().Written+e.Counts().Failed < int64(len(good)+len(bad)) {
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v: the quiet stream's part was never published", e.Counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	abort(errors.New("done"))
	<-res
	pub := done(t, out)
	for _, id := range append(append([]string{}, good...), bad...) {
		if c := rec.get(id); len(c) != 1 || c[0] != nil || !pub[id] {
			t.Errorf("%s: acks %v, published %v", id, c, pub[id])
		}
	}
}

// Counts.Processed advances as rows are handed to the writers, long before
// the part that holds them is published: what the progress bar shows.
func TestProcessedCountsBeforePublish(t *testing.T) {
	in, good, bad := inputs(t, 12)
	out := t.TempDir()
	e, src, _ := embedRun(t, in, out, 2, 1000, false)
	ctx, abort := context.WithCancelCause(context.Background())
	res := make(chan error, 1)
	go func() { res <- e.Run(ctx, endless{src}) }()
	all := int64(len(good) + len(bad))
	deadline := time.Now().Add(2 * time.Minute)
	for e.Counts().Processed < all && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c := e.Counts()
	abort(errors.New("test abort"))
	<-res
	if c.Processed != all || c.Written != 0 {
		t.Fatalf("counts %+v while every input waits in one unpublished part: want %d processed, 0 written", c, all)
	}
	p := StartProgress(nil, false, all, time.Now(), func() Counts { return c })
	defer p.Stop()
	if got := c.done(); got != all {
		t.Errorf("progress done = %d, want %d", got, all)
	}
}

// The summary's errors column counts each stage's failures: an unreadable
// input at read, undecodable files at preprocess (decode).
func TestStatsCountFailuresByStage(t *testing.T) {
	in, _, bad := inputs(t, 8)
	if err := os.Symlink(filepath.Join(in, "missing.png"), filepath.Join(in, "broken.png")); err != nil {
		t.Fatal(err)
	}
	e, src, _ := embedRun(t, in, t.TempDir(), 4, 5, false)
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range e.Stats() {
		got[s.Name] = s.Errors
	}
	if got["read"] != 1 || got["preprocess"] != int64(len(bad)) || got["model"] != 0 {
		t.Errorf("errors by stage %v, want read 1, preprocess %d, model 0", got, len(bad))
	}
}

// A run with nothing left to do (Batch.NothingLeft) reports the stages a
// run has, in its order, idle.
func TestIdleStagesAreTheRunsStages(t *testing.T) {
	in, _, _ := inputs(t, 2)
	e, src, _ := embedRun(t, in, t.TempDir(), 4, 5, false)
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	var run, idle []string
	for _, s := range e.Stats() {
		run = append(run, s.Name)
	}
	for _, s := range idleStages() {
		idle = append(idle, s.Name)
	}
	if !slices.Equal(run, idle) {
		t.Errorf("idle stages %v, a run's %v", idle, run)
	}
}
