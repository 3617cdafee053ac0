package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A Parquet dataset (written by DuckDB) whose id column holds a null: that
// row is an error row under its row id (ds.parquet/2) in the first run,
// and a rerun, which passes over the done rows before it, takes it for
// done too: it is never filed under the id of a row passed over (which
// would then have an embedding and an error row).
func TestNullParquetIDIsDoneOnRerun(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	img := func(i int) string { return fixturePhotoSQL(t, i) }
	duckQuery(t, "COPY (SELECT key, png FROM ("+
		"SELECT 0 AS ord, 'a' AS key, content AS png FROM read_blob("+img(0)+") UNION ALL "+
		"SELECT 1, 'b', content FROM read_blob("+img(1)+") UNION ALL "+
		"SELECT 2, NULL, content FROM read_blob("+img(2)+") UNION ALL "+
		"SELECT 3, 'c', content FROM read_blob("+img(0)+")) ORDER BY ord) TO "+sqlString(filepath.Join(in, "ds.parquet"))+" (FORMAT parquet)")

	runCounted(t, summary{3, 1, 0}, embedArgs(out, in)...)
	runCounted(t, summary{0, 0, 4}, embedArgs(out, in)...)
	if o := partIDs(t, out, "part-*.parquet"); !reflect.DeepEqual(o, map[string]int{"a": 1, "b": 1, "c": 1}) {
		t.Errorf("embedded ids %v, want a, b, c once each", o)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); !reflect.DeepEqual(e, map[string]int{"ds.parquet/2": 1}) {
		t.Errorf("error rows %v, want ds.parquet/2 once", e)
	}
}
