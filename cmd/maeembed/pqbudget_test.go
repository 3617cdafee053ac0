package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources/sourcetest"
)

// A Parquet dataset whose one page (all its rows) is too large for the
// memory budget: its rows are error rows under their keys, each naming its
// own row; a plain rerun skips them as done; --retry-errors with a larger
// budget embeds them and leaves errors/ empty, and a later retry has
// nothing to retry. (They were error rows under FILE/ROW ids that no run
// ever took again: every image ended up both embedded and in errors/.)
func TestParquetPageOverBudgetRetriesUnderKeys(t *testing.T) {
	png, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "png", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	const rows = 6
	keys := map[string]int{}
	for i := range rows {
		img := png
		if i == rows-1 {
			img = append(append([]byte{}, png...), make([]byte, 3<<20)...) // trailing bytes after IEND
		}
		k := fmt.Sprintf("k%d", i)
		keys[k] = 1
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.BinaryBuilder).Append(img)
	}
	rec := b.NewRecord()
	defer rec.Release()
	ds := filepath.Join(t.TempDir(), "big.parquet")
	sourcetest.WriteParquet(t, ds, rec)

	out := filepath.Join(t.TempDir(), "out")
	args := func(more ...string) []string { return embedArgs(out, append(more, ds)...) }
	maeembed(t, args("--memory-budget", "2MiB", "--batch-size", "1")...) // every row fails: exit non-zero
	if e := partIDs(t, out, "errors/part-*.parquet"); !reflect.DeepEqual(e, keys) {
		t.Fatalf("error rows %v, want each key once", e)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "errors", "part-*.parquet"))
	tbl, _, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < tbl.Column(2).Data().Len(); c++ {
		id, msg := tbl.Column(0).Data().Chunk(0).ValueStr(c), tbl.Column(2).Data().Chunk(0).ValueStr(c)
		if !strings.Contains(msg, "row "+id[1:]+": ") || !sinks.RetryableError(msg) {
			t.Errorf("%s: error %q, want the budget's refusal of row %s", id, msg, id[1:])
		}
	}
	tbl.Release()

	maeembed(t, args()...) // a plain rerun: the failed rows are done
	if o := partIDs(t, out, "part-*.parquet"); len(o) != 0 {
		t.Errorf("a plain rerun embedded %v, want none (errored ids are skipped)", o)
	}
	runCounted(t, summary{rows, 0, 0}, args("--retry-errors")...)
	if o := partIDs(t, out, "part-*.parquet"); !reflect.DeepEqual(o, keys) {
		t.Errorf("embedded %v after the retry, want each key once", o)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 0 {
		t.Errorf("error rows %v left after the retry embedded every row", e)
	}
	stderr := runCounted(t, summary{0, 0, rows}, args("--retry-errors")...)
	if strings.Contains(stderr, "retrying=") && !strings.Contains(stderr, "retrying=0") {
		t.Errorf("a second retry still retries:\n%s", stderr)
	}
}
