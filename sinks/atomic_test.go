package sinks

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// Two shards writing into one directory: the second's CleanTemps leaves the
// first's part in progress alone, and the first still publishes it.
func TestCleanTempsLeavesLiveWriters(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Dim: 4}
	w, err := NewParquet(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]Row{{ID: "first/a.jpg", Embedding: make([]float32, 4)}}); err != nil {
		t.Fatal(err)
	}
	live := hiddenFiles(t, dir)
	if len(live) != 1 {
		t.Fatalf("temporaries %v, want the part in progress", live)
	}
	dead := filepath.Join(dir, ".part-00007.parquet.123"+tempSuffix)
	if err := writeFile(dead); err != nil { // a killed writer's: nobody holds it
		t.Fatal(err)
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	if h := hiddenFiles(t, dir); !slices.Equal(h, live) {
		t.Fatalf("after CleanTemps %v, want the live %v only", h, live)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if done := doneIDs(t, dir); !done["first/a.jpg"] {
		t.Errorf("the live writer's row was lost: %v", done)
	}
}

// The same lock name twice is refused with the reason; another name, or
// the same after release, is not.
func TestLockOutput(t *testing.T) {
	dir := t.TempDir()
	release, err := LockOutput(dir, "shard-0-of-2", "two runs of one shard would write the same ids")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockOutput(dir, "shard-0-of-2", "two runs of one shard would write the same ids"); err == nil ||
		!strings.Contains(err.Error(), "another running process") || !strings.Contains(err.Error(), "same ids") {
		t.Errorf("second lock: %v", err)
	}
	other, err := LockOutput(dir, "shard-1-of-2", "")
	if err != nil {
		t.Fatalf("another shard: %v", err)
	}
	other()
	release()
	again, err := LockOutput(dir, "shard-0-of-2", "")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// Runs of one kind share a directory; a live run of another kind refuses a
// newcomer, and once it released, its lock no longer counts.
func TestTakeOutputKind(t *testing.T) {
	dir := t.TempDir()
	a, _, err := TakeOutputKind(dir, "parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := TakeOutputKind(dir, "parquet-2-shards")
	if err != nil {
		t.Fatalf("a second run of the same kind: %v", err)
	}
	if _, _, err := TakeOutputKind(dir, "parquet-3-shards"); err == nil || !strings.Contains(err.Error(), "another kind (parquet-2-shards") {
		t.Errorf("another kind beside a live one: %v", err)
	}
	a()
	if _, _, err := TakeOutputKind(dir, "npy-1-shards"); err == nil {
		t.Error("another kind while one run of the first is still live")
	}
	b()
	c, _, err := TakeOutputKind(dir, "npy-1-shards")
	if err != nil {
		t.Fatalf("after every run of the first kind ended: %v", err)
	}
	c()
	if f, err := PublishedFormats(dir); err != nil || len(f) != 0 {
		t.Errorf("formats of a directory holding only locks: %v, %v", f, err)
	}
}

// Released kind locks leave no file behind.
func TestTakeOutputKindCleansUp(t *testing.T) {
	dir := t.TempDir()
	a, _, err := TakeOutputKind(dir, "parquet-1-shards")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := TakeOutputKind(dir, "parquet-1-shards")
	if err != nil {
		t.Fatal(err)
	}
	a()
	if _, _, err := TakeOutputKind(dir, "npy-1-shards"); err == nil {
		t.Error("the second run's lock went with the first's release")
	}
	b()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// The probes refuse what taking the locks would, and take none: the lock
// a probe passed can still be taken, and a missing directory stays
// missing.
func TestProbeOutput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "out")
	if err := ProbeOutput(missing, "npy", ""); err != nil {
		t.Errorf("probe of a missing directory: %v", err)
	}
	if err := ProbeOutputKind(missing, "npy-1-shards"); err != nil {
		t.Errorf("kind probe of a missing directory: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("a probe created %s", missing)
	}
	dir := t.TempDir()
	kind, _, err := TakeOutputKind(dir, "parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	shard, err := LockOutput(dir, "shard-0-of-2", "same ids")
	if err != nil {
		t.Fatal(err)
	}
	if err := ProbeOutput(dir, "shard-0-of-2", "same ids"); err == nil || !strings.Contains(err.Error(), "another running process (shard-0-of-2): same ids") {
		t.Errorf("probe of a held lock: %v", err)
	}
	if err := ProbeOutputKind(dir, "parquet-3-shards"); err == nil || !strings.Contains(err.Error(), "another kind (parquet-2-shards") {
		t.Errorf("kind probe beside a live kind: %v", err)
	}
	if err := ProbeOutput(dir, "shard-1-of-2", ""); err != nil {
		t.Errorf("probe of a free lock: %v", err)
	}
	if err := ProbeOutputKind(dir, "parquet-2-shards"); err != nil {
		t.Errorf("kind probe of the live kind: %v", err)
	}
	shard()
	kind()
	if err := ProbeOutput(dir, "shard-0-of-2", ""); err != nil {
		t.Errorf("probe after release: %v", err)
	}
	// The probes held nothing: the locks can be taken exclusively.
	again, err := LockOutput(dir, "shard-1-of-2", "")
	if err != nil {
		t.Fatalf("after probes: %v", err)
	}
	again()
	other, _, err := TakeOutputKind(dir, "npy-1-shards")
	if err != nil {
		t.Fatalf("after kind probes: %v", err)
	}
	other()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// A directory removed between the probes' check that it exists and their
// start lock (a run that wrote nothing removes the empty directory it
// made) holds no lock: the probes pass instead of failing on the lock
// file they cannot create.
func TestProbeOutputKindDirGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	beforeStartLock = func() {
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	}
	defer func() { beforeStartLock = nil }()
	if err := ProbeOutputKind(dir, "npy-1-shards"); err != nil {
		t.Errorf("kind probe of a directory removed meanwhile: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if live, err := HasLiveRuns(dir); err != nil || live {
		t.Errorf("live runs in a directory removed meanwhile: %v, %v", live, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it gone", dir, err)
	}
}

// Live runs of one kind (two shards) that have published nothing yet
// cannot tell each other's settings from the parts: the first to open its
// output records its metadata in the kind lock, and a second with other
// settings is refused naming the key. Once every run of the kind is gone,
// a new run is free to use other settings (nothing was published).
func TestLiveRunsOfAKindShareSettings(t *testing.T) {
	dir := t.TempDir()
	mean := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: 4}
	cls := mean
	cls.Pool = "cls"
	a, _, err := TakeOutputKind(dir, "embed-parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := TakeOutputKind(dir, "embed-parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	wa, err := NewParquet(dir, mean, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newer := mean
	newer.Version = "v2" // a newer build may run beside an older one
	wb, err := NewParquet(dir, newer, ParquetOptions{})
	if err != nil {
		t.Fatalf("a second shard with the same settings: %v", err)
	}
	if _, err := NewParquet(dir, cls, ParquetOptions{}); err == nil || !strings.Contains(err.Error(), `maeembed.pool="mean", this run has "cls"`) {
		t.Errorf("a shard with another --pool beside a live one: %v", err)
	}
	wa.Abort()
	wb.Abort()
	a()
	b()
	c, _, err := TakeOutputKind(dir, "embed-parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	defer c()
	if w, err := NewParquet(dir, cls, ParquetOptions{}); err != nil {
		t.Errorf("after the live runs ended, nothing published: %v", err)
	} else {
		w.Abort()
	}
}

// A kind lock left by a run killed before it published (its recorded
// settings stay in the file) does not bind the next run of that kind.
func TestStaleKindSettingsAreDropped(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".maeembed-kind-embed-parquet-1-shards.lock")
	if err := os.WriteFile(stale, []byte(`{"maeembed.pool":"mean"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	release, _, err := TakeOutputKind(dir, "embed-parquet-1-shards")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	w, err := NewParquet(dir, Meta{Model: "m", Pool: "cls", Preprocess: "p", Version: "v", Dim: 4}, ParquetOptions{})
	if err != nil {
		t.Fatalf("settings of a run that is gone: %v", err)
	}
	w.Abort()
}

// Every writer of a batch run's outputs keeps to the settings its live
// siblings recorded, npy sets and PNG panels as Parquet and Arrow parts:
// one writer opened with other settings beside a live one that has
// published nothing is refused, naming the key, and one with the same
// settings goes ahead. The dry run's check (CheckResume,
// CheckReconResume) makes the same comparison and records nothing.
func TestLiveRunSettingsEveryFormat(t *testing.T) {
	embed := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: 4, Weights: "00112233aabbccdd"}
	otherEmbed := embed
	otherEmbed.Pool = "cls"
	recon := testReconMeta
	otherRecon := recon
	otherRecon.Seed = 7
	type writer interface{ Abort() error }
	type liveCase struct {
		kind, format string
		open         func(dir string, other bool) (writer, error)
		check        func(dir string, other bool) error
		want         string
	}
	// The writer and the check of one format, with the run's settings or
	// (other) the refused ones.
	embedCase := func(kind, format string) liveCase {
		meta := func(other bool) Meta { return map[bool]Meta{false: embed, true: otherEmbed}[other] }
		return liveCase{kind, format, func(dir string, other bool) (writer, error) {
			return NewEmbeddings(format, dir, meta(other), ParquetOptions{})
		}, func(dir string, other bool) error {
			return CheckResume(dir, format, meta(other))
		}, `maeembed.pool="mean", this run has "cls"`}
	}
	reconCase := func(kind, format string) liveCase {
		meta := func(other bool) ReconMeta { return map[bool]ReconMeta{false: recon, true: otherRecon}[other] }
		return liveCase{kind, format, func(dir string, other bool) (writer, error) {
			return NewReconstructions(format, dir, meta(other), ParquetOptions{})
		}, func(dir string, other bool) error {
			return CheckReconResume(dir, format, meta(other))
		}, `maeembed.seed="3", this run has "7"`}
	}
	for _, tc := range []liveCase{
		embedCase("embed-parquet-2-shards", "parquet"),
		embedCase("embed-arrow-2-shards", "arrow"),
		embedCase("embed-npy-1-shards", "npy"),
		reconCase("reconstruct-npy-1-shards", "npy"),
		reconCase("reconstruct-parquet-2-shards", "parquet"),
		reconCase("reconstruct-png-2-shards", "png"),
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			release, _, err := TakeOutputKind(dir, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			// Before the live run opens its writer it has recorded
			// nothing: the dry run's check passes either way.
			if err := tc.check(dir, true); err != nil {
				t.Errorf("check beside a live run that recorded nothing yet: %v", err)
			}
			live, err := tc.open(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer live.Abort()
			if err := tc.check(dir, false); err != nil {
				t.Errorf("check with the live run's settings: %v", err)
			}
			if err := tc.check(dir, true); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "live run") {
				t.Errorf("check with other settings beside the live run: %v, want a refusal naming %s", err, tc.want)
			}
			if tc.format == "npy" {
				return // a second npy writer is refused by its run lock (engine.TakeOutputDir) before it opens
			}
			if w, err := tc.open(dir, false); err != nil {
				t.Errorf("a sibling with the same settings: %v", err)
			} else {
				w.Abort()
			}
			if w, err := tc.open(dir, true); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("a sibling with other settings: %v, want a refusal naming %s", err, tc.want)
				if err == nil {
					w.Abort()
				}
			}
		})
	}
}

// TakeOutputKind makes the output directory's missing parents one by one
// and names exactly those it made, the directory itself last; one that
// existed is not among them. RemoveMadeDirs leaves a directory a live run
// holds its lock in, and never one that existed before.
func TestTakeOutputKindNamesTheDirsItMade(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "a", "b", "c")
	release, made, err := TakeOutputKind(dir, "parquet-1-shards")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(root, "a", "b"), dir}; !slices.Equal(made, want) {
		t.Errorf("made %v, want %v", made, want)
	}
	again, made2, err := TakeOutputKind(dir, "parquet-1-shards")
	if err != nil || len(made2) != 0 {
		t.Errorf("a second run into the existing directory: made %v, %v", made2, err)
	}
	// Still in use by the second run: the first's removal leaves all.
	release()
	RemoveMadeDirs(made)
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("removed a directory another run holds its lock in: %v", err)
	}
	again()
	RemoveMadeDirs(made)
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a/b once no run is in it: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); err != nil {
		t.Errorf("a/, which existed before: %v", err)
	}
}
