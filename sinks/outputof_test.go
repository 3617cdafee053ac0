package sinks

import (
	"os"
	"path/filepath"
	"testing"
)

// OutputOf recognises maeembed output directories by their files' own
// marks (maeembed.* metadata, maeembed-png.json, kind locks), not by
// names alone: another tool's part-00000.parquet marks nothing.
func TestOutputOf(t *testing.T) {
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	meta := Meta{Model: "m", Pool: "mean", Dim: 2}

	parts := t.TempDir()
	w, err := NewParquet(parts, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]Row{{ID: "a.jpg", Embedding: []float32{1, 2}}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	errorsOnly := t.TempDir()
	ew, err := NewErrors(errorsOnly, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ew.Write([]ErrorRow{{ID: "b.jpg", Stage: "decode", Error: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}

	png, lock := t.TempDir(), t.TempDir()
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(png, pngMetaName), []byte("{}"))
	write(filepath.Join(lock, kindPrefix+"embed-parquet-1-shards"+lockSuffix), nil)

	// A dataset's own part file: Parquet, no maeembed.* metadata.
	foreign := t.TempDir()
	data, err := os.ReadFile("../sources/testdata/img2dataset-parquet/00000.parquet")
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(foreign, "part-00000.parquet"), data)
	write(filepath.Join(foreign, "img.jpg"), []byte("x"))

	for _, c := range []struct{ dir, want string }{
		{parts, "part-00000.parquet"},
		{errorsOnly, filepath.Join("errors", "part-00000.parquet")},
		{png, pngMetaName},
		{lock, kindPrefix + "embed-parquet-1-shards" + lockSuffix},
		{foreign, ""},
	} {
		if got := OutputOf(c.dir, names(c.dir)); got != c.want {
			t.Errorf("%s (%v): %q, want %q", c.dir, names(c.dir), got, c.want)
		}
	}
}
