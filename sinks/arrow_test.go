package sinks

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
)

func TestArrowRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		meta    Meta
		jsType  string
		goTypes arrow.DataType
	}{
		{"mean", Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: 6}, "FixedSizeList[6]<Float32>", fslType(6)},
		{"tokens", Meta{Model: "m", Pool: "tokens", Preprocess: "p", Version: "v", Dim: 3, Tokens: 4}, "FixedSizeList[4]<FixedSizeList[3]<Float32>>", fslType(4, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := NewArrow(dir, tc.meta, ParquetOptions{MaxFileRows: 4})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(11, 12))
			var want []Row
			for _, n := range []int{2, 3, 2} {
				rows := testRows(rng, len(want), n, tc.meta.rowLen())
				if err := w.Write(rows); err != nil {
					t.Fatal(err)
				}
				want = append(want, rows...)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			files := []string{filepath.Join(dir, "part-00000.arrow"), filepath.Join(dir, "part-00001.arrow")}
			if v := visibleFiles(t, dir); !slices.Equal(v, []string{"part-00000.arrow", "part-00001.arrow"}) {
				t.Fatalf("files %v", v)
			}

			// Arrow Go's IPC reader.
			var got []Row
			for _, p := range files {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				r, err := ipc.NewFileReader(f)
				if err != nil {
					t.Fatal(err)
				}
				if typ := r.Schema().Field(1).Type; !arrow.TypeEqual(typ, tc.goTypes) {
					t.Errorf("embedding type %s, want %s", typ, tc.goTypes)
				}
				if v, _ := r.Schema().Metadata().GetValue("maeembed.pool"); v != tc.meta.Pool {
					t.Errorf("maeembed.pool = %q", v)
				}
				var recs []arrow.Record
				for i := 0; i < r.NumRecords(); i++ {
					rec, err := r.Record(i)
					if err != nil {
						t.Fatal(err)
					}
					rec.Retain() // the reader releases it on the next call
					recs = append(recs, rec)
				}
				tbl := array.NewTableFromRecords(r.Schema(), recs)
				got = append(got, tableRows(t, tbl)...)
				tbl.Release()
				r.Close()
				f.Close()
			}
			sameRows(t, "arrow go", got, want, true)

			// Apache Arrow JS, an independent reader.
			var js struct {
				Files []struct {
					Fields []struct {
						Name, Type string
					}
					Metadata map[string]string
					Rows     []map[string]json.RawMessage
				}
			}
			if err := json.Unmarshal(nodeScript(t, "arrow.mjs", files...), &js); err != nil {
				t.Fatal(err)
			}
			var jsRows []Row
			for _, f := range js.Files {
				if f.Fields[1].Name != "embedding" || f.Fields[1].Type != tc.jsType {
					t.Errorf("arrow js embedding field %+v, want type %s", f.Fields[1], tc.jsType)
				}
				for k, v := range map[string]string{"maeembed.model": "m", "maeembed.pool": tc.meta.Pool, "maeembed.preprocess": "p", "maeembed.version": "v", "maeembed.dim": fmt.Sprint(tc.meta.Dim)} {
					if f.Metadata[k] != v {
						t.Errorf("arrow js metadata %s = %q, want %q", k, f.Metadata[k], v)
					}
				}
				jsRows = append(jsRows, duckRows(t, duckResult{Rows: f.Rows})...)
			}
			sameRows(t, "arrow js", jsRows, want, true)

			done, err := ReadDoneIDs(dir)
			if err != nil || len(done) != len(want) {
				t.Fatalf("ReadDoneIDs: %d ids, %v", len(done), err)
			}
		})
	}
}
