package sinks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cutPublish closes set as a run killed in the middle of publishing it:
// publish stops before its rename number at (publishCut: at .npy files are
// in place, the rest are finished temporaries), with the temporaries still
// locked, as by a live writer. die then lets go of them as the killed
// process's end would.
func cutPublish(t *testing.T, set *npySet, at int) (die func()) {
	t.Helper()
	publishCut = func(renamed int) bool { return renamed == at }
	err := set.close()
	publishCut = nil
	if !errors.Is(err, errPublishCut) {
		t.Fatalf("close with the publication cut at %d: %v", at, err)
	}
	return func() {
		for _, af := range append(set.temps(), set.md.af) {
			af.File.Close() // those renamed are closed already
		}
	}
}

// embedRows are rows start..start+n-1 of ids "img/N.jpg", embedding
// values N + j/100.
func embedRows(start, n, dim int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		k := start + i
		e := make([]float32, dim)
		for j := range e {
			e[j] = float32(k) + float32(j)/100
		}
		rows[i] = Row{ID: fmt.Sprintf("img/%d.jpg", k), Width: int32(k), Height: 1, Embedding: e}
	}
	return rows
}

// checkEmbedSet checks that dir holds a published embed set of rows
// 0..n-1 (embedRows) in order, embeddings.npy row i being metadata row i,
// and no temporary.
func checkEmbedSet(t *testing.T, dir string, n, dim int) {
	t.Helper()
	shape, vals, err := ReadNpyFloat32(filepath.Join(dir, embeddingsName))
	if err != nil || !slices.Equal(shape, []int{n, dim}) {
		t.Fatalf("%s: shape %v, want [%d %d] (%v)", embeddingsName, shape, n, dim, err)
	}
	tbl, _, err := ReadParquet(filepath.Join(dir, metadataName))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	rows := tableRows(t, tbl)
	if len(rows) != n {
		t.Fatalf("%s has %d rows, want %d", metadataName, len(rows), n)
	}
	for i, r := range rows {
		if want := fmt.Sprintf("img/%d.jpg", i); r.ID != want || vals[i*dim] != float32(i) {
			t.Fatalf("row %d: id %s, embedding starts %v; want %s, %d", i, r.ID, vals[i*dim], want, i)
		}
	}
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Errorf("temporaries left: %v", h)
	}
}

