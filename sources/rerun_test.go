package sources

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rerunAddsNothing reads p, then reads it again with every id of the first
// read done (a plain rerun into the first run's output): the rerun must
// take nothing, or it records an error the first run did not (under
// another id) for the same damage.
func rerunAddsNothing(t *testing.T, p, what string) {
	t.Helper()
	done := map[string]bool{}
	for _, it := range readInput(t, p, Options{ParquetBatch: 2}) {
		done[it.ID] = true
	}
	again := readInput(t, p, Options{ParquetBatch: 2, Done: func(id string) bool { return done[id] }})
	for _, it := range again {
		t.Errorf("%s: the rerun takes %s (err %v), which the first read did not give", what, it.ID, it.Err)
	}
}

// A tar cut at any length: the rerun meets the same end under an id the
// first read gave.
func TestRerunOfCutTarAddsNothing(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar")
	writeTar(t, whole, false, [][2]string{{"1.jpg", "A"}, {"2.jpg", strings.Repeat("B", 700)}, {"meta.json", "{}"}, {"3.jpg", "C"}})
	b, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "t.tar")
	for n := 0; n < len(b); n += 7 {
		if err := os.WriteFile(p, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		rerunAddsNothing(t, p, "cut at "+strconv.Itoa(n))
	}
}

// A Parquet file with one damaged byte anywhere in its pages: its error
// rows are under row ids a rerun gives them again.
func TestRerunOfCorruptParquetAddsNothing(t *testing.T) {
	orig := corruptParquet(t)
	footer := int(binary.LittleEndian.Uint32(orig[len(orig)-8:])) + 8
	p := filepath.Join(t.TempDir(), "x.parquet")
	for off := 4; off < len(orig)-footer; off++ {
		data := bytes.Clone(orig)
		data[off] ^= 0xff
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rerunAddsNothing(t, p, "byte "+strconv.Itoa(off))
	}
}
