package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
)

// Shards of one format and count may share a directory, but only those of
// one command: an embed shard and a reconstruct shard started together
// would each find no published part to compare with and write embeddings
// and reconstructions side by side.
func TestOutputDirKindNamesTheCommand(t *testing.T) {
	dir := t.TempDir()
	shard := func(cmd string, i int) OutputDir {
		return OutputDir{Dir: dir, Format: "parquet", Shard: sources.Shard{Index: i, Count: 2}, Resume: true, Command: cmd}
	}
	release, err := TakeOutputDir(shard("embed", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer release(false)
	want := "another kind (embed-parquet-2-shards; this run: reconstruct-parquet-2-shards)"
	if err := CheckOutputDir(shard("reconstruct", 0)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("dry run of a reconstruct shard beside a live embed shard: %v", err)
	}
	if rel, err := TakeOutputDir(shard("reconstruct", 0)); err == nil || !strings.Contains(err.Error(), want) {
		if err == nil {
			rel(false)
		}
		t.Errorf("reconstruct shard beside a live embed shard: %v", err)
	}
	rel, err := TakeOutputDir(shard("embed", 0))
	if err != nil {
		t.Fatalf("the other embed shard: %v", err)
	}
	rel(false)
}

// A second run of a shard beside a live one is refused with words true of
// any two such runs: the lock cannot tell whether their inputs are the
// same, so the error does not claim they are.
func TestOutputDirLiveShardRefusal(t *testing.T) {
	dir := t.TempDir()
	o := OutputDir{Dir: dir, Format: "parquet", Resume: true, Command: "embed"}
	release, err := TakeOutputDir(o)
	if err != nil {
		t.Fatal(err)
	}
	defer release(false)
	rel, err := TakeOutputDir(o)
	if err == nil {
		rel(false)
		t.Fatal("a second run of the shard beside a live one was not refused")
	}
	msg := err.Error()
	if strings.Contains(msg, "two runs of the same inputs") || !strings.Contains(msg, "whatever its inputs") || !strings.Contains(msg, "another --output") {
		t.Errorf("refusal: %v", err)
	}
}

// A run that writes nothing into -o a/b/c, where none of a/b/c existed,
// leaves none of the three behind: it removes every directory it made
// that is still empty, the deepest first. One that existed before the run
// stays, empty or not, and so does one that a file was put into meanwhile
// (with its parents); a run that wrote something keeps all.
func TestTakeOutputDirRemovesTheParentsItMade(t *testing.T) {
	exists := func(p string) bool {
		_, err := os.Stat(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	take := func(dir string) func(bool) {
		t.Helper()
		release, err := TakeOutputDir(OutputDir{Dir: dir, Format: "parquet", Command: "embed"})
		if err != nil {
			t.Fatal(err)
		}
		if !exists(dir) {
			t.Fatalf("%s not made", dir)
		}
		return release
	}

	root := t.TempDir()
	out := filepath.Join(root, "a", "b", "c")
	take(out)(true)
	if exists(filepath.Join(root, "a")) {
		t.Errorf("a run that wrote nothing into %s left %s behind", out, filepath.Join(root, "a"))
	}
	if !exists(root) {
		t.Fatalf("the run removed %s, which existed before it", root)
	}

	// a/ existed before: it stays, b/ and c/ go. Relative, as -o a/b/c.
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	take(filepath.Join("a", "b", "c"))(true)
	if !exists("a") || exists(filepath.Join("a", "b")) {
		t.Errorf("a/ that existed before: a/ there %v (want true), a/b/ there %v (want false)", exists("a"), exists(filepath.Join("a", "b")))
	}

	// A file put into a/b/ meanwhile: a/b/ and a/ stay, c/ goes.
	fresh := filepath.Join(root, "new")
	release := take(filepath.Join(fresh, "b", "c"))
	note := filepath.Join(fresh, "b", "note")
	if err := os.WriteFile(note, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	release(true)
	if !exists(note) || exists(filepath.Join(fresh, "b", "c")) {
		t.Errorf("a file put into b/ meanwhile: it is there %v (want true), c/ %v (want false)", exists(note), exists(filepath.Join(fresh, "b", "c")))
	}

	// Without discard (the run wrote something), all stay.
	kept := filepath.Join(root, "kept", "b", "c")
	take(kept)(false)
	if !exists(kept) {
		t.Errorf("a run that did not discard its output lost %s", kept)
	}
}

// Runs that start and end at once into one new -o a/b/c, each writing
// nothing, remove the directories under one another: a parent that goes
// while a run is making its directories or taking the start lock is made
// again (ENOENT is not an error), and a directory another run put its lock
// in is not removed. (Directories whose maker left while another run was
// in them may stay: that run did not make them.) No file is left.
func TestTakeOutputDirConcurrentEmptyRuns(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "a", "b", "c")
	const runs, rounds = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, runs*rounds)
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := OutputDir{Dir: out, Format: "parquet", Shard: sources.Shard{Index: i, Count: runs}, Command: "embed"}
			for r := 0; r < rounds; r++ {
				release, err := TakeOutputDir(o)
				if err != nil {
					errs <- err
					continue
				}
				release(true)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An npy set whose publication a killed run cut (embeddings.npy renamed
// into place, metadata.parquet still its finished temporary) is npy
// output already: a Parquet run and a --resume=false run are refused as
// for a published set, before and after the clean-up that completes it;
// an npy rerun takes the directory and finds the set published.
func TestOutputDirCutNpyPublication(t *testing.T) {
	dir := t.TempDir()
	w, err := sinks.NewNpy(dir, sinks.Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]sinks.Row{{ID: "a.jpg", Width: 1, Height: 1, Embedding: []float32{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "metadata.parquet")
	if err := os.Rename(md, filepath.Join(dir, ".metadata.parquet.12345.maeembed-tmp")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o    OutputDir
		want string
	}{
		{OutputDir{Dir: dir, Format: "parquet", Resume: true, Command: "embed"}, "holds npy output and this run writes parquet"},
		{OutputDir{Dir: dir, Format: "npy", Command: "embed"}, "already holds outputs (npy)"},
	} {
		if err := c.o.checkHeld(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s resume %v: %v, want %q", c.o.Format, c.o.Resume, err, c.want)
		}
		if release, err := TakeOutputDir(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			if err == nil {
				release(false)
			}
			t.Errorf("%s resume %v: took the directory: %v, want %q", c.o.Format, c.o.Resume, err, c.want)
		}
	}
	release, err := TakeOutputDir(OutputDir{Dir: dir, Format: "npy", Resume: true, Command: "embed"})
	if err != nil {
		t.Fatalf("the npy rerun: %v", err)
	}
	release(true)
	if _, err := os.Stat(md); err != nil {
		t.Errorf("the npy rerun's clean-up did not publish the cut set: %v", err)
	}
	// Published now, it refuses the Parquet run as any npy output does.
	if release, err := TakeOutputDir(OutputDir{Dir: dir, Format: "parquet", Resume: true, Command: "embed"}); err == nil {
		release(false)
		t.Error("a Parquet run took the directory of the completed npy set")
	}
}

// A stream worker taking a shared output removes the lock files of
// workers that are gone (killed: their 0-byte locks would pile up) and
// leaves those of live workers, which still refuse their id.
func TestWorkerRemovesStaleWorkerLocks(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".maeembed-worker-host-123.lock")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	live := OutputDir{Dir: dir, Format: "parquet", Resume: true, Group: "g", WorkerID: "live"}
	releaseLive, err := TakeOutputDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLive(false)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file of a worker that is gone stays (%v)", err)
	}
	// Another killed worker's, now that one is live.
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	release, err := TakeOutputDir(OutputDir{Dir: dir, Format: "parquet", Resume: true, Group: "g", WorkerID: "w2"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(false)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file of a worker that is gone stays (%v)", err)
	}
	for _, id := range []string{"live", "w2"} {
		if _, err := os.Stat(filepath.Join(dir, ".maeembed-worker-"+id+".lock")); err != nil {
			t.Errorf("live worker %s's lock: %v", id, err)
		}
	}
	if _, err := TakeOutputDir(live); err == nil || !strings.Contains(err.Error(), "--worker-id live") {
		t.Errorf("a second worker live: %v, want refused", err)
	}
}
