package sinks

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// Publishing an npy set syncs each of its files once, every one before the
// first rename (the crash-safety contract: a set whose publication a kill
// cut short is completed from durable temporaries), for embeddings and
// reconstructions, new and resumed (the old rows copied into the new set).
func TestNpySetSyncsEachFileOnce(t *testing.T) {
	for _, resume := range []bool{false, true} {
		for _, kind := range []string{"embeddings", "reconstructions"} {
			dir := filepath.Join(t.TempDir(), "out")
			write := func() {
				rng := rand.New(rand.NewPCG(1, 2))
				if kind == "embeddings" {
					meta := Meta{Model: "m", Pool: "mean", Preprocess: "squash 224", Version: "t", Dim: 4}
					w, err := NewNpy(dir, meta)
					if err != nil {
						t.Fatal(err)
					}
					if err := w.Write(testRows(rng, 0, 3, meta.rowLen())); err != nil {
						t.Fatal(err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					return
				}
				w, err := NewReconNpy(dir, testReconMeta)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Write(reconRows(rng, testReconMeta, 0, 3)); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if resume {
				write()
			}
			before := visibleFiles(t, dir)
			synced := map[string]int{}
			atomicfile.OnSync = func(final string) {
				name, _ := filepath.Rel(dir, final)
				synced[name]++
				if v := visibleFiles(t, dir); !slices.Equal(v, before) {
					t.Errorf("%s resume=%v: %s synced after a rename (visible %q, before %q)", kind, resume, name, v, before)
				}
			}
			write()
			atomicfile.OnSync = nil
			files := visibleFiles(t, dir)
			if len(files) < 2 || len(synced) != len(files) {
				t.Errorf("%s resume=%v: synced %v, files %q", kind, resume, synced, files)
			}
			for _, f := range files {
				if synced[f] != 1 {
					t.Errorf("%s resume=%v: %s synced %d times, want once", kind, resume, f, synced[f])
				}
			}
		}
	}
}
