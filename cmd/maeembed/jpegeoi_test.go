package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/maeembed/maeembed/sinks"
)

// errorRows maps the id of each error row of out to its stage and message.
func errorRows(t *testing.T, out string) map[string][2]string {
	t.Helper()
	rows := map[string][2]string{}
	parts, _ := filepath.Glob(filepath.Join(out, "errors", "part-*.parquet"))
	for _, p := range parts {
		tbl, _, err := sinks.ReadParquet(p)
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) *array.String {
			idx := tbl.Schema().FieldIndices(name)
			if len(idx) != 1 || tbl.Column(idx[0]).Data().Len() != int(tbl.NumRows()) || len(tbl.Column(idx[0]).Data().Chunks()) != 1 {
				t.Fatalf("%s: column %s", p, name)
			}
			return tbl.Column(idx[0]).Data().Chunk(0).(*array.String)
		}
		ids, stages, msgs := col("id"), col("stage"), col("error")
		for i := 0; i < ids.Len(); i++ {
			rows[ids.Value(i)] = [2]string{stages.Value(i), msgs.Value(i)}
		}
		tbl.Release()
	}
	return rows
}

// A JPEG whose only defect is a missing EOI marker, which PIL decodes
// (examples/photos/kleiber.jpg without its last 2 bytes, or its last one),
// gets an embedding row, with no log line of its own; one PIL refuses
// (calla.jpg without EOI) and one cut inside its image data get an error
// row naming the file as truncated, and a warning with their id.
func TestE2EJPEGWithoutEOI(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("../../examples/photos", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kleiber, calla := read("kleiber.jpg"), read("calla.jpg")
	for name, data := range map[string][]byte{
		"kleiber-no-eoi.jpg":  kleiber[:len(kleiber)-2],
		"kleiber-lone-ff.jpg": kleiber[:len(kleiber)-1],
		"calla-no-eoi.jpg":    calla[:len(calla)-2],
		"calla-cut.jpg":       calla[:len(calla)/2],
	} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	stderr := runCounted(t, summary{2, 2, 0}, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, root)
	if ids := partIDs(t, out, "part-*.parquet"); !reflect.DeepEqual(ids, map[string]int{"kleiber-no-eoi.jpg": 1, "kleiber-lone-ff.jpg": 1}) {
		t.Errorf("embedded ids %v, want the two kleiber files", ids)
	}
	errs := errorRows(t, out)
	for _, id := range []string{"calla-no-eoi.jpg", "calla-cut.jpg"} {
		if r := errs[id]; r[0] != "decode" || !strings.HasPrefix(r[1], "decode jpeg: truncated: the file ends before its EOI marker") {
			t.Errorf("error row of %s: stage %q, %q; want a truncated file's decode error", id, r[0], r[1])
		}
		if !strings.Contains(stderr, "id="+id) {
			t.Errorf("no warning names %s:\n%s", id, stderr)
		}
	}
	if len(errs) != 2 || strings.Contains(stderr, "kleiber") {
		t.Errorf("error rows %v, or a log line about a kleiber file:\n%s", errs, stderr)
	}
}
