package probe

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// skipOrFail skips a test whose external tool is missing, unless
// MAEEMBED_REQUIRE_TOOLS=1 (CI), where a missing tool is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("MAEEMBED_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// duckExec runs one SQL statement in DuckDB (npm @duckdb/node-api,
// installed by CI in sinks/testdata/duckdb): the independent Parquet
// writer of these tests.
func duckExec(t *testing.T, sql string) {
	t.Helper()
	dir, err := filepath.Abs("../sinks/testdata/duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		skipOrFail(t, "DuckDB not installed: run `npm ci` in sinks/testdata/duckdb")
	}
	cmd := exec.Command("node", "query.mjs", sql)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if _, err := cmd.Output(); err != nil {
		t.Fatalf("duckdb %q: %v\n%s", sql, err, stderr.String())
	}
}

// testRows are 7 embeddings of dimension 3 under two class folders, plus
// one image at the root (no folder, so no folder label).
func testRows() []sinks.Row {
	ids := []string{"cat/1.png", "cat/2.png", "dog/1.png", "dog/sub/2.png", "dog/3.png", "top.png", "train/cat/3.png"}
	rows := make([]sinks.Row, len(ids))
	for i, id := range ids {
		rows[i] = sinks.Row{ID: id, Width: 10, Height: 20, Embedding: []float32{float32(i), -float32(i), 0.5}}
	}
	return rows
}

var testMeta = sinks.Meta{Model: "tiny", Pool: "mean", Preprocess: "resize=squash size=32 interpolation=bicubic-pil normalize=imagenet", Version: "test", Dim: 3}

