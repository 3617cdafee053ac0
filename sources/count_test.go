package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Count, read before the run, is the number of positions the run gives
// out: files, tar members that are images (plain and gzip-compressed, a
// repeated member too), Parquet rows, a named container without images as
// its error item, and nothing for a dataset's metadata Parquet beside its
// images; in every shard. A tar cut short cannot be counted.
func TestCountIsTheSequenceLength(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "plain.tar"), false, [][2]string{{"a.jpg", "A"}, {"a.json", "{}"}, {"b.png", "B"}, {"a.jpg", "again"}})
	writeTar(t, filepath.Join(dir, "packed.tgz"), true, [][2]string{{"c.jpg", "C"}, {"d.jpg", "D"}})
	writeTar(t, filepath.Join(dir, "empty.tar"), false, [][2]string{{"x.txt", "X"}})
	pq, err := os.ReadFile("testdata/img2dataset-parquet/00000.parquet")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "shard.parquet"), string(pq))
	inputs := []string{"testdata/img2dataset-files", filepath.Join(dir, "shard.parquet"), "testdata/wds-gnutar.tar",
		filepath.Join(dir, "plain.tar"), filepath.Join(dir, "packed.tgz"), filepath.Join(dir, "empty.tar")}
	for _, shard := range []Shard{{}, {Index: 1, Count: 2}} {
		r, err := Open(inputs, Options{Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		n, err := r.Count()
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, r)
		if seen := r.Stats().Seen; n != seen || n != 3+3+3+3+2+1 {
			t.Errorf("shard %+v: Count() = %d, the run saw %d positions, want 15", shard, n, seen)
		}
	}

	writeTar(t, filepath.Join(dir, "long.tar"), false, [][2]string{{"a.jpg", strings.Repeat("A", 2000)}, {"b.jpg", "B"}})
	raw, err := os.ReadFile(filepath.Join(dir, "long.tar"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.tar")
	if err := os.WriteFile(cut, raw[:512+1000], 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open([]string{cut}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Count(); err == nil || !strings.Contains(err.Error(), "cannot count the images of "+cut) {
		t.Errorf("a tar cut short: Count() error %v, want one naming it", err)
	}
}
