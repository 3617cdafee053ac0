package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// flatFloats returns the float32 values under a (nested) fixed-size list
// or float32 array, honouring slice offsets.
func flatFloats(t *testing.T, a arrow.Array) []float32 {
	t.Helper()
	switch a := a.(type) {
	case *array.Float32:
		return a.Float32Values()
	case *array.FixedSizeList:
		all := flatFloats(t, a.ListValues())
		per := len(all) / a.ListValues().Len() * int(a.DataType().(*arrow.FixedSizeListType).Len())
		return all[a.Offset()*per : (a.Offset()+a.Len())*per]
	default:
		t.Fatalf("unexpected array type %s", a.DataType())
		return nil
	}
}

// tableRows reads id, width, height and (if present) embedding columns.
func tableRows(t *testing.T, tbl arrow.Table) []Row {
	t.Helper()
	var rows []Row
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	for tr.Next() {
		rec := tr.Record()
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) == 0 {
				return nil
			}
			return rec.Column(idx[0])
		}
		ids := col("id").(*array.String)
		ws := col("width").(*array.Int32)
		hs := col("height").(*array.Int32)
		var emb []float32
		per := 0
		if e := col("embedding"); e != nil {
			emb = flatFloats(t, e)
			per = len(emb) / int(rec.NumRows())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			r := Row{ID: ids.Value(i), Width: ws.Value(i), Height: hs.Value(i)}
			if emb != nil {
				r.Embedding = slices.Clone(emb[i*per : (i+1)*per])
			}
			rows = append(rows, r)
		}
	}
	if err := tr.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func sameRows(t *testing.T, what string, got, want []Row, withEmb bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Width != w.Width || g.Height != w.Height {
			t.Fatalf("%s row %d: got (%q,%d,%d) want (%q,%d,%d)", what, i, g.ID, g.Width, g.Height, w.ID, w.Width, w.Height)
		}
		if withEmb && !slices.Equal(g.Embedding, w.Embedding) {
			t.Fatalf("%s row %d (%s): embedding differs\n got %v\nwant %v", what, i, w.ID, g.Embedding, w.Embedding)
		}
	}
}

// duckRows converts DuckDB JSON rows (id, width, height[, embedding]).
func duckRows(t *testing.T, r duckResult) []Row {
	t.Helper()
	var rows []Row
	for _, m := range r.Rows {
		var row Row
		var emb any
		for k, dst := range map[string]any{"id": &row.ID, "width": &row.Width, "height": &row.Height, "embedding": &emb} {
			if raw, ok := m[k]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					t.Fatalf("duckdb column %s: %v", k, err)
				}
			}
		}
		var flatten func(v any)
		flatten = func(v any) {
			switch v := v.(type) {
			case []any:
				for _, x := range v {
					flatten(x)
				}
			case float64:
				row.Embedding = append(row.Embedding, float32(v))
			}
		}
		flatten(emb)
		rows = append(rows, row)
	}
	return rows
}

func TestParquetRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		meta     Meta
		duckType string
	}{
		{"mean", Meta{Model: "mae_vit_base_patch16", Pool: "mean", Preprocess: "center-crop 224", Version: "test", Dim: 7}, "FLOAT[]"},
		{"tokens", Meta{Model: "custom", Pool: "tokens", Preprocess: "none 32", Version: "test", Dim: 4, Tokens: 5, Precision: "bf16", Kernel: "avx2"}, "FLOAT[][]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var published []string
			var publishedRows int
			w, err := NewParquet(dir, tc.meta, ParquetOptions{MaxFileRows: 5, OnPublish: func(p string, n int) {
				published = append(published, filepath.Base(p))
				publishedRows += n
			}})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var want []Row
			for b, n := range []int{3, 3, 1, 3} { // rolls after row 6; the rest waits for Close
				rows := testRows(rng, len(want), n, tc.meta.rowLen())
				if err := w.Write(rows); err != nil {
					t.Fatalf("batch %d: %v", b, err)
				}
				want = append(want, rows...)
			}
			if got := visibleFiles(t, dir); !slices.Equal(got, []string{"part-00000.parquet"}) {
				t.Fatalf("before close visible files %v, want only the rolled part", got)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(published, []string{"part-00000.parquet", "part-00001.parquet"}) || publishedRows != len(want) {
				t.Fatalf("published %v with %d rows, want 2 parts with %d", published, publishedRows, len(want))
			}
			if h := hiddenFiles(t, dir); len(h) != 0 {
				t.Fatalf("temporaries left: %v", h)
			}

			// Arrow's own reader: types, values, metadata.
			var got []Row
			for _, p := range published {
				tbl, kv, err := ReadParquet(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				wantType := fslType(tc.meta.Dim)
				if tc.meta.Tokens > 0 {
					wantType = fslType(tc.meta.Tokens, tc.meta.Dim)
				}
				if typ := tbl.Schema().Field(1).Type; !arrow.TypeEqual(typ, wantType) {
					t.Errorf("%s: embedding type %s, want %s", p, typ, wantType)
				}
				if names := fmt.Sprint(tbl.Schema().Field(0).Name, tbl.Schema().Field(2).Name, tbl.Schema().Field(3).Name); names != "idwidthheight" {
					t.Errorf("%s: columns %s", p, tbl.Schema())
				}
				for k, v := range map[string]string{"maeembed.model": tc.meta.Model, "maeembed.pool": tc.meta.Pool, "maeembed.preprocess": tc.meta.Preprocess, "maeembed.version": "test", "maeembed.dim": fmt.Sprint(tc.meta.Dim)} {
					if kv[k] != v {
						t.Errorf("%s: metadata %s = %q, want %q", p, k, kv[k], v)
					}
				}
				got = append(got, tableRows(t, tbl)...)
				tbl.Release()
			}
			sameRows(t, "arrow reader", got, want, true)

			// DuckDB, an independent reader.
			glob := sqlPath(filepath.Join(dir, "part-*.parquet"))
			r := duckdb(t, "SELECT id, width, height, embedding FROM read_parquet("+glob+") ORDER BY filename, file_row_number")
			if !strings.HasPrefix(r.Types[3], tc.duckType) || r.Types[1] != "INTEGER" || r.Types[0] != "VARCHAR" {
				t.Errorf("duckdb types %v, want VARCHAR, INTEGER, INTEGER, %s", r.Types, tc.duckType)
			}
			sameRows(t, "duckdb", duckRows(t, r), want, true)
			kv := duckdb(t, "SELECT file_name AS f, decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata("+glob+") WHERE decode(key) LIKE 'maeembed.%'")
			wantKV := map[string]string{"maeembed.model": tc.meta.Model, "maeembed.pool": tc.meta.Pool, "maeembed.preprocess": tc.meta.Preprocess, "maeembed.version": "test", "maeembed.dim": fmt.Sprint(tc.meta.Dim)}
			if tc.meta.Tokens > 0 {
				wantKV["maeembed.tokens"] = fmt.Sprint(tc.meta.Tokens)
			}
			if tc.meta.Precision != "" {
				wantKV["maeembed.precision"] = tc.meta.Precision
			}
			if tc.meta.Kernel != "" {
				wantKV["maeembed.kernel"] = tc.meta.Kernel
			}
			gotKV := map[string]map[string]string{}
			for _, r := range kv.Rows {
				var f, k, v string
				json.Unmarshal(r["f"], &f)
				json.Unmarshal(r["k"], &k)
				json.Unmarshal(r["v"], &v)
				if gotKV[f] == nil {
					gotKV[f] = map[string]string{}
				}
				gotKV[f][k] = v
			}
			if len(gotKV) != 2 {
				t.Errorf("duckdb metadata for %d files, want 2: %v", len(gotKV), gotKV)
			}
			for f, m := range gotKV {
				if !maps.Equal(m, wantKV) {
					t.Errorf("duckdb metadata of %s: %v, want %v", f, m, wantKV)
				}
			}
		})
	}
}

func TestParquetRejectsWrongWidth(t *testing.T) {
	dir := t.TempDir()
	w, err := NewParquet(dir, Meta{Dim: 3}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}})
	if err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("got %v, want an error naming row a", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if f := append(visibleFiles(t, dir), hiddenFiles(t, dir)...); len(f) != 0 {
		t.Fatalf("files left: %v", f)
	}
}

