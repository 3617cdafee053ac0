package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
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
