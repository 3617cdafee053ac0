package main

import (
	"bytes"
	"compress/gzip"
	endian "encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// writeNpyFloat64 writes data as numpy's np.save writes a float64 C-order
// array.
func writeNpyFloat64(t *testing.T, path string, shape []int, data []float64) {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	dict := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	// The data starts at a multiple of 64 bytes, the header ends in '\n'.
	header := dict + strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	endian.LittleEndian.PutUint16(b[8:], uint16(len(header)))
	b = append(b, header...)
	for _, v := range data {
		b = endian.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeNpyRaw writes an npy file with the header dict given and the data
// bytes as they are.
func writeNpyRaw(t *testing.T, path, dict string, data []byte) {
	t.Helper()
	header := dict + strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	endian.LittleEndian.PutUint16(b[8:], uint16(len(header)))
	b = append(append(b, header...), data...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --mask-noise with a NaN or an infinity (a float64 value beyond float32's
// range becomes one, as numpy's astype(float32) makes it) is refused, by
// the run and its dry run, naming the file and the row and column of the
// first, before anything is written; so is a file that is no npy file,
// or one of another dtype, byte order or layout, or cut short. Each is a
// usage error (exit 2): a bad file named on the command line, found
// before any input is processed, as a missing one or a wrong shape is.
func TestMaskNoiseMustBeFinite(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	shape, noise := npy(t, filepath.Join(tiny, "noise.npy"))
	dir := t.TempDir()
	bad := func(name string, row, col int, v float32) string {
		d := slices.Clone(noise)
		d[row*shape[1]+col] = v
		p := filepath.Join(dir, name)
		writeNpy(t, p, shape, d)
		return p
	}
	f64 := make([]float64, len(noise))
	for i, v := range noise {
		f64[i] = float64(v)
	}
	f64[2*shape[1]+3] = 1e39
	big := filepath.Join(dir, "big64.npy")
	writeNpyFloat64(t, big, shape, f64)
	raw := func(name, descr, fortran string, size int) string {
		p := filepath.Join(dir, name)
		dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': (%d, %d), }", descr, fortran, shape[0], shape[1])
		writeNpyRaw(t, p, dict, make([]byte, shape[0]*shape[1]*size))
		return p
	}
	garbage := filepath.Join(dir, "garbage.npy")
	if err := os.WriteFile(garbage, []byte("not an npy file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.npy")
	writeNpyRaw(t, cut, fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", shape[0], shape[1]), make([]byte, 8))
	for _, c := range []struct {
		file string
		want []string
		more []string
	}{
		{bad("nan.npy", 1, 5, float32(math.NaN())), []string{"nan.npy: row 1, column 5", "is NaN"}, nil},
		// A usable file with a seed, which it leaves without effect.
		{filepath.Join(tiny, "noise.npy"), []string{"--seed 3 with --mask-noise", "leave --seed out"}, []string{"--seed", "3"}},
		{bad("inf.npy", 0, 0, float32(math.Inf(-1))), []string{"inf.npy: row 0, column 0", "is -Inf"}, nil},
		{big, []string{"big64.npy: row 2, column 3", "is +Inf as float32"}, nil},
		{raw("int64.npy", "<i8", "False", 8), []string{"int64.npy", "<i8"}, nil},
		{raw("f16.npy", "<f2", "False", 2), []string{"f16.npy", "<f2"}, nil},
		{raw("be.npy", ">f4", "False", 4), []string{"be.npy", ">f4"}, nil},
		{raw("fortran.npy", "<f4", "True", 4), []string{"fortran.npy", "ortran"}, nil},
		{garbage, []string{"garbage.npy"}, nil},
		{cut, []string{"cut.npy", "truncated"}, nil},
	} {
		for _, dry := range []bool{false, true} {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", c.file, "--resize", "none", "-o", out, filepath.Join(tiny, "images")}
			if dry {
				args = append(args, "--dry-run")
			}
			code, _, stderr := maeembed(t, append(args, c.more...)...)
			for _, w := range append(c.want, "--mask-noise") {
				if code != 2 || !strings.Contains(stderr, w) {
					t.Errorf("%s (dry run %v): exit %d, want 2 saying %q\n%s", c.file, dry, code, w, stderr)
					break
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s: the refused run created its output", c.file)
			}
		}
	}
}

// A float64 --mask-noise file is read rounded to float32, as numpy's
// astype(float32) rounds (to nearest, ties to even): the reference's
// masks, the same as from the float32 file. The values are nudged by less
// than half a float32 step, so only the rounding makes them equal.
func TestMaskNoiseFloat64(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	shape, noise := npy(t, filepath.Join(tiny, "noise.npy"))
	f64 := make([]float64, len(noise))
	for i, v := range noise {
		step := float64(math.Nextafter32(v, 2) - v)
		f64[i] = float64(v) + step*0.49
	}
	p := filepath.Join(t.TempDir(), "noise64.npy")
	writeNpyFloat64(t, p, shape, f64)
	out := t.TempDir()
	mustRun(t, "reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", p, "--format", "npy", "--resize", "none", "-o", out, filepath.Join(tiny, "images"))
	_, got := npy(t, filepath.Join(out, "mask.npy"))
	_, want := npy(t, filepath.Join(tiny, "mask.npy"))
	if !slices.Equal(got, want) {
		t.Errorf("masks from the float64 noise differ from the reference's")
	}
}

// --mask-noise needs one row per input, and a tar member or a Parquet row
// is an input: with tar (plain or gzip-compressed) and Parquet inputs, too
// few or too many rows are a usage error (exit 2) before anything is
// written, as with image files, in the run and its dry run; the right
// count runs, every image. A tar whose members cannot be counted (cut
// inside a header) is a usage error that names it.
func TestMaskNoiseRowsCountTarAndParquetInputs(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	shape, base := npy(t, filepath.Join(tiny, "noise.npy"))
	dir := t.TempDir()
	noise := func(rows int) string {
		p := filepath.Join(dir, fmt.Sprintf("noise%d.npy", rows))
		data := make([]float32, 0, rows*shape[1])
		for i := range rows {
			data = append(data, base[(i%shape[0])*shape[1]:(i%shape[0]+1)*shape[1]]...)
		}
		if err := sinks.WriteNpyFloat32(p, []int{rows, shape[1]}, data); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := filepath.Join(dir, "plain.tar")
	writeTar(t, plain, "img_000.png", "img_001.png", "img_002.png")
	gz := filepath.Join(dir, "packed.tar")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	raw, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	parquet := func(t *testing.T) []string {
		// Written by DuckDB, in row groups of 2 rows.
		pq := filepath.Join(t.TempDir(), "ds.parquet")
		duckQuery(t, "COPY (SELECT key, png FROM ("+
			"SELECT 0 AS ord, 'a' AS key, content AS png FROM read_blob("+fixturePhotoSQL(t, 0)+") UNION ALL "+
			"SELECT 1, 'b', content FROM read_blob("+fixturePhotoSQL(t, 1)+") UNION ALL "+
			"SELECT 2, 'c', content FROM read_blob("+fixturePhotoSQL(t, 2)+") UNION ALL "+
			"SELECT 3, 'd', content FROM read_blob("+fixturePhotoSQL(t, 0)+")) ORDER BY ord) TO "+sqlString(pq)+" (FORMAT parquet, ROW_GROUP_SIZE 2)")
		return []string{pq}
	}
	given := func(in ...string) func(*testing.T) []string { return func(*testing.T) []string { return in } }
	for _, in := range []struct {
		name   string
		inputs func(*testing.T) []string
		n      int
	}{
		{"tar", given(plain), 3},
		{"gzip tar", given(gz), 3},
		{"tar and a file", given(plain, filepath.Join(tiny, "images", "img_001.png")), 4},
		{"parquet", parquet, 4},
	} {
		t.Run(in.name, func(t *testing.T) {
			inputs := in.inputs(t)
			for _, rows := range []int{in.n - 1, in.n + 1} {
				for _, dry := range []bool{false, true} {
					out := filepath.Join(t.TempDir(), "out")
					args := []string{"reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", noise(rows), "--resize", "none", "-o", out}
					if dry {
						args = append(args, "--dry-run")
					}
					code, _, stderr := maeembed(t, append(args, inputs...)...)
					want := fmt.Sprintf("%d rows for %d inputs", rows, in.n)
					if code != 2 || !strings.Contains(stderr, want) {
						t.Errorf("%d rows (dry run %v): exit %d, want 2 saying %q\n%s", rows, dry, code, want, stderr)
					}
					if _, err := os.Stat(out); !os.IsNotExist(err) {
						t.Errorf("%d rows (dry run %v): the refused run made the output %s", rows, dry, out)
					}
				}
			}
			out := filepath.Join(t.TempDir(), "out")
			runCounted(t, summary{in.n, 0, 0}, append([]string{"reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", noise(in.n), "--resize", "none", "-o", out}, inputs...)...)
		})
	}

	cut := filepath.Join(dir, "cut.tar")
	if err := os.WriteFile(cut, raw[:512+600+100], 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := maeembed(t, "reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", noise(3), "--resize", "none", "-o", filepath.Join(dir, "cutout"), cut)
	if code != 2 || !strings.Contains(stderr, "cannot count the images of "+cut) {
		t.Errorf("a tar cut short: exit %d, want 2 naming it\n%s", code, stderr)
	}
}

// With --shard (where the rows are not counted up front) a --mask-noise
// file that ends before the inputs fails only the inputs past its end,
// each naming its own position, not every image of their batch.
func TestMaskNoiseShortUnderShardFailsOnlyThePastEnd(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	shape, noise := npy(t, filepath.Join(tiny, "noise.npy"))
	short := filepath.Join(t.TempDir(), "two.npy")
	writeNpy(t, short, []int{2, shape[1]}, noise[:2*shape[1]])
	out := filepath.Join(t.TempDir(), "out")
	// Shard 0/2 of the three images: positions 0 and 2, one batch.
	code, _, stderr := maeembed(t, "reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", short, "--resize", "none",
		"--shard", "0/2", "--format", "npy", "-o", out, filepath.Join(tiny, "images"))
	if code != 0 || !strings.Contains(stderr, "1 image written, 1 error") || !strings.Contains(stderr, "has 2 rows, input is number 2") {
		t.Fatalf("exit %d, want 0 with img_000.png written and img_002.png failed past the noise's end\n%s", code, stderr)
	}
	if _, mask := npy(t, filepath.Join(out, "mask.npy")); len(mask) != shape[1] {
		t.Errorf("mask.npy holds %d values, want one row of %d", len(mask), shape[1])
	}
}
