package sources

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// countFooters counts the footers parsed, by path, until the test ends.
func countFooters(t *testing.T) map[string]int {
	t.Helper()
	parsed := map[string]int{}
	footerParsed = func(p string) { parsed[p]++ }
	t.Cleanup(func() { footerParsed = nil })
	return parsed
}

// What a run does at its start with its Parquet inputs, and then the read,
// parses each footer once: the column check (named columns), the count
// for the progress bar, the count for --mask-noise, the automatic column
// choice the outputs record (before and after the first read), the read
// itself. Files a walk skips (no image column) and damaged ones too.
func TestParquetFooterReadOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	writeKeyedParquet(t, a, []string{"a1", "a2"}, []string{"A1", "A2"})
	writeKeyedParquet(t, b, []string{"b1"}, []string{"B1"})
	broken := filepath.Join(dir, "broken.parquet")
	write(t, broken, "not parquet, but long enough to have a footer")
	for _, opts := range []Options{{}, {ImageColumn: "jpg", IDColumn: "key"}} {
		parsed := countFooters(t)
		r, err := Open([]string{dir}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CheckColumns(); err != nil {
			t.Fatal(err)
		}
		if n, exact := r.Total(); n != 3 || exact {
			t.Errorf("Total %d, %v; want 3, false (the damaged file is not counted)", n, exact)
		}
		if _, err := r.Count(); err == nil || !strings.Contains(err.Error(), broken) {
			t.Errorf("Count: %v, want the damaged file's error", err)
		}
		if id, image := r.AutoColumns(); id != "key" || image != "jpg" {
			t.Errorf("AutoColumns %q, %q", id, image)
		}
		got := readAll(t, r)
		if id, image := r.AutoColumns(); id != "key" || image != "jpg" {
			t.Errorf("AutoColumns after the read %q, %q", id, image)
		}
		want := []string{"a1=A1", "a2=A2", "b1=B1"}
		if len(got) != 4 || !slices.Equal(got[:3], want) || !strings.HasPrefix(got[3], "broken.parquet!read "+broken+": parquet: ") {
			t.Errorf("columns %q: read %q, want %q and the damaged file's error", opts.ImageColumn, got, want)
		}
		for _, p := range []string{a, b, broken} {
			if parsed[p] != 1 {
				t.Errorf("columns %q: footer of %s parsed %d times, want once", opts.ImageColumn, filepath.Base(p), parsed[p])
			}
		}
	}
}

// A file rewritten between the count at the start and its read is read as
// it is now (its footer parsed again), not through the footer it had; and
// past the bytes of footers a Reader keeps, a file's footer is parsed
// again for its read, which reads it all the same.
func TestParquetFooterReadAgain(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.parquet")
	writeKeyedParquet(t, a, []string{"a1"}, []string{"A1"})
	parsed := countFooters(t)
	r, err := Open([]string{a}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Total(); n != 1 {
		t.Fatalf("Total %d", n)
	}
	writeKeyedParquet(t, a, []string{"a1", "a2", "a3"}, []string{"new A1", "A2", "A3"})
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, r), []string{"a1=new A1", "a2=A2", "a3=A3"}; !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	if parsed[a] != 2 {
		t.Errorf("footer parsed %d times, want twice (the file changed)", parsed[a])
	}

	defer func(n int64) { maxKeptFooters = n }(maxKeptFooters)
	maxKeptFooters = 0
	clear(parsed)
	r, err = Open([]string{a}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Total(); n != 3 {
		t.Fatalf("Total %d", n)
	}
	if ft := r.footers[a]; ft.md != nil || r.footersKept != 0 {
		t.Errorf("cap 0: footer kept (%d bytes counted)", r.footersKept)
	}
	if got := readAll(t, r); len(got) != 3 {
		t.Errorf("read %q", got)
	}
	if parsed[a] != 2 {
		t.Errorf("footer parsed %d times, want twice (none kept)", parsed[a])
	}
}

// A file whose footer could not be read at the start of the run (being
// written) and that is whole by its read is read as it now is, not as the
// error it was.
func TestParquetFooterErrorReadAgain(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.parquet")
	write(t, a, "PAR1 partially written, no footer yet ...")
	parsed := countFooters(t)
	r, err := Open([]string{a}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Total(); n != 0 {
		t.Fatalf("Total %d of a damaged file", n)
	}
	writeKeyedParquet(t, a, []string{"a1"}, []string{"A1"})
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, r), []string{"a1=A1"}; !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	if parsed[a] != 2 {
		t.Errorf("footer parsed %d times, want twice (the file changed)", parsed[a])
	}
}

// The footer parsed again for the read of a rewritten file is the one the
// Reader holds after it: the column choice sees the columns it now has.
func TestParquetFooterRefreshed(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.parquet")
	writeKeyedParquet(t, a, []string{"a1"}, []string{"A1"})
	r, err := Open([]string{a}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id, image := r.AutoColumns(); id != "key" || image != "jpg" {
		t.Fatalf("AutoColumns %q, %q", id, image)
	}
	writeHFParquet(t, a, []struct {
		bytes []byte
		path  string
		null  bool
	}{{bytes: []byte("X"), path: "x.png"}})
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || !strings.HasSuffix(got[0], "=X") {
		t.Fatalf("read %q", got)
	}
	if id, image := r.AutoColumns(); id != "-" || image != "image" {
		t.Errorf("AutoColumns after the read %q, %q; want the new file's \"-\", \"image\"", id, image)
	}
	if ft := r.footers[a]; ft.md != nil || r.footersKept != 0 {
		t.Errorf("the refreshed footer is kept (%d bytes counted) after its read", r.footersKept)
	}
}

// The footers kept count what they take parsed, not their bytes in the
// file: many row groups take far more than they store.
func TestParquetFooterKeptBytes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	sizes := make([]int, 3000)
	for i := range sizes {
		sizes[i] = 1
	}
	writeBudgetParquet(t, a, sizes, 1)
	writeBudgetParquet(t, b, sizes, 1)
	ft := readFooter(a, nil)
	if ft.err != nil {
		t.Fatal(ft.err)
	}
	est, size := keptBytes(ft.md), int64(ft.md.Size())
	if est < 10*size {
		t.Fatalf("estimate %d bytes for a footer of %d bytes and 3000 row groups", est, size)
	}
	defer func(n int64) { maxKeptFooters = n }(maxKeptFooters)
	maxKeptFooters = est + est/2
	r, err := Open([]string{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Total(); n != 6000 {
		t.Fatalf("Total %d", n)
	}
	if r.footers[a].md == nil || r.footers[b].md != nil || r.footersKept != est {
		t.Errorf("cap %d: kept a %v, b %v, %d bytes counted; want a only, %d", maxKeptFooters,
			r.footers[a].md != nil, r.footers[b].md != nil, r.footersKept, est)
	}
	if got := readAll(t, r); len(got) != 6000 || r.footersKept != 0 {
		t.Errorf("read %d rows, %d bytes of footers still counted", len(got), r.footersKept)
	}
}