// Every output format of maeembed embed, written by its real writer, loads
// back with the same ids, vectors and metadata.
func TestLoadOutputs(t *testing.T) {
	rows := testRows()
	for _, format := range []string{"parquet", "arrow", "npy"} {
		dir := filepath.Join(t.TempDir(), format)
		var w sinks.EmbeddingWriter
		var err error
		opts := sinks.ParquetOptions{MaxFileRows: 2} // four part files
		switch format {
		case "parquet":
			w, err = sinks.NewParquet(dir, testMeta, opts)
		case "arrow":
			w, err = sinks.NewArrow(dir, testMeta, opts)
		case "npy":
			w, err = sinks.NewNpy(dir, testMeta)
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(rows); i += 2 {
			if err := w.Write(rows[i:min(i+2, len(rows))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// A writer's hidden temporary is not an output.
		os.WriteFile(filepath.Join(dir, ".part-00099."+format+".maeembed-tmp"), []byte("junk"), 0o644)
		e, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if e.N != len(rows) || e.D != 3 {
			t.Fatalf("%s: %d×%d, want %d×3", format, e.N, e.D, len(rows))
		}
		for i, r := range rows {
			if e.IDs[i] != r.ID || !slices.Equal(e.X[i*3:(i+1)*3], r.Embedding) {
				t.Errorf("%s: row %d = %q %v, want %q %v", format, i, e.IDs[i], e.X[i*3:(i+1)*3], r.ID, r.Embedding)
			}
		}
		if e.Meta["maeembed.model"] != "tiny" || e.Meta["maeembed.pool"] != "mean" {
			t.Errorf("%s: metadata %v", format, e.Meta)
		}
		if format == "parquet" && len(e.Files) != 4 {
			t.Errorf("parquet: read %d part files, want 4", len(e.Files))
		}
	}
}

// Token embeddings and non-finite values are refused with the reason.
func TestLoadRefuses(t *testing.T) {
	meta := testMeta
	meta.Pool, meta.Tokens = "tokens", 2
	for _, format := range []string{"parquet", "npy"} {
		dir := filepath.Join(t.TempDir(), format)
		var w sinks.EmbeddingWriter
		var err error
		if format == "npy" {
			w, err = sinks.NewNpy(dir, meta)
		} else {
			w, err = sinks.NewParquet(dir, meta, sinks.ParquetOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write([]sinks.Row{{ID: "a/1.png", Embedding: make([]float32, 6)}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "--pool") {
			t.Errorf("%s tokens: error %v, want one pointing at --pool", format, err)
		}
	}
	nan := filepath.Join(t.TempDir(), "nan")
	w, err := sinks.NewParquet(nan, testMeta, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]sinks.Row{{ID: "a/1.png", Embedding: []float32{1, 2, 3}}, {ID: "a/2.png", Embedding: []float32{1, float32(math.NaN()), 3}}})
	w.Close()
	if _, err := Load(nan); err == nil || !strings.Contains(err.Error(), `"a/2.png"`) {
		t.Errorf("NaN embedding: error %v, want one naming a/2.png", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "part-*.parquet") {
		t.Errorf("empty dir: error %v", err)
	}
}

// Folder labels follow ImageFolder: the parent directory names the class;
// an image at the root has none and is left out.
func TestFolderLabels(t *testing.T) {
	rows := testRows()
	e := &Embeddings{N: len(rows), D: 3}
	for _, r := range rows {
		e.IDs = append(e.IDs, r.ID)
		e.X = append(e.X, r.Embedding...)
	}
	ds, err := NewDataset(e, FolderLabel)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.Classes, []string{"cat", "dog", "sub"}) {
		t.Errorf("classes %v", ds.Classes)
	}
	wantY := []int{0, 0, 1, 2, 1, 0} // top.png dropped; train/cat/3.png is a cat
	if !slices.Equal(ds.Y, wantY) || ds.Unlabelled != 1 || ds.N != 6 {
		t.Errorf("labels %v (unlabelled %d), want %v (1)", ds.Y, ds.Unlabelled, wantY)
	}
	if !slices.Equal(ds.X[5*3:6*3], rows[6].Embedding) {
		t.Errorf("row 5 is %v, want the embedding of %s", ds.X[5*3:6*3], rows[6].ID)
	}
	one := &Embeddings{IDs: []string{"a/1", "a/2"}, X: make([]float32, 2), N: 2, D: 1}
	if _, err := NewDataset(one, FolderLabel); err == nil {
		t.Error("one class: no error")
	}
}

// Labels from a column, in a separate file joined on id and in the same
// file as the embeddings, both written by DuckDB (which writes the vectors
// as list<float>).
func TestColumnLabels(t *testing.T) {
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.parquet")
	duckExec(t, fmt.Sprintf(`COPY (SELECT * FROM (VALUES ('cat/1.png', 7), ('dog/1.png', 3), ('dog/3.png', NULL), ('other.png', 1)) t(id, species)) TO '%s' (FORMAT parquet)`, labels))
	m, err := ReadLabels(labels, "species")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cat/1.png": "7", "dog/1.png": "3", "other.png": "1"}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", m, want)
	}
	if _, err := ReadLabels(labels, "nope"); err == nil || !strings.Contains(err.Error(), "species") {
		t.Errorf("missing column: error %v, want one listing the columns", err)
	}

	same := filepath.Join(dir, "same.parquet")
	duckExec(t, fmt.Sprintf(`COPY (SELECT 'img' || i || '.jpg' AS id, [i, 2*i, 1]::FLOAT[3] AS embedding, CASE WHEN i < 3 THEN 'low' ELSE 'high' END AS label FROM range(6) r(i)) TO '%s' (FORMAT parquet)`, same))
	e, err := Load(same)
	if err != nil {
		t.Fatal(err)
	}
	if e.N != 6 || e.D != 3 || !slices.Equal(e.X[3:6], []float32{1, 2, 1}) {
		t.Fatalf("DuckDB file: %d×%d %v", e.N, e.D, e.X)
	}
	m, err = ReadLabels(same, "label")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewDataset(e, func(id string) (string, bool) { l, ok := m[id]; return l, ok })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.Classes, []string{"high", "low"}) || !slices.Equal(ds.Y, []int{1, 1, 1, 0, 0, 0}) {
		t.Errorf("classes %v, labels %v", ds.Classes, ds.Y)
	}

	conflict := filepath.Join(dir, "conflict.parquet")
	duckExec(t, fmt.Sprintf(`COPY (SELECT * FROM (VALUES ('a', 'x'), ('a', 'y')) t(id, label)) TO '%s' (FORMAT parquet)`, conflict))
	if _, err := ReadLabels(conflict, "label"); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("conflicting labels: error %v", err)
	}
}
