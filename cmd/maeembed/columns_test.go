package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/maeembed/maeembed/sinks"
)

// The id and image columns of a Parquet input are recorded in the output
// and checked on resume like the model's settings: another --id-column
// would embed every row again under a second id (20 rows for 10 images),
// another --image-column would take rows done with the other column's
// images for done ("nothing to do"). Both are refused, naming the
// setting, the output's value and this run's, by the run, its dry run and
// reconstruct alike; the same settings resume, and so do the columns the
// automatic choice took, named.
func TestResumeWithOtherParquetColumnsIsRefused(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	img := func(i int) string { return fixturePhotoSQL(t, i) }
	duckQuery(t, "COPY (SELECT key, label, png, thumb FROM ("+
		"SELECT 0 AS ord, 'a' AS key, 7 AS label, content AS png, content AS thumb FROM read_blob("+img(0)+") UNION ALL "+
		"SELECT 1, 'b', 8, content, content FROM read_blob("+img(1)+") UNION ALL "+
		"SELECT 2, 'c', 9, content, content FROM read_blob("+img(2)+")) ORDER BY ord) TO "+sqlString(filepath.Join(in, "ds.parquet"))+" (FORMAT parquet)")
	ds := filepath.Join(in, "ds.parquet")

	for _, run := range [][2]string{{"embed", "parquet"}, {"embed", "npy"}, {"reconstruct", "npy"}, {"reconstruct", "png"}} {
		cmd := run[0]
		out := filepath.Join(root, cmd+"-"+run[1])
		args := func(more ...string) []string {
			return append([]string{cmd, "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "--format", run[1], "-o", out}, append(more, ds)...)
		}
		runCounted(t, summary{3, 0, 0}, args()...)
		for _, c := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--id-column", "label"}, `written with no --id-column (each Parquet file's first column of the known names), this run has --id-column label: that run's automatic choice took "key" in every Parquet file, not "label"`},
			{[]string{"--image-column", "thumb"}, "written with no --image-column (each Parquet file's first column of the known names), this run has --image-column thumb"},
		} {
			for _, dry := range []bool{false, true} {
				flags := c.flags
				if dry {
					flags = append(flags, "--dry-run")
				}
				code, stdout, stderr := maeembed(t, args(flags...)...)
				if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "Rerun with no "+c.flags[0]) {
					t.Errorf("%s --format %s %v: exit %d, listed %q; want the refusal %q\n%s", cmd, run[1], flags, code, stdout, c.want, stderr)
				}
			}
		}
		if run[1] == "parquet" {
			if o := partIDs(t, out, "part-*.parquet"); !reflect.DeepEqual(o, map[string]int{"a": 1, "b": 1, "c": 1}) {
				t.Errorf("embedded ids %v, want a, b, c once each", o)
			}
		}
		runCounted(t, summary{0, 0, 3}, args()...)
		// Naming the columns the automatic choice took is the same run.
		runCounted(t, summary{0, 0, 3}, args("--id-column", "key", "--image-column", "png")...)
	}

	// Set explicitly, a setting is compared as given.
	out := filepath.Join(root, "labels")
	args := func(more ...string) []string { return embedArgs(out, append(more, ds)...) }
	runCounted(t, summary{3, 0, 0}, args("--id-column", "label")...)
	runCounted(t, summary{0, 0, 3}, args("--id-column", "label")...)
	code, _, stderr := maeembed(t, args("--id-column", "key")...)
	if code != 1 || !strings.Contains(stderr, "written with --id-column label, this run has --id-column key") || !strings.Contains(stderr, "Rerun with --id-column label") {
		t.Errorf("--id-column key after label: exit %d\n%s", code, stderr)
	}
}