func TestParquetRowGroupsAndNumbering(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "cls", Dim: 256}
	// An existing part from an earlier run must survive and be followed.
	w0, err := NewParquet(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w0.Write([]Row{{ID: "earlier", Embedding: make([]float32, 256)}})
	if err := w0.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "part-00000.parquet"), filepath.Join(dir, "part-00007.parquet")); err != nil {
		t.Fatal(err)
	}
	w, err := NewParquet(dir, meta, ParquetOptions{RowGroupBytes: 10 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10; i++ { // 10 batches of 4 rows of 1 KiB: row groups of ~10 KiB
		if err := w.Write(testRows(rng, 4*i, 4, 256)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "part-00008.parquet")
	r := duckdb(t, "SELECT count(DISTINCT row_group_id)::INTEGER AS groups, max(row_group_num_rows)::INTEGER AS maxrows, any_value(compression) AS codec FROM parquet_metadata("+sqlPath(p)+")")
	var groups, maxRows int
	var codec string
	json.Unmarshal(r.Rows[0]["groups"], &groups)
	json.Unmarshal(r.Rows[0]["maxrows"], &maxRows)
	json.Unmarshal(r.Rows[0]["codec"], &codec)
	if groups < 3 || maxRows > 12 || codec != "ZSTD" {
		t.Fatalf("row groups %d (max %d rows), codec %s; want >=3 groups of <=12 rows, ZSTD", groups, maxRows, codec)
	}
}

func TestErrorsAndDoneIDs(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Dim: 2}
	ew, err := NewErrors(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil { // nothing written: no file
		t.Fatal(err)
	}
	if f := visibleFiles(t, dir); len(f) != 0 {
		t.Fatalf("empty error writer left %v", f)
	}
	ew, _ = NewErrors(dir, meta, ParquetOptions{})
	errs := []ErrorRow{{ID: "bad/one.jpg", Stage: "decode", Error: "image: unknown format"}, {ID: "two.png", Stage: "resize", Error: "too large: 100000x100000"}}
	if err := ew.Write(errs); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ := NewParquet(dir, meta, ParquetOptions{})
	w.Write([]Row{{ID: "ok.jpg", Embedding: []float32{1, 2}}})
	w.Close()

	r := duckdb(t, "SELECT id, stage, error FROM read_parquet("+sqlPath(filepath.Join(dir, "errors", "part-00000.parquet"))+")")
	if len(r.Rows) != 2 {
		t.Fatalf("duckdb error rows %v", r.Rows)
	}
	for i, e := range errs {
		var got ErrorRow
		json.Unmarshal(r.Rows[i]["id"], &got.ID)
		json.Unmarshal(r.Rows[i]["stage"], &got.Stage)
		json.Unmarshal(r.Rows[i]["error"], &got.Error)
		if got.ID != e.ID || got.Stage != e.Stage || got.Error != e.Error {
			t.Errorf("error row %d: %+v, want %+v", i, got, e)
		}
	}

	done, err := ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 || !done["bad/one.jpg"] || !done["two.png"] || !done["ok.jpg"] {
		t.Fatalf("done ids %v", done)
	}
	if d, err := ReadDoneIDs(filepath.Join(dir, "missing")); err != nil || len(d) != 0 {
		t.Fatalf("missing dir: %v %v", d, err)
	}
}

// Resuming into a directory written by another model or pool is refused;
// another version is fine.
func TestResumeRefusesOtherRun(t *testing.T) {
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "1", Dim: 2}
	for _, tc := range []struct {
		name string
		open func(dir string, m Meta) error
	}{
		{"parquet", func(dir string, m Meta) error {
			w, err := NewParquet(dir, m, ParquetOptions{})
			if err == nil {
				w.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}})
				err = w.Close()
			}
			return err
		}},
		{"arrow", func(dir string, m Meta) error {
			w, err := NewArrow(dir, m, ParquetOptions{})
			if err == nil {
				w.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}})
				err = w.Close()
			}
			return err
		}},
		{"errors", func(dir string, m Meta) error {
			w, err := NewErrors(dir, m, ParquetOptions{})
			if err == nil {
				w.Write([]ErrorRow{{ID: "a"}})
				err = w.Close()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tc.open(dir, meta); err != nil {
				t.Fatal(err)
			}
			newer := meta
			newer.Version = "2"
			if err := tc.open(dir, newer); err != nil {
				t.Fatalf("resume with a newer version: %v", err)
			}
			// maeembed.kernel is informational: another machine (path) may
			// resume, and outputs that record none (older versions) too.
			for _, k := range []string{"avx512+strassen", "avx2", ""} {
				other := newer
				other.Kernel = k
				if err := tc.open(dir, other); err != nil {
					t.Fatalf("resume with kernel %q: %v", k, err)
				}
			}
			for key, m := range map[string]Meta{
				"maeembed.pool":   {Model: "m", Pool: "cls", Preprocess: "p", Dim: 2},
				"maeembed.model":  {Model: "x", Pool: "mean", Preprocess: "p", Dim: 2},
				"maeembed.tokens": {Model: "m", Pool: "mean", Preprocess: "p", Dim: 2, Tokens: 1},
			} {
				if err := tc.open(dir, m); err == nil || !strings.Contains(err.Error(), key) {
					t.Errorf("resume with other %s: %v", key, err)
				}
			}
		})
	}
}

