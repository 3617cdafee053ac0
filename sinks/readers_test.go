package sinks

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The README's DuckDB snippet works on what NewParquet writes. DuckDB reads
// a Parquet list as FLOAT[] (Parquet has no fixed-size list; DuckDB 1.5
// reads even its own FLOAT[3] back from Parquet as FLOAT[] and does not
// use the ARROW:schema metadata), so the snippet casts to FLOAT[D] for the
// array_* functions; the list_* functions take the column as it is.
func TestDuckDBSnippetFromREADME(t *testing.T) {
	dir := t.TempDir()
	const dim = 3
	w, err := NewParquet(dir, Meta{Model: "m", Pool: "mean", Preprocess: "x", Version: "t", Dim: dim}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows := testRows(rand.New(rand.NewPCG(5, 6)), 0, 4, dim)
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cos := func(a, b []float32) float64 {
		var ab, aa, bb float64
		for i := range a {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		return ab / math.Sqrt(aa*bb)
	}
	parts := sqlPath(dir + "/*.parquet")
	q := rows[0].ID
	for _, sql := range []string{
		"SELECT id, array_cosine_similarity(embedding::FLOAT[3], (SELECT embedding::FLOAT[3] FROM " + parts + " WHERE id = " + sqlPath(q) + ")) AS sim FROM " + parts + " ORDER BY sim DESC",
		"SELECT id, list_cosine_similarity(embedding, (SELECT embedding FROM " + parts + " WHERE id = " + sqlPath(q) + ")) AS sim FROM " + parts + " ORDER BY sim DESC",
	} {
		r := duckdb(t, sql)
		if len(r.Rows) != len(rows) {
			t.Fatalf("%s: %d rows", sql, len(r.Rows))
		}
		for _, got := range r.Rows {
			var id string
			if err := json.Unmarshal(got["id"], &id); err != nil {
				t.Fatal(err)
			}
			s, err := strconv.ParseFloat(strings.Trim(string(got["sim"]), `"`), 64)
			if err != nil {
				t.Fatalf("sim %s: %v", got["sim"], err)
			}
			for _, row := range rows {
				if row.ID == id && math.Abs(s-cos(row.Embedding, rows[0].Embedding)) > 1e-5 {
					t.Errorf("%s: DuckDB similarity %g, want %g", id, s, cos(row.Embedding, rows[0].Embedding))
				}
			}
		}
	}
	if r := duckdb(t, "SELECT typeof(embedding) AS t FROM "+parts+" LIMIT 1"); string(r.Rows[0]["t"]) != `"FLOAT[]"` {
		t.Logf("DuckDB now reads embedding as %s: the README's cast is no longer needed", r.Rows[0]["t"])
	}
}
