package sinks

import (
	"strings"
	"testing"
)

// The Parquet column settings resume only with the values the output
// recorded; an output of an older version (no key) and a run without a
// Parquet input (none recorded) are not compared, for embeddings and
// reconstructions alike.
func TestResumeComparesParquetColumns(t *testing.T) {
	write := func(t *testing.T, id, image string) string {
		dir := t.TempDir()
		w, err := NewEmbeddings("parquet", dir, Meta{Model: "m", Pool: "mean", Dim: 2, IDColumn: id, ImageColumn: image}, ParquetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, c := range []struct {
		name            string
		oldID, oldImage string
		runID, runImage string
		want            string // "" resumes
	}{
		{"same", AutoColumn, AutoColumn, AutoColumn, AutoColumn, ""},
		{"other id", AutoColumn, AutoColumn, "label", AutoColumn, "written with no --id-column (each Parquet file's first column of the known names), this run has --id-column label: an automatic choice is recorded as (auto), not as the column it chose, so the two cannot be compared; unless every Parquet file's automatic choice is \"label\", the ids of Parquet rows would change"},
		{"explicit then auto", "id", AutoColumn, AutoColumn, AutoColumn, "written with --id-column id, this run has no --id-column (each Parquet file's first column of the known names): an automatic choice is recorded as (auto), not as the column it chose, so the two cannot be compared; unless every Parquet file's automatic choice is \"id\", the ids of Parquet rows would change"},
		{"other image", AutoColumn, "jpg", AutoColumn, "png", "written with --image-column jpg, this run has --image-column png: the rows already done"},
		{"older version", "", "", "label", "png", ""},
		{"no Parquet input now", "key", "jpg", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, c.oldID, c.oldImage)
			err := CheckResume(dir, "parquet", Meta{Model: "m", Pool: "mean", Dim: 2, IDColumn: c.runID, ImageColumn: c.runImage})
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
}