// Flush publishes the pending part at once (stream mode acks on it);
// MaxFileBytes rolls like MaxFileRows.
func TestFlushAndByteRolling(t *testing.T) {
	dir := t.TempDir()
	var pubs []int
	w, err := NewParquet(dir, Meta{Model: "m", Pool: "mean", Dim: 16}, ParquetOptions{MaxFileBytes: 3 * 16 * 4, OnPublish: func(_ string, n int) { pubs = append(pubs, n) }})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	w.Write(testRows(rng, 0, 1, 16))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil { // nothing pending
		t.Fatal(err)
	}
	w.Write(testRows(rng, 1, 2, 16))
	w.Write(testRows(rng, 3, 2, 16)) // 4 rows of 64 B + ids >= 192 B: rolls
	w.Write(testRows(rng, 5, 1, 16))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pubs, []int{1, 4, 1}) {
		t.Fatalf("published row counts %v, want [1 4 1]", pubs)
	}
	if err := w.Write(testRows(rng, 6, 1, 16)); err == nil {
		t.Fatal("write after close succeeded")
	}
	if got := visibleFiles(t, dir); len(got) != 3 {
		t.Fatalf("files %v", got)
	}
}

// An invalid UTF-8 id must not make the file unreadable for DuckDB.
func TestInvalidUTF8ID(t *testing.T) {
	dir := t.TempDir()
	w, err := NewParquet(dir, Meta{Dim: 1}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := "bad\xff\xfe.jpg"
	if err := w.Write([]Row{{ID: "ok", Embedding: []float32{1}}, {ID: bad, Embedding: []float32{2}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	done, err := ReadDoneIDs(dir)
	if err != nil || !done[SanitizeID(bad)] || SanitizeID(bad) != "bad\uFFFD.jpg" {
		t.Fatalf("done %v, %v", done, err)
	}
	r := duckdb(t, "SELECT id FROM read_parquet("+sqlPath(filepath.Join(dir, "part-00000.parquet"))+")")
	var id string
	if len(r.Rows) == 2 {
		json.Unmarshal(r.Rows[1]["id"], &id)
	}
	if id != "bad\uFFFD.jpg" {
		t.Fatalf("duckdb ids %v", r.Rows)
	}
}

// Two writers in one directory (shards of one job) never replace each
// other's parts.
func TestConcurrentWritersNoClobber(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Dim: 2}
	var ws [2]EmbeddingWriter
	for i := range ws {
		w, err := NewParquet(dir, meta, ParquetOptions{MaxFileRows: 2})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	for k := 0; k < 10; k++ {
		for i, w := range ws {
			if err := w.Write([]Row{{ID: fmt.Sprintf("shard%d/%d", i, k), Embedding: []float32{1, 2}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	done, err := ReadDoneIDs(dir)
	if err != nil || len(done) != 20 {
		t.Fatalf("%d ids survive, want 20 (%v)", len(done), err)
	}
	if f := visibleFiles(t, dir); len(f) != 10 {
		t.Fatalf("files %v, want 10 parts", f)
	}
}

// One model spelled differently (a trailing slash, relative or absolute, a
// symlink) is the same run: resume goes on; another model directory is
// refused. The metadata records the resolved absolute path.
func TestResumeSameModelOtherSpelling(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "models", "m")
	other := filepath.Join(root, "models", "other")
	for _, d := range []string{model, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(model, link); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, model)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	write := func(name, id string) error {
		w, err := NewParquet(out, Meta{Model: name, Pool: "mean", Preprocess: "p", Version: "1", Dim: 2}, ParquetOptions{})
		if err != nil {
			return err
		}
		w.Write([]Row{{ID: id, Embedding: []float32{1, 2}}})
		return w.Close()
	}
	if err := write(model, "a"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{model + "/", rel, link, link + "/"} {
		if err := write(name, fmt.Sprint("b", i)); err != nil {
			t.Errorf("resume with model %q: %v", name, err)
		}
	}
	if err := write(other, "c"); err == nil || !strings.Contains(err.Error(), "maeembed.model") {
		t.Errorf("resume with another model directory: %v", err)
	}
	real, err := filepath.EvalSymlinks(model)
	if err != nil {
		t.Fatal(err)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	for _, p := range parts {
		kv, err := fileMetadata(p)
		if err != nil {
			t.Fatal(err)
		}
		if kv["maeembed.model"] != real {
			t.Errorf("%s records model %q, want %q", p, kv["maeembed.model"], real)
		}
	}
}

// maeembed.weights: an output written before the key existed takes any
// weights; once recorded, other weights are refused naming both
// fingerprints. The PNG settings file compares it the same way.
func TestResumeOtherWeights(t *testing.T) {
	dir := t.TempDir()
	write := func(m Meta) error {
		w, err := NewParquet(dir, m, ParquetOptions{})
		if err == nil {
			w.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}})
			err = w.Close()
		}
		return err
	}
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "1", Dim: 2}
	if err := write(meta); err != nil {
		t.Fatal(err)
	}
	meta.Weights = "00112233aabbccdd"
	if err := write(meta); err != nil {
		t.Fatalf("resume of an output without maeembed.weights: %v", err)
	}
	if err := write(meta); err != nil {
		t.Fatalf("resume with the same weights: %v", err)
	}
	other := meta
	other.Weights = "ffeeddcc99887766"
	if err := write(other); err == nil || !strings.Contains(err.Error(), meta.Weights) || !strings.Contains(err.Error(), other.Weights) {
		t.Errorf("resume with other weights: err = %v, want both fingerprints", err)
	}

	png := t.TempDir()
	rm := testReconMeta
	rm.Weights = meta.Weights
	w, err := NewReconPNG(png, rm)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(reconRows(rand.New(rand.NewPCG(7, 8)), rm, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rm.Weights = other.Weights
	if _, err := NewReconPNG(png, rm); err == nil || !strings.Contains(err.Error(), "maeembed.weights") {
		t.Errorf("png with other weights: err = %v", err)
	}
}

// Validate's errors read alike: the option (its config key, or the field
// of one that has none), the value, what it takes; a command names the
// flag instead of the key (FlagError).
func TestParquetOptionsValidateErrors(t *testing.T) {
	for _, c := range []struct {
		o          ParquetOptions
		want, flag string
	}{
		{ParquetOptions{MaxFileRows: -1}, "max_file_rows -1: want 0 (the default, 100000) or more", "--max-file-rows -1: want 0 (the default, 100000) or more"},
		{ParquetOptions{MaxFileBytes: -1}, "max_file_bytes -1: want 0 (the default, 512 MiB) or more", "--max-file-bytes -1: want 0 (the default, 512 MiB) or more"},
		{ParquetOptions{RowGroupBytes: -1}, "RowGroupBytes -1: want 0 (the default, 64 MiB) or more", "RowGroupBytes -1: want 0 (the default, 64 MiB) or more"},
	} {
		err := c.o.Validate()
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Fatalf("%+v: %v, want an *OptionError", c.o, err)
		}
		if err.Error() != c.want || oe.FlagError().Error() != c.flag {
			t.Errorf("%+v: %q (as a flag %q), want %q (%q)", c.o, err, oe.FlagError(), c.want, c.flag)
		}
	}
}

// A dataset's own part-00000.parquet (another tool's, no maeembed.*
// metadata) where a part would go is refused as not a maeembed output,
// not as one "written with maeembed.model=\"\"", in every format that
// compares its metadata with the run's.
func TestForeignPartIsNotAMaeembedOutput(t *testing.T) {
	data, err := os.ReadFile("../sources/testdata/img2dataset-parquet/00000.parquet")
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{Model: "builtin", Pool: "mean", Preprocess: "p", Version: "1", Dim: 4}
	for _, name := range []string{"part-00000.parquet", metadataName} {
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		format := "parquet"
		if name == metadataName {
			format = "npy"
		}
		_, err := NewEmbeddings(format, dir, meta, ParquetOptions{})
		if err == nil || !strings.Contains(err.Error(), path+" is not a maeembed output (no maeembed.* metadata)") || strings.Contains(err.Error(), "written with") {
			t.Errorf("%s beside a foreign %s: %v, want it named as not a maeembed output", format, name, err)
		}
	}
}