// A column named on the command line that a Parquet input lacks (a typo)
// is a usage error before anything is read or written: found only at the
// file's turn, it failed that file alone, and the output it left recorded
// the misspelt column, so the corrected rerun was refused for good.
func TestMissingParquetColumnIsRefusedBeforeTheRun(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "mix")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	photo, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(photo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "side.png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ds := filepath.Join(in, "ds.parquet")
	duckQuery(t, "COPY (SELECT 'a' AS key, content AS image FROM read_blob("+sqlString(photo)+")) TO "+sqlString(ds)+" (FORMAT parquet)")
	out := filepath.Join(root, "out")
	for _, c := range []struct{ flags []string }{
		{[]string{"--image-column", "imgae"}},
		{[]string{"--id-column", "kye"}},
		{[]string{"--image-column", "imgae", "--dry-run"}},
	} {
		code, stdout, stderr := maeembed(t, embedArgs(out, append(c.flags, in)...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, ds) || !strings.Contains(stderr, `no column "`+c.flags[1]+`"`) {
			t.Errorf("%v: exit %d, stdout %q; want exit 2 naming %s and the missing column\n%s", c.flags, code, stdout, ds, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%v: the refused run left %s (%v)", c.flags, out, err)
		}
	}
	runCounted(t, summary{2, 0, 0}, embedArgs(out, "--image-column", "image", in)...)
}

// A resume is compared by the columns the rows came from, not by how they
// were chosen: a run that named the columns automatic choice takes resumes
// without the flags, an output an older version wrote (recording only
// "(auto)") resumes with the flags naming what automatic choice takes in
// the inputs, and other columns stay refused in both directions.
func TestResumeNamingTheAutomaticColumns(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	img := func(i int) string { return fixturePhotoSQL(t, i) }
	for i, name := range []string{"a", "b"} {
		duckQuery(t, "COPY (SELECT "+sqlString(name)+" AS key, 7 AS label, content AS png, content AS thumb FROM read_blob("+img(i)+")) TO "+
			sqlString(filepath.Join(in, name+".parquet"))+" (FORMAT parquet)")
	}
	named := []string{"--id-column", "key", "--image-column", "png"}

	// Named first, then chosen automatically.
	out := filepath.Join(root, "named")
	runCounted(t, summary{2, 0, 0}, embedArgs(out, append(named, in)...)...)
	runCounted(t, summary{0, 0, 2}, embedArgs(out, in)...)
	code, _, stderr := maeembed(t, embedArgs(out, "--id-column", "label", in)...)
	if code != 1 || !strings.Contains(stderr, "written with --id-column key, this run has --id-column label") {
		t.Errorf("--id-column label after key: exit %d\n%s", code, stderr)
	}

	// An output of an older version records "(auto)" alone.
	out = filepath.Join(root, "older")
	runCounted(t, summary{2, 0, 0}, embedArgs(out, in)...)
	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	if len(parts) == 0 {
		t.Fatal("no parts")
	}
	for _, p := range parts {
		dropMetadata(t, p, "maeembed.id_column_auto", "maeembed.image_column_auto")
	}
	runCounted(t, summary{0, 0, 2}, embedArgs(out, append(named, in)...)...)
	runCounted(t, summary{0, 0, 2}, embedArgs(out, in)...)
	code, _, stderr = maeembed(t, embedArgs(out, "--image-column", "thumb", in)...)
	if code != 1 || !strings.Contains(stderr, `the output records no column for that run's automatic choice, and in these inputs it takes "png" in every Parquet file, not "thumb"`) {
		t.Errorf("--image-column thumb after an older automatic choice: exit %d\n%s", code, stderr)
	}
	if o := partIDs(t, out, "part-*.parquet"); !reflect.DeepEqual(o, map[string]int{"a": 1, "b": 1}) {
		t.Errorf("embedded ids %v, want a, b once each", o)
	}

	// Chosen automatically both times, but the files changed since: the
	// choice recorded is not the one made now.
	changed := filepath.Join(root, "changed")
	if err := os.MkdirAll(changed, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(idColumn string) {
		for i, name := range []string{"a", "b"} {
			duckQuery(t, "COPY (SELECT "+sqlString(name)+" AS "+idColumn+", content AS png FROM read_blob("+img(i)+")) TO "+
				sqlString(filepath.Join(changed, name+".parquet"))+" (FORMAT parquet)")
		}
	}
	write("key")
	out = filepath.Join(root, "auto")
	runCounted(t, summary{2, 0, 0}, embedArgs(out, changed)...)
	runCounted(t, summary{0, 0, 2}, embedArgs(out, changed)...)
	write("__key__")
	code, _, stderr = maeembed(t, embedArgs(out, changed)...)
	if code != 1 || !strings.Contains(stderr, `written with no --id-column (each Parquet file's first column of the known names), as this run is, but that run's automatic choice took "key" in every Parquet file, and in these inputs it takes "__key__" in every Parquet file`) ||
		!strings.Contains(stderr, "Rerun with --id-column key") {
		t.Errorf("automatic choice after the files changed: exit %d\n%s", code, stderr)
	}
}

// dropMetadata rewrites the Parquet file p without the file metadata keys
// drop, as an older version wrote it.
func dropMetadata(t *testing.T, p string, drop ...string) {
	t.Helper()
	tbl, kv, err := sinks.ReadParquet(p)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	var keys, vals []string
	for k, v := range kv {
		if strings.HasPrefix(k, "maeembed.") && !slices.Contains(drop, k) {
			keys, vals = append(keys, k), append(vals, v)
		}
	}
	md := arrow.NewMetadata(keys, vals)
	schema := arrow.NewSchema(tbl.Schema().Fields(), &md)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	tr := array.NewTableReader(tbl, 1024)
	defer tr.Release()
	for tr.Next() {
		if err := w.WriteBuffered(tr.Record()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
