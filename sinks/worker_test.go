package sinks

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Writers with a worker id put it in their part names, so two of them
// starting together in one directory publish under different names; the
// readers (resume, the format check, the numbering of a later writer)
// take those names like the plain ones.
func TestWorkerIDInPartNames(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Version: "test", Dim: 2}
	var ws []*PartWriter
	for _, id := range []string{"host-a-17", "host_b-4"} {
		w, err := NewParquet(dir, meta, ParquetOptions{WorkerID: id})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	for i, w := range ws {
		if err := w.Write([]Row{{ID: string(rune('a' + i)), Embedding: []float32{1, 2}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := NewParquet(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]Row{{ID: "c", Embedding: []float32{3, 4}}})
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"part-00000-host-a-17.parquet", "part-00000-host_b-4.parquet", "part-00001.parquet"}
	if got := visibleFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	done, err := ReadDoneIDs(dir)
	if err != nil || len(done) != 3 || !done["a"] || !done["b"] || !done["c"] {
		t.Errorf("done ids %v (%v), want a, b, c", done, err)
	}
	if f, err := PublishedFormats(dir); err != nil || !slices.Equal(f, []string{"parquet"}) {
		t.Errorf("formats %v (%v), want parquet", f, err)
	}
	for _, bad := range []string{"a.b", "a/b", strings.Repeat("x", 65)} {
		if _, err := NewParquet(t.TempDir(), meta, ParquetOptions{WorkerID: bad}); err == nil || !strings.Contains(err.Error(), "worker_id") {
			t.Errorf("worker id %q: %v", bad, err)
		}
	}
}

// Error parts carry the run's metadata as its embeddings do, whichever
// command writes them; one that an earlier embed wrote with maeembed.dim 1
// is still resumed.
func TestErrorPartMetadata(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "tokens", Preprocess: "p", Version: "test", Dim: 4, Tokens: 5, Precision: "fp32", Inputs: []string{"/in"}}
	old := meta
	old.Dim = 1
	for _, m := range []Meta{old, meta} {
		ew, err := NewErrors(dir, m, ParquetOptions{})
		if err != nil {
			t.Fatalf("dim %d: %v", m.Dim, err)
		}
		ew.Write([]ErrorRow{{ID: "x", Stage: "decode", Error: "bad"}})
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pw, err := NewParquet(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw.Write([]Row{{ID: "y", Embedding: make([]float32, 20)}})
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	errKV, err := fileMetadata(filepath.Join(dir, "errors", "part-00001.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	partKV, err := fileMetadata(filepath.Join(dir, "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range partKV {
		if strings.HasPrefix(k, "maeembed.") && errKV[k] != v {
			t.Errorf("error part %s = %q, the embeddings' %q", k, errKV[k], v)
		}
	}
	other := meta
	other.Model = "other"
	if _, err := NewErrors(dir, other, ParquetOptions{}); err == nil || !strings.Contains(err.Error(), "maeembed.model") {
		t.Errorf("error parts of another model: %v", err)
	}
}