// A run killed between renaming embeddings.npy into place and renaming
// metadata.parquet (the last step of an npy set's publication) left the
// set's first run with an embeddings.npy and no metadata.parquet, which
// the rerun refused as not a maeembed output, so the user had to delete
// it by hand; a later run's cut left metadata.parquet naming fewer rows
// than embeddings.npy, whose extra rows the rerun processed again. The
// rerun's clean-up now completes the publication from the killed run's
// finished temporaries: no row is lost, none is processed again, and the
// rerun resumes after them. While the temporaries' writer lives, the
// set is its own and is left alone.
func TestNpyRerunCompletesACutPublication(t *testing.T) {
	const dim = 6
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: dim}
	for _, earlier := range []int{0, 2} {
		t.Run(fmt.Sprintf("earlier rows %d", earlier), func(t *testing.T) {
			dir := t.TempDir()
			if earlier > 0 {
				w, err := NewNpy(dir, meta)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Write(embedRows(0, earlier, dim)); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			w, err := NewNpy(dir, meta)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(embedRows(earlier, 5, dim)); err != nil {
				t.Fatal(err)
			}
			die := cutPublish(t, w.set, 1)
			// The crash point: embeddings.npy of the cut run in place,
			// metadata.parquet missing or the earlier run's.
			if shape, _, err := ReadNpyFloat32(filepath.Join(dir, embeddingsName)); err != nil || shape[0] != earlier+5 {
				t.Fatalf("at the cut: %s shape %v (%v), want %d rows", embeddingsName, shape, err, earlier+5)
			}
			if n, ok := parquetRows(filepath.Join(dir, metadataName)); ok != (earlier > 0) || n != int64(earlier) {
				t.Fatalf("at the cut: %s has %d rows (there: %v), want %d", metadataName, n, ok, earlier)
			}

			// Its writer alive: a clean-up completes nothing.
			if done, err := completePendingNpySet(dir); done || err != nil {
				t.Fatalf("completed a set whose writer is alive: %v, %v", done, err)
			}
			die()

			// Before the clean-up, as a dry run sees it: npy output, its
			// ids done, as the run will find them.
			if f, err := PublishedFormats(dir); err != nil || !slices.Equal(f, []string{"npy"}) {
				t.Errorf("formats of the cut set: %v (%v), want [npy]", f, err)
			}
			if done, err := ReadDoneIDs(dir); err != nil || len(done) != earlier+5 {
				t.Errorf("done before the clean-up: %d ids (%v), want %d", len(done), err, earlier+5)
			}

			log := captureLog(t)
			if err := CleanTemps(dir); err != nil {
				t.Fatal(err)
			}
			if out := log.String(); !strings.Contains(out, "completed the publication of an npy set") || strings.Contains(out, "level=WARN") {
				t.Errorf("the clean-up's log:\n%s", out)
			}
			checkEmbedSet(t, dir, earlier+5, dim)
			done, err := ReadDoneIDs(dir)
			if err != nil || len(done) != earlier+5 {
				t.Fatalf("done after the clean-up: %d ids (%v), want %d", len(done), err, earlier+5)
			}
			// The rerun resumes after them.
			w, err = NewNpy(dir, meta)
			if err != nil {
				t.Fatalf("the rerun: %v", err)
			}
			if err := w.Write(embedRows(earlier+5, 3, dim)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			checkEmbedSet(t, dir, earlier+8, dim)
		})
	}
}

// A reconstruct set has three .npy files: a cut before any of them is
// renamed, or after the first, is completed alike, every file with the
// cut run's rows.
func TestReconNpyRerunCompletesACutPublication(t *testing.T) {
	m := testReconMeta
	for _, at := range []int{0, 1, 3} {
		dir := t.TempDir()
		w, err := NewReconNpy(dir, m)
		if err != nil {
			t.Fatal(err)
		}
		rows := reconRows(rand.New(rand.NewPCG(1, 2)), m, 0, 4)
		if err := w.Write(rows); err != nil {
			t.Fatal(err)
		}
		cutPublish(t, w.set, at)()
		if err := CleanTemps(dir); err != nil {
			t.Fatal(err)
		}
		for _, name := range reconNpyNames {
			if shape, _, err := ReadNpyFloat32(filepath.Join(dir, name)); err != nil || shape[0] != 4 {
				t.Errorf("cut at %d: %s shape %v (%v), want 4 rows", at, name, shape, err)
			}
		}
		if done, err := ReadDoneIDs(dir); err != nil || len(done) != 4 {
			t.Errorf("cut at %d: done %v (%v), want the 4 ids", at, done, err)
		}
		if h := hiddenFiles(t, dir); len(h) != 0 {
			t.Errorf("cut at %d: temporaries left: %v", at, h)
		}
		if _, err := NewReconNpy(dir, m); err != nil {
			t.Errorf("cut at %d: the rerun: %v", at, err)
		}
	}
}

// The same with a real kill: the helper process kills itself (SIGKILL)
// right after renaming embeddings.npy, before metadata.parquet; the
// rerun completes the set and writes nothing again, every id once.
func TestKillBetweenNpyRenames(t *testing.T) {
	if os.Getenv(killEnv) != "" {
		t.Skip("inside the helper")
	}
	dir := t.TempDir()
	t.Setenv(killAtPublishEnv, "1")
	if !runHelper(t, dir, "npy", time.Hour) {
		t.Fatal("the helper was not killed at the publication")
	}
	if _, err := os.Stat(filepath.Join(dir, metadataName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the kill, %s: %v, want none yet", metadataName, err)
	}
	t.Setenv(killAtPublishEnv, "")
	runHelper(t, dir, "npy", 0)
	tbl, _, err := ReadParquet(filepath.Join(dir, metadataName))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	_, vals, err := ReadNpyFloat32(filepath.Join(dir, embeddingsName))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, row := range tableRows(t, tbl) {
		if seen[row.ID] || vals[i*killDim] != float32(row.Width) {
			t.Fatalf("row %d: id %s (seen before: %v), embedding starts %v", i, row.ID, seen[row.ID], vals[i*killDim])
		}
		seen[row.ID] = true
	}
	if len(seen) != killItems {
		t.Errorf("%d ids, want %d", len(seen), killItems)
	}
}

// Two runs' clean-ups that find one cut publication: the one that opens
// its temporaries second finds them renamed into place by the other, and
// has nothing to complete (it failed, and with it every run into the
// directory until the set was complete). Where no lock can be taken
// (ENOLCK, or a file system without flock), the set is completed
// unlocked, as atomicfile's writers write unlocked there, instead of
// failing every run.
func TestNpyCompletionRacesAndLocklessFileSystems(t *testing.T) {
	const dim = 4
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: dim}
	cut := func(t *testing.T) string {
		dir := t.TempDir()
		w, err := NewNpy(dir, meta)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(embedRows(0, 3, dim)); err != nil {
			t.Fatal(err)
		}
		cutPublish(t, w.set, 0)()
		return dir
	}

	t.Run("completed by another run meanwhile", func(t *testing.T) {
		dir := cut(t)
		var other bool
		var otherErr error
		pendingFound = func() {
			pendingFound = nil
			other, otherErr = completePendingNpySet(dir)
		}
		defer func() { pendingFound = nil }()
		done, err := completePendingNpySet(dir)
		if !other || otherErr != nil {
			t.Fatalf("the other run's completion: %v, %v", other, otherErr)
		}
		if done || err != nil {
			t.Fatalf("completion after the other run's: %v, %v; want nothing to complete", done, err)
		}
		if err := CleanTemps(dir); err != nil {
			t.Fatal(err)
		}
		checkEmbedSet(t, dir, 3, dim)
	})

	t.Run("no lock to be had", func(t *testing.T) {
		dir := cut(t)
		pendingFlock = func(int, int) error { return syscall.ENOLCK }
		defer func() { pendingFlock = syscall.Flock }()
		if done, err := completePendingNpySet(dir); !done || err != nil {
			t.Fatalf("completion with flock failing ENOLCK: %v, %v; want the set completed", done, err)
		}
		checkEmbedSet(t, dir, 3, dim)
	})
}
