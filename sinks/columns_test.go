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
	write := func(t *testing.T, id, image, idAuto, imageAuto string) string {
		dir := t.TempDir()
		w, err := NewEmbeddings("parquet", dir, Meta{Model: "m", Pool: "mean", Dim: 2, IDColumn: id, ImageColumn: image, IDColumnAuto: idAuto, ImageColumnAuto: imageAuto}, ParquetOptions{})
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
	type columns struct{ id, image, idAuto, imageAuto string }
	auto := columns{AutoColumn, AutoColumn, "key", "png"}
	for _, c := range []struct {
		name     string
		old, run columns
		want     string // "" resumes
	}{
		{"same", auto, auto, ""},
		{"chosen, now different between files", auto, columns{AutoColumn, AutoColumn, "", "png"},
			"written with no --id-column (each Parquet file's first column of the known names), as this run is, but that run's automatic choice took \"key\" in every Parquet file, and in these inputs it takes different columns in different Parquet files (the Parquet files changed): the ids of Parquet rows would change, so every row would be processed again and stored a second time under its new id. Rerun with --id-column key"},
		{"chosen, now another", auto, columns{AutoColumn, AutoColumn, "key", "jpg"},
			"that run's automatic choice took \"png\" in every Parquet file, and in these inputs it takes \"jpg\" in every Parquet file (the Parquet files changed): the rows already done"},
		{"older output, chosen both times", columns{AutoColumn, AutoColumn, "", ""}, columns{AutoColumn, AutoColumn, "key", ""}, ""},
		{"other id", auto, columns{"label", AutoColumn, "key", "png"}, "written with no --id-column (each Parquet file's first column of the known names), this run has --id-column label: that run's automatic choice took \"key\" in every Parquet file, not \"label\": the ids of Parquet rows would change"},
		{"the id chosen, then named", auto, columns{"key", AutoColumn, "key", "png"}, ""},
		{"the image chosen, then named", auto, columns{AutoColumn, "png", "key", "png"}, ""},
		{"no id chosen, then none named", columns{AutoColumn, AutoColumn, "-", "png"}, columns{"-", AutoColumn, "-", "png"}, ""},
		{"the id chosen, then named, though now chosen otherwise", auto, columns{"key", AutoColumn, "__key__", "png"}, ""},
		{"older output, the id named is the one chosen now", columns{AutoColumn, AutoColumn, "", ""}, columns{"key", "png", "key", "png"}, ""},
		{"older output, the id named is not the one chosen now", columns{AutoColumn, AutoColumn, "", ""}, columns{"id", AutoColumn, "key", "png"},
			"written with no --id-column (each Parquet file's first column of the known names), this run has --id-column id: the output records no column for that run's automatic choice, and in these inputs it takes \"key\" in every Parquet file, not \"id\""},
		{"older output, files that differ now", columns{AutoColumn, AutoColumn, "", ""}, columns{"key", AutoColumn, "", "png"}, "takes different columns in different Parquet files, not \"key\""},
		{"explicit then auto", columns{"id", AutoColumn, "", "png"}, auto, "written with --id-column id, this run has no --id-column (each Parquet file's first column of the known names): without --id-column, automatic choice takes \"key\" in every Parquet file of these inputs, not \"id\": the ids of Parquet rows would change"},
		{"explicit then auto taking it", columns{"key", "png", "key", "png"}, auto, ""},
		{"explicit then auto taking different ones", columns{"key", AutoColumn, "key", "png"}, columns{AutoColumn, AutoColumn, "", "png"}, "automatic choice takes different columns in different Parquet files of these inputs, not \"key\""},
		{"other image", columns{AutoColumn, "jpg", "key", "png"}, columns{AutoColumn, "png", "key", "png"}, "written with --image-column jpg, this run has --image-column png: the rows already done"},
		{"older version", columns{}, columns{"label", "png", "", ""}, ""},
		{"no Parquet input now", columns{"key", "jpg", "key", "png"}, columns{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, c.old.id, c.old.image, c.old.idAuto, c.old.imageAuto)
			err := CheckResume(dir, "parquet", Meta{Model: "m", Pool: "mean", Dim: 2, IDColumn: c.run.id, ImageColumn: c.run.image, IDColumnAuto: c.run.idAuto, ImageColumnAuto: c.run.imageAuto})
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
}
