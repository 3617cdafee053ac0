package sources

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets for the container readers: arbitrary bytes must never panic
// or hang a Reader, and every item must be bytes or an error. Seeds: the
// fixtures in testdata plus the corpus in testdata/fuzz. Run longer with
// (minimizing each new input through the Parquet reader stalls the fuzzer
// for minutes; -fuzzminimizetime 0 keeps it at hundreds of inputs a second)
//
//	go test ./sources -run '^$' -fuzz FuzzParquetReader -fuzztime 5m -fuzzminimizetime 0
//	go test ./sources -run '^$' -fuzz FuzzTarReader -fuzztime 5m -fuzzminimizetime 0

// readInput reads the file p through a Reader, checking that every item is
// bytes or an error.
func readInput(t testing.TB, p string, opts Options) []Item {
	t.Helper()
	r, err := Open([]string{p}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var items []Item
	for {
		it, err := r.Next(context.Background())
		if err == io.EOF {
			return items
		}
		if err != nil {
			t.Fatal(err)
		}
		if (it.Err == nil) == (it.Data == nil) {
			t.Fatalf("%s: data %d bytes and error %v", it.ID, len(it.Data), it.Err)
		}
		items = append(items, it)
	}
}

func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzParquetReader: a file whose footer reads gives exactly one item per
// row of the footer (bytes or an error row); one whose footer does not is
// one error item.
func FuzzParquetReader(f *testing.F) {
	addSeeds(f, "testdata/*.parquet", "testdata/*/*.parquet")
	f.Add(corruptParquet(f))
	defer func(n int) { maxMemberBytes = n }(maxMemberBytes)
	maxMemberBytes = 1 << 20 // keep memory bounded while fuzzing headers
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		items, rows, footerOK := readParquetBytes(t, dir, data)
		if !footerOK {
			if len(items) != 1 || items[0].Err == nil {
				t.Fatalf("unreadable footer: %d items, want 1 error", len(items))
			}
			return
		}
		if int64(len(items)) != rows && !(len(items) == 1 && items[0].Err != nil) {
			t.Fatalf("%d items for %d rows", len(items), rows)
		}
	})
}

// FuzzTarReader: any archive gives items that are bytes or errors, and
// never more items than it has members named like images.
func FuzzTarReader(f *testing.F) {
	addSeeds(f, "testdata/*.tar")
	defer func(n int) { maxMemberBytes = n }(maxMemberBytes)
	maxMemberBytes = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "x.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		items := readInput(t, p, Options{})
		if n, err := tarMembers(p, false); err == nil && int64(len(items)) != n {
			t.Fatalf("%d items, %d image members", len(items), n)
		}
	})
}
