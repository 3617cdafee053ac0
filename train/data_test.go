package train

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/sources/sourcetest"
	"github.com/maeembed/maeembed/stages"
)

// LoadDataset runs on the engine: the photos come back in input order,
// shrunk for cropping (augmented) or at S×S (not); the undecodable files
// are error rows of stage decode in OUTPUT/errors; every input is acked
// once, with nil.
func TestLoadDatasetOnTheEngine(t *testing.T) {
	inputs := []string{"../examples/photos", "testdata/broken"}
	for _, augment := range []bool{true, false} {
		out := t.TempDir()
		var mu sync.Mutex
		acks := map[string][]error{}
		src, err := sources.OpenWith(inputs, nil, sources.Options{OnAck: func(it sources.Item, err error) {
			mu.Lock()
			acks[it.ID] = append(acks[it.ID], err)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		pre := stages.Preprocess{Mode: stages.Squash, Size: 32}
		errw, err := sinks.NewErrors(out, sinks.Meta{Model: "t", Pool: "none", Version: "test", Dim: 1}, sinks.ParquetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var failed []Failure
		d, err := LoadDataset(context.Background(), src, pre, augment, 2, errw, func(f Failure) { failed = append(failed, f) })
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		photos, _ := filepath.Glob("../examples/photos/*.jpg")
		if len(d.IDs) != len(photos) || !slices.IsSorted(d.IDs) || len(d.Images) != len(d.IDs) {
			t.Fatalf("augment %v: ids %v for %d photos", augment, d.IDs, len(photos))
		}
		for i, img := range d.Images {
			w, h := img.Rect.Dx(), img.Rect.Dy()
			if augment && (min(w, h) > ShrinkFactor*32 || min(w, h) < 32) || !augment && (w != 32 || h != 32) {
				t.Errorf("augment %v: %s is %dx%d", augment, d.IDs[i], w, h)
			}
		}
		if len(failed) != 2 || failed[0].Stage != "decode" || failed[1].Stage != "decode" {
			t.Errorf("augment %v: failures %+v, want the two broken files at decode", augment, failed)
		}
		tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if tbl.NumRows() != 2 || tbl.Column(1).Data().Chunk(0).ValueStr(0) != "decode" {
			t.Errorf("augment %v: %d error rows", augment, tbl.NumRows())
		}
		tbl.Release()
		if len(acks) != len(photos)+2 {
			t.Errorf("augment %v: %d inputs acked, want %d", augment, len(acks), len(photos)+2)
		}
		for id, a := range acks {
			if len(a) != 1 || a[0] != nil {
				t.Errorf("augment %v: %s acked %v", augment, id, a)
			}
		}
	}
}

// Under a memory budget the training set is kept inside it: the photos'
// kept images are what the budget holds after the load (and Free gives
// them back); a budget too small for them all ends the load with an
// error that says the training set does not fit, not a run that grows
// past it, and gives back everything: the budget holds nothing, and every
// input read was acked once (those not kept, with the error).
func TestLoadDatasetKeepsTheSetInTheBudget(t *testing.T) {
	var st sources.Stats // of the last load's source
	load := func(budget int64) (*Dataset, *stages.Budget, error) {
		src, err := sources.OpenWith([]string{"../examples/photos"}, nil, sources.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		pre := stages.Preprocess{Mode: stages.Squash, Size: 224, Budget: stages.NewBudget(budget)} // kept up to 448 a side
		d, err := LoadDataset(context.Background(), src, pre, true, 2, nil, nil)
		st = src.Stats()
		return d, pre.Budget, err
	}
	d, b, err := load(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	for _, img := range d.Images {
		kept += int64(cap(img.Pix))
	}
	if b.Kept() != kept || b.InUse() != kept || b.Peak() > b.Size() {
		t.Errorf("budget keeps %d, holds %d (peak %d of %d); the images take %d", b.Kept(), b.InUse(), b.Peak(), b.Size(), kept)
	}
	d.Free()
	if b.InUse() != 0 {
		t.Errorf("%d bytes held after Free", b.InUse())
	}
	// Room to decode the largest photo, not to keep them all.
	if _, b, err := load(8 << 20); err == nil || !strings.Contains(err.Error(), "training set does not fit in the memory budget") {
		t.Errorf("a budget too small for the set: err = %v", err)
	} else if b.Peak() > b.Size() || b.InUse() != 0 {
		t.Errorf("budget after the refused load: peak %d of %d, %d in use", b.Peak(), b.Size(), b.InUse())
	}
	if st.Acked != st.Emitted || st.Failed == 0 {
		t.Errorf("after the refused load: %d inputs read, %d acked (%d with an error)", st.Emitted, st.Acked, st.Failed)
	}
}

// A load aborted at any point, whatever is then between the engine's
// stages (the item just read, items queued, a batch being filled), gives
// back all the memory budget they hold and acks each input read once.
func TestLoadDatasetAbortedGivesBackTheBudget(t *testing.T) {
	photos, _ := filepath.Glob("../examples/photos/*.jpg")
	for at := range photos {
		r, err := sources.OpenWith([]string{"../examples/photos"}, nil, sources.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, abort := context.WithCancel(context.Background())
		src := &sourcetest.AbortAt{Reader: r, At: at, Abort: abort}
		pre := stages.Preprocess{Mode: stages.Squash, Size: 224, Budget: stages.NewBudget(64 << 20)}
		if _, err := LoadDataset(ctx, src, pre, true, 2, nil, nil); err == nil {
			t.Errorf("aborted at input %d: the load succeeded", at)
		}
		r.Close()
		if b := pre.Budget; b.InUse() != 0 || b.Kept() != 0 {
			t.Errorf("aborted at input %d: %d bytes held in the budget (%d kept)", at, b.InUse(), b.Kept())
		}
		if st := r.Stats(); st.Acked != st.Emitted || st.Emitted != int64(at+1) {
			t.Errorf("aborted at input %d: %d inputs read, %d acked", at, st.Emitted, st.Acked)
		}
	}
}
