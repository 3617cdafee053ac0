package sinks

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A writer aborted mid-way leaves only what it had already published.
func TestAbortLeavesNoPartialFile(t *testing.T) {
	meta := Meta{Model: "m", Pool: "mean", Dim: 8}
	for _, tc := range []struct {
		name string
		open func(dir string) (EmbeddingWriter, error)
		kept []string
	}{
		{"parquet", func(dir string) (EmbeddingWriter, error) {
			return NewParquet(dir, meta, ParquetOptions{MaxFileRows: 6})
		}, []string{"part-00000.parquet"}},
		{"npy", func(dir string) (EmbeddingWriter, error) { return NewNpy(dir, meta) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := tc.open(dir)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			for i := 0; i < 3; i++ { // 9 rows: a published part of 6, then 3 pending
				if err := w.Write(testRows(rng, 3*i, 3, 8)); err != nil {
					t.Fatal(err)
				}
			}
			if len(hiddenFiles(t, dir)) == 0 {
				t.Fatal("expected a temporary file while writing")
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if h := hiddenFiles(t, dir); len(h) != 0 {
				t.Fatalf("temporaries left after Abort: %v", h)
			}
			for _, f := range tc.kept {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o644 {
					t.Errorf("%s: mode %v, %v; want 0644", f, st.Mode(), err)
				}
			}
			if v := visibleFiles(t, dir); !slices.Equal(v, tc.kept) {
				t.Fatalf("visible after Abort: %v, want %v", v, tc.kept)
			}
			done, err := ReadDoneIDs(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := 6 * len(tc.kept); len(done) != want {
				t.Fatalf("%d done ids after abort, want %d", len(done), want)
			}
		})
	}
}

func TestCleanTemps(t *testing.T) {
	dir := t.TempDir()
	a, err := createAtomic(filepath.Join(dir, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("partial"))
	b, err := createAtomic(filepath.Join(dir, "embeddings.npy"))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	keep := filepath.Join(dir, ".hidden-user-file")
	if err := writeFile(keep); err != nil {
		t.Fatal(err)
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	if h := hiddenFiles(t, dir); !slices.Equal(h, []string{keep}) {
		t.Fatalf("after CleanTemps hidden files %v, want only %s", h, keep)
	}
}
