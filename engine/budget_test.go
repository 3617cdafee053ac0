package engine

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"golang.org/x/image/bmp"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/sources/sourcetest"
	"github.com/maeembed/maeembed/stages"
)

// Under a memory budget, an input larger than the whole budget becomes its
// own error row (stage "read") while the others are embedded; every input
// is acked once, and every byte taken from the budget is given back.
func TestRunMemoryBudget(t *testing.T) {
	in, good, _ := inputs(t, 6)
	big := make([]byte, 256<<10)
	if err := os.WriteFile(filepath.Join(in, "big.png"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	model, meta, pre := tinyEmbedder(t, 2)
	pre.Budget = stages.NewBudget(128 << 10)
	rec := &acks{calls: map[string][]error{}}
	src, err := sources.OpenWith([]string{in}, nil, sources.Options{OnAck: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w, err := sinks.NewParquet(out, meta, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errw, err := sinks.NewErrors(out, meta, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2, Budget: pre.Budget, Errors: errw}, model, NewEmbeddingOutput(w))
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	pub := done(t, out)
	for _, id := range append(good, "big.png") {
		if c := rec.get(id); len(c) != 1 || c[0] != nil || !pub[id] {
			t.Errorf("%s: acks %v, published %v; want one nil ack and a row", id, c, pub[id])
		}
	}
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	found := false
	for i := 0; i < int(tbl.NumRows()); i++ {
		if tbl.Column(0).Data().Chunk(0).ValueStr(i) != "big.png" {
			continue
		}
		found = true
		stage, msg := tbl.Column(1).Data().Chunk(0).ValueStr(i), tbl.Column(2).Data().Chunk(0).ValueStr(i)
		if stage != "read" || !strings.Contains(msg, "larger than the whole memory budget") {
			t.Errorf("big.png: stage %q, error %q; want the budget's refusal at read", stage, msg)
		}
	}
	if !found {
		t.Error("no error row for big.png")
	}
	if c := e.Counts(); c.Written != int64(len(good)) {
		t.Errorf("counts %+v, want %d written", c, len(good))
	}
	if b := pre.Budget; b.InUse() != 0 || b.Peak() <= 0 || b.Peak() > b.Size() {
		t.Errorf("budget: %d in use after the run, peak %d of %d", b.InUse(), b.Peak(), b.Size())
	}
}

// The source takes each item's bytes from the budget before reading them,
// and with KeepData (a dead-letter copy) they stay counted until their row
// is written: when a failed item reaches the write stage, the budget still
// holds its bytes; after the run it holds nothing.
func TestRunKeepDataHoldsTheBudgetUntilTheWrite(t *testing.T) {
	in, good, bad := inputs(t, 8)
	model, meta, pre := tinyEmbedder(t, 2)
	pre.Budget = stages.NewBudget(64 << 20)
	w, err := sinks.NewParquet(t.TempDir(), meta, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := sources.OpenWith([]string{in}, nil, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var mu sync.Mutex
	failed := map[string]bool{}
	onFailure := func(im *Image) {
		mu.Lock()
		defer mu.Unlock()
		failed[im.Item.ID] = true
		if n := int64(len(im.Item.Data)); n == 0 || pre.Budget.InUse() < n {
			t.Errorf("%s at the write: %d bytes kept, the budget holds %d", im.Item.ID, n, pre.Budget.InUse())
		}
	}
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2, Budget: pre.Budget, KeepData: true, OnFailure: onFailure},
		model, NewEmbeddingOutput(w))
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if len(failed) != len(bad) {
		t.Errorf("%d failures seen, want %d", len(failed), len(bad))
	}
	if c := e.Counts(); c.Written != int64(len(good)) {
		t.Errorf("counts %+v, want %d written", c, len(good))
	}
	if b := pre.Budget; b.InUse() != 0 || b.Peak() <= 0 {
		t.Errorf("budget: %d in use after the run, peak %d", b.InUse(), b.Peak())
	}
}

// A batch too big for a small budget names both sizes in units that fit.
func TestCheckBudgetNamesSizes(t *testing.T) {
	err := BatchOptions{BatchSize: 8, Workers: 1}.CheckBudget(ModelMemory{ImageSize: 1, Batch: 3 << 20}, stages.NewBudget(10<<10))
	if err == nil || !strings.Contains(err.Error(), "--memory-budget 10 KiB (10240 bytes) is too small") || !strings.Contains(err.Error(), "about 3.0 MiB (3146424 bytes)") {
		t.Errorf("err = %v", err)
	}
}

// writeBMPRows writes n noisy 24-bit BMPs of w×h pixels as the rows of one
// Parquet row group (image column "jpg", ids in "key"): each row is a page
// of its own, as writers do for large values.
func writeBMPRows(t *testing.T, path string, n, w, h int) []string {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for i := 0; i < n; i++ {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for j := range img.Pix {
			img.Pix[j] = byte(rng.Uint32())
			if j%4 == 3 {
				img.Pix[j] = 255
			}
		}
		var buf bytes.Buffer
		if err := bmp.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("r%02d", i)
		ids = append(ids, id)
		b.Field(0).(*array.StringBuilder).Append(id)
		b.Field(1).(*array.BinaryBuilder).Append(buf.Bytes())
	}
	rec := b.NewRecord()
	defer rec.Release()
	sourcetest.WriteParquet(t, path, rec, parquet.WithBatchSize(1), parquet.WithDataPageSize(1))
	return ids
}

// The budget's peak never exceeds its size. A Parquet batch of large rows
// is one hold (its rows alias it) larger than the input share, and the
// workers decode several of its rows at once: the hold takes the rest of
// its size from the decoding share, so the decodes beside it get only what
// it leaves (before, the batch's hold plus the full decoding share could
// reach 1.6 times the budget). Every row is still embedded.
func TestRunBudgetPeakWithinSize(t *testing.T) {
	dir := t.TempDir()
	ids := writeBMPRows(t, filepath.Join(dir, "rows.parquet"), 32, 300, 300)
	model, meta, pre := tinyEmbedder(t, 2)
	pre.Mode = stages.Squash
	// 300×300 at 24 bits is 270 KB of input and about 760 KB to decode:
	// a batch of several rows passes the 1 MiB input share.
	pre.Budget = stages.NewBudget(4 << 20)
	src, err := sources.OpenWith([]string{dir}, nil, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := t.TempDir()
	w, err := sinks.NewParquet(out, meta, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 4, Budget: pre.Budget}, model, NewEmbeddingOutput(w))
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if c := e.Counts(); c.Written != int64(len(ids)) || c.Failed != 0 {
		t.Errorf("counts %+v, want %d written: %s", c, len(ids), e.FirstError())
	}
	if b := pre.Budget; b.Peak() > b.Size() || b.Peak() <= b.Size()/4 || b.InUse() != 0 {
		t.Errorf("budget peak %d of %d (want above the input share, within the size), %d in use after", b.Peak(), b.Size(), b.InUse())
	}
}
