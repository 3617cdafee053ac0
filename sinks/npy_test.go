package sinks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// numpyLoad loads an .npy with numpy and returns dtype, shape and values.
func numpyLoad(t *testing.T, path string) (string, []int, []float32) {
	t.Helper()
	py := numpyPython(t)
	out, err := exec.Command(py, "-c", `import sys, json, numpy as np
a = np.load(sys.argv[1])
print(json.dumps({"dtype": a.dtype.str, "shape": list(a.shape), "c": bool(a.flags.c_contiguous), "v": a.astype(np.float64).ravel().tolist()}))`, path).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy.load %s: %v\n%s", path, err, out)
	}
	var r struct {
		Dtype string    `json:"dtype"`
		Shape []int     `json:"shape"`
		C     bool      `json:"c"`
		V     []float64 `json:"v"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("numpy output: %v\n%s", err, out)
	}
	if !r.C {
		t.Errorf("numpy: %s not C-contiguous", path)
	}
	v := make([]float32, len(r.V))
	for i, x := range r.V {
		v[i] = float32(x)
	}
	return r.Dtype, r.Shape, v
}

func flatten(rows []Row) []float32 {
	var v []float32
	for _, r := range rows {
		v = append(v, r.Embedding...)
	}
	return v
}

// checkNpyOutput verifies embeddings.npy with numpy and the Go reader, and
// metadata.parquet with Arrow and DuckDB.
func checkNpyOutput(t *testing.T, dir string, shape []int, want []Row) {
	t.Helper()
	emb := filepath.Join(dir, "embeddings.npy")
	gs, gv, err := ReadNpyFloat32(emb)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gs, shape) || !slices.Equal(gv, flatten(want)) {
		t.Fatalf("Go reader: shape %v (want %v), values equal %v", gs, shape, slices.Equal(gv, flatten(want)))
	}
	if dt, ns, nv := numpyLoad(t, emb); dt != "<f4" || !slices.Equal(ns, shape) || !slices.Equal(nv, flatten(want)) {
		t.Fatalf("numpy: dtype %s shape %v (want <f4 %v), values equal %v", dt, ns, shape, slices.Equal(nv, flatten(want)))
	}
	md := filepath.Join(dir, "metadata.parquet")
	tbl, kv, err := ReadParquet(md)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumCols() != 3 || kv["maeembed.model"] == "" || kv["maeembed.pool"] == "" {
		t.Fatalf("metadata.parquet: schema %s, kv %v", tbl.Schema(), kv)
	}
	sameRows(t, "metadata.parquet arrow", tableRows(t, tbl), want, false)
	r := duckdb(t, "SELECT id, width, height FROM read_parquet("+sqlPath(md)+")")
	sameRows(t, "metadata.parquet duckdb", duckRows(t, r), want, false)
}

func TestNpyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		meta  Meta
		inner []int
	}{
		{"mean", Meta{Model: "m", Pool: "mean", Preprocess: "squash 224", Version: "t", Dim: 6}, []int{6}},
		{"tokens", Meta{Model: "m", Pool: "tokens", Preprocess: "squash 224", Version: "t", Dim: 3, Tokens: 5}, []int{5, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			w, err := NewNpy(dir, tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			var want []Row
			for _, n := range []int{4, 1, 7} {
				rows := testRows(rng, len(want), n, tc.meta.rowLen())
				if err := w.Write(rows); err != nil {
					t.Fatal(err)
				}
				want = append(want, rows...)
			}
			if v := visibleFiles(t, dir); len(v) != 0 {
				t.Fatalf("visible before Close: %v", v)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if h := hiddenFiles(t, dir); len(h) != 0 {
				t.Fatalf("temporaries left: %v", h)
			}
			checkNpyOutput(t, dir, append([]int{len(want)}, tc.inner...), want)
		})
	}
}

func TestNpyEmpty(t *testing.T) {
	dir := t.TempDir()
	w, err := NewNpy(dir, Meta{Model: "m", Pool: "cls", Dim: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkNpyOutput(t, dir, []int{0, 4}, nil)
}

func TestNpyResume(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "1", Dim: 5}
	rng := rand.New(rand.NewPCG(7, 8))
	all := testRows(rng, 0, 9, 5)

	write := func(meta Meta, rows []Row) error {
		w, err := NewNpy(dir, meta)
		if err != nil {
			return err
		}
		if err := w.Write(rows); err != nil {
			w.Abort()
			return err
		}
		return w.Close()
	}
	if err := write(meta, all[:4]); err != nil {
		t.Fatal(err)
	}
	done, err := ReadDoneIDs(dir)
	if err != nil || len(done) != 4 || !done[all[3].ID] {
		t.Fatalf("done after first run: %v %v", done, err)
	}
	// A newer build may finish the run; a different model may not.
	meta2 := meta
	meta2.Version = "2"
	if err := write(meta2, all[4:6]); err != nil {
		t.Fatal(err)
	}
	checkNpyOutput(t, dir, []int{6, 5}, all[:6])
	other := meta
	other.Model = "other"
	if err := write(other, all[6:]); err == nil || !strings.Contains(err.Error(), "maeembed.model") {
		t.Fatalf("resume with another model: %v, want an error naming maeembed.model", err)
	}

	// A crash between the two renames: embeddings.npy has rows that
	// metadata.parquet does not name. Simulate by publishing a longer npy.
	f, err := createNpy(filepath.Join(dir, "embeddings.npy"), []int{5})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all[:8] {
		f.appendRow(r.Embedding)
	}
	if err := f.finish(); err != nil {
		t.Fatal(err)
	}
	if err := f.publish(); err != nil {
		t.Fatal(err)
	}
	if err := write(meta, all[6:]); err != nil {
		t.Fatal(err)
	}
	checkNpyOutput(t, dir, []int{9, 5}, all)
}

func TestReadNpyFloat32(t *testing.T) {
	py := numpyPython(t)
	dir := t.TempDir()
	out, err := exec.Command(py, "-c", `import sys, numpy as np
d = sys.argv[1]
a = (np.arange(12, dtype=np.float64).reshape(3, 4) / 7)
np.save(d + "/f8.npy", a)
np.save(d + "/f4.npy", a.astype(np.float32))
np.save(d + "/scalar.npy", np.float32(2.5))
np.save(d + "/fortran.npy", np.asfortranarray(a.astype(np.float32)))
np.save(d + "/big.npy", a.astype(">f4"))
np.save(d + "/int.npy", np.arange(3))
`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := make([]float32, 12)
	for i := range want {
		want[i] = float32(float64(i) / 7)
	}
	for _, name := range []string{"f4.npy", "f8.npy"} {
		shape, v, err := ReadNpyFloat32(filepath.Join(dir, name))
		if err != nil || !slices.Equal(shape, []int{3, 4}) || !slices.Equal(v, want) {
			t.Errorf("%s: shape %v values %v err %v", name, shape, v, err)
		}
	}
	if shape, v, err := ReadNpyFloat32(filepath.Join(dir, "scalar.npy")); err != nil || len(shape) != 0 || !slices.Equal(v, []float32{2.5}) {
		t.Errorf("scalar: %v %v %v", shape, v, err)
	}
	// Truncate a copy.
	b, _ := os.ReadFile(filepath.Join(dir, "f4.npy"))
	os.WriteFile(filepath.Join(dir, "short.npy"), b[:len(b)-3], 0o644)
	os.WriteFile(filepath.Join(dir, "text.npy"), []byte("hello, world"), 0o644)
	for name, msg := range map[string]string{
		"fortran.npy": "Fortran",
		"big.npy":     `">f4"`,
		"int.npy":     `"<i8"`,
		"short.npy":   "truncated",
		"text.npy":    "not an npy file",
		"missing.npy": "no such file",
	} {
		p := filepath.Join(dir, name)
		_, _, err := ReadNpyFloat32(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one naming the file and %q", name, err, msg)
		}
	}
}

func TestWriteNpyFloat32(t *testing.T) {
	dir := t.TempDir()
	for _, shape := range [][]int{{2, 3}, {4}, {}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i) * 0.37
		}
		p := filepath.Join(dir, fmt.Sprintf("a%d.npy", len(shape)))
		if err := WriteNpyFloat32(p, shape, data); err != nil {
			t.Fatal(err)
		}
		if s, v, err := ReadNpyFloat32(p); err != nil || !slices.Equal(s, shape) || !slices.Equal(v, data) {
			t.Errorf("Go reader %v: %v %v %v", shape, s, v, err)
		}
		if dt, s, v := numpyLoad(t, p); dt != "<f4" || !slices.Equal(s, shape) || !slices.Equal(v, data) {
			t.Errorf("numpy %v: %s %v %v", shape, dt, s, v)
		}
	}
	if err := WriteNpyFloat32(filepath.Join(dir, "bad.npy"), []int{2, 2}, []float32{1}); err == nil {
		t.Error("shape mismatch accepted")
	}
}

// A user's own .npy file (written by numpy, no metadata.parquet beside
// it) where a set would be published is refused, not replaced: the run
// fails before writing anything, and the file and directory stay as
// they were.
func TestNpyRefusesAForeignFile(t *testing.T) {
	py := numpyPython(t)
	for _, tc := range []struct {
		name string
		open func(dir string) error
	}{
		{embeddingsName, func(dir string) error {
			_, err := NewNpy(dir, Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "1", Dim: 5})
			return err
		}},
		{"mask.npy", func(dir string) error { _, err := NewReconNpy(dir, testReconMeta); return err }},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, tc.name)
		if out, err := exec.Command(py, "-c", "import sys, numpy as np; np.save(sys.argv[1], np.ones((3, 5), np.float32))", p).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		before, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		err = tc.open(dir)
		if err == nil || !strings.Contains(err.Error(), "not a maeembed output") || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: open beside a foreign %s: %v, want an error naming it as not a maeembed output", tc.name, p, err)
		}
		if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
			t.Errorf("%s: the foreign file changed", tc.name)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: the directory holds %d entries after the refusal, want only the foreign file", tc.name, len(ents))
		}
	}
}
