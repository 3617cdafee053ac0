package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/maeembed/maeembed/mae"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

func reconRows(rng *rand.Rand, meta ReconMeta, start, n int) []ReconRow {
	g := gridSide(meta.Patches)
	s := g * meta.Patch
	rows := make([]ReconRow, n)
	for i := range rows {
		r := ReconRow{ID: fmt.Sprintf("sub/img %d.jpg", start+i), Width: int32(300 + i), Height: int32(200 + i), Loss: rng.Float32()}
		r.Pred = make([]float32, meta.Patches*meta.patchDim())
		for j := range r.Pred {
			r.Pred[j] = rng.Float32()*5 - 2.5 // also outside the pixel range: clipping
		}
		r.Mask = make([]float32, meta.Patches)
		for j := range r.Mask {
			if rng.IntN(4) != 0 {
				r.Mask[j] = 1
			}
		}
		r.Image = make([]float32, 3*s*s)
		for j := range r.Image {
			r.Image[j] = rng.Float32()*4.4 - 2.1
		}
		// The PNG panels take the predictions and mask as images, laid out
		// by mae (unpatchify), as the reconstruct command hands them over.
		rec := &mae.Reconstruction{N: 1, L: meta.Patches, Pred: r.Pred, Masking: &mae.Masking{Mask: r.Mask}}
		r.PredImage, r.PixelMask = rec.Images(nil, nil)
		rows[i] = r
	}
	return rows
}

var testReconMeta = ReconMeta{Model: "mae_visualize_vit_base", Preprocess: "squash 8", Version: "t", MaskRatio: 0.75, Seed: 3, Patches: 4, Patch: 4, Precision: "int8"}

func TestReconNpy(t *testing.T) {
	dir := t.TempDir()
	m := testReconMeta
	w, err := NewReconNpy(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	rows := reconRows(rng, m, 0, 5)
	if err := w.Write(rows[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows[2:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var pred, mask, loss []float32
	for _, r := range rows {
		pred = append(pred, r.Pred...)
		mask = append(mask, r.Mask...)
		loss = append(loss, r.Loss)
	}
	for _, c := range []struct {
		name  string
		shape []int
		vals  []float32
	}{
		{"pred.npy", []int{5, 4, 48}, pred},
		{"mask.npy", []int{5, 4}, mask},
		{"loss.npy", []int{5}, loss},
	} {
		p := filepath.Join(dir, c.name)
		shape, v, err := ReadNpyFloat32(p)
		if err != nil || !slices.Equal(shape, c.shape) || !slices.Equal(v, c.vals) {
			t.Errorf("%s (Go reader): shape %v want %v, equal %v, err %v", c.name, shape, c.shape, slices.Equal(v, c.vals), err)
		}
		if dt, shape, v := numpyLoad(t, p); dt != "<f4" || !slices.Equal(shape, c.shape) || !slices.Equal(v, c.vals) {
			t.Errorf("%s (numpy): %s shape %v want %v, equal %v", c.name, dt, shape, c.shape, slices.Equal(v, c.vals))
		}
	}
	r := duckdb(t, "SELECT id, width, height FROM read_parquet("+sqlPath(filepath.Join(dir, "metadata.parquet"))+")")
	want := make([]Row, len(rows))
	for i, rr := range rows {
		want[i] = Row{ID: rr.ID, Width: rr.Width, Height: rr.Height}
	}
	sameRows(t, "recon metadata duckdb", duckRows(t, r), want, false)
	kv := duckdb(t, "SELECT decode(value) AS v FROM parquet_kv_metadata("+sqlPath(filepath.Join(dir, "metadata.parquet"))+") WHERE decode(key) = 'maeembed.mask_ratio'")
	if len(kv.Rows) != 1 || string(kv.Rows[0]["v"]) != `"0.75"` {
		t.Errorf("maeembed.mask_ratio: %v", kv.Rows)
	}

	// Resume appends after the published rows.
	w, err = NewReconNpy(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	more := reconRows(rng, m, 5, 1)
	if err := w.Write(more); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	shape, v, err := ReadNpyFloat32(filepath.Join(dir, "loss.npy"))
	if err != nil || !slices.Equal(shape, []int{6}) || !slices.Equal(v, append(loss, more[0].Loss)) {
		t.Errorf("loss.npy after resume: %v %v %v", shape, v, err)
	}
}

func TestReconParquet(t *testing.T) {
	dir := t.TempDir()
	m := testReconMeta
	w, err := NewReconParquet(dir, m, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(2, 2)), m, 0, 3)
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "part-00000.parquet")
	tbl, kv, err := ReadParquet(p)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if kv["maeembed.patch_size"] != "4" || kv["maeembed.seed"] != "3" || kv["maeembed.precision"] != "int8" {
		t.Errorf("metadata %v", kv)
	}
	if typ := tbl.Schema().Field(3).Type; !arrow.TypeEqual(typ, fslType(4, 48)) {
		t.Errorf("pred type %s", typ)
	}
	rec := array.NewTableReader(tbl, 100)
	defer rec.Release()
	rec.Next()
	gotPred := flatFloats(t, rec.Record().Column(3))
	gotMask := flatFloats(t, rec.Record().Column(4))
	gotLoss := rec.Record().Column(5).(*array.Float32).Float32Values()
	for i, r := range rows {
		if !slices.Equal(gotPred[i*192:(i+1)*192], r.Pred) || !slices.Equal(gotMask[i*4:(i+1)*4], r.Mask) || gotLoss[i] != r.Loss {
			t.Errorf("arrow reader row %d differs", i)
		}
	}

	d := duckdb(t, "SELECT id, pred, mask, loss FROM read_parquet("+sqlPath(p)+")")
	if d.Types[1] != "FLOAT[][]" || d.Types[2] != "FLOAT[]" || d.Types[3] != "FLOAT" {
		t.Errorf("duckdb types %v", d.Types)
	}
	for i, r := range rows {
		var pred [][]float64
		var mask []float64
		var loss float64
		json.Unmarshal(d.Rows[i]["pred"], &pred)
		json.Unmarshal(d.Rows[i]["mask"], &mask)
		json.Unmarshal(d.Rows[i]["loss"], &loss)
		if len(pred) != 4 || len(pred[0]) != 48 || float32(pred[2][7]) != r.Pred[2*48+7] || float32(mask[3]) != r.Mask[3] || float32(loss) != r.Loss {
			t.Errorf("duckdb row %d differs", i)
		}
	}
}

func TestPNGPath(t *testing.T) {
	for id, want := range map[string]string{
		"a/b.jpg":          "out/a/b.jpg.png",
		"../../etc/passwd": "out/%2E%2E/%2E%2E/etc/passwd.png",
		"/abs//x.png":      "out/%/abs/%/x.png.png",
		"t/0/15":           "out/t/0/15.png",
		"":                 "out/%.png",
		`caf\xE9.png`:      "out/caf%5CxE9.png.png",
		"100%.jpg":         "out/100%25.jpg.png",
		"a.png/b.png":      "out/a%2Epng/b.png.png",
	} {
		if got := PNGPath("out", id); got != want {
			t.Errorf("PNGPath(%q) = %q, want %q", id, got, want)
		}
	}
}

// Ids that the file name mapping used to merge (a backslash read as "/",
// "." and ".." both made "_", empty components dropped, a shortened name
// given as an id) get distinct files.
func TestPNGPathInjective(t *testing.T) {
	long := strings.Repeat("x", 300)
	ids := []string{`caf\xE9.png`, "caf/xE9.png", "..", ".", "_", "", "%", "%25", "%5C", `\`,
		"a//b", "a/b", "/a/b", "a/b/", "a/./b", "a/%2E/b", long, long + "y", "x", "x.png/y"}
	ids = append(ids, strings.TrimSuffix(PNGPath("", long), ".png")) // the shortened name of long, as an id
	seen := map[string]string{}
	dirs := map[string]bool{}
	for _, id := range ids {
		p := PNGPath("out", id)
		if prev, ok := seen[p]; ok {
			t.Errorf("ids %q and %q share %s", prev, id, p)
		}
		seen[p] = id
		for d := filepath.Dir(p); d != "out"; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if rel, err := filepath.Rel("out", p); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("id %q lands outside the directory: %s", id, p)
		}
	}
	for p, id := range seen {
		if dirs[p] {
			t.Errorf("the file of %q is a directory of another id", id)
		}
	}
}

// A row whose file this writer already published (a repeated id) fails
// with an ItemError; the first file is not overwritten.
func TestReconPNGRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(5, 6)), testReconMeta, 0, 3)
	acks := make([]error, len(rows))
	for i, id := range []string{"x/a.jpg", "x/a.jpg", `caf\xE9`} {
		rows[i].ID = id
		rows[i].Ack = func(err error) { acks[i] = err }
	}
	rows[1].Image[0] += 1 // a different picture under the same name
	if err := w.Write(rows[:1]); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(PNGPath(dir, "x/a.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows[1:]); err != nil {
		t.Fatal(err)
	}
	var ie *ItemError
	if acks[0] != nil || !errors.As(acks[1], &ie) || ie.ID != "x/a.jpg" || acks[2] != nil {
		t.Fatalf("acks %v, want nil, an ItemError for x/a.jpg, nil", acks)
	}
	if again, _ := os.ReadFile(PNGPath(dir, "x/a.jpg")); !bytes.Equal(again, first) {
		t.Error("the first file was overwritten")
	}
}

// The 4-panel PNG equals what the MAE demo notebook computes with PyTorch
// (models_mae.unpatchify, x·(1−mask), paste, show_image's de-normalise,
// clip and int()), decoded by PIL.
func TestReconPNGMatchesDemo(t *testing.T) {
	py := numpyPython(t)
	if err := exec.Command(py, "-c", "import torch, PIL").Run(); err != nil {
		skipOrFail(t, "torch/PIL not available in %s: %v", py, err)
	}
	dir := t.TempDir()
	m := testReconMeta
	w, err := NewReconPNG(filepath.Join(dir, "out"), m)
	if err != nil {
		t.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(4, 4)), m, 0, 2)
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Fatalf("temporaries left: %v", h)
	}
	for _, r := range rows {
		// Hand the inputs to Python as npy files written by the npy code.
		for name, v := range map[string][]float32{"x.npy": r.Image, "pred.npy": r.Pred, "mask.npy": r.Mask} {
			f, err := createNpy(filepath.Join(dir, name), []int{len(v)})
			if err != nil {
				t.Fatal(err)
			}
			f.appendRow(v)
			if err := f.finish(); err != nil {
				t.Fatal(err)
			}
			if err := f.publish(); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(py, "-c", demoScript, dir, PNGPath(filepath.Join(dir, "out"), r.ID),
			fmt.Sprint(m.Patch), fmt.Sprint(PanelGap)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("%s: %v\n%s", r.ID, err, out)
		}
	}
}

const demoScript = `
import sys, numpy as np, torch
from PIL import Image
d, png, p, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = torch.from_numpy(np.load(d + "/x.npy"))
s = int(round((x.numel() // 3) ** 0.5))
x = x.reshape(1, 3, s, s)
pred = torch.from_numpy(np.load(d + "/pred.npy"))
L = pred.numel() // (p * p * 3)
pred = pred.reshape(1, L, p * p * 3)
mask = torch.from_numpy(np.load(d + "/mask.npy")).reshape(1, L)

def unpatchify(t):  # models_mae.MaskedAutoencoderViT.unpatchify
    h = w = int(t.shape[1] ** .5)
    t = t.reshape(shape=(t.shape[0], h, w, p, p, 3))
    t = torch.einsum('nhwpqc->nchpwq', t)
    return t.reshape(shape=(t.shape[0], 3, h * p, h * p))

y = torch.einsum('nchw->nhwc', unpatchify(pred))
mask = mask.unsqueeze(-1).repeat(1, 1, p ** 2 * 3)
mask = torch.einsum('nchw->nhwc', unpatchify(mask))
x = torch.einsum('nchw->nhwc', x)
im_masked = x * (1 - mask)
im_paste = x * (1 - mask) + y * mask
mean = torch.tensor([0.485, 0.456, 0.406])
std = torch.tensor([0.229, 0.224, 0.225])
def show(im):
    return torch.clip((im * std + mean) * 255, 0, 255).int().numpy()

img = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
assert img.shape == (s, 4 * s + 3 * gap, 3), img.shape
for i, im in enumerate([x[0], im_masked[0], y[0], im_paste[0]]):
    got = img[:, i * (s + gap): i * (s + gap) + s]
    want = show(im)
    if not np.array_equal(got, want):
        print("panel", i, "max diff", np.abs(got - want).max(), "at", np.argwhere(got != want)[:5].tolist())
        sys.exit(0)
    if i < 3:
        g = img[:, i * (s + gap) + s: (i + 1) * (s + gap)]
        assert (g == 255).all(), "gap not white"
print("ok")
`

// An embed output refuses a reconstruct run and the other way round, with
// an error that says what the directory holds rather than naming a
// metadata key one of them lacks.
func TestEmbedAndReconstructOutputsRefuseEachOther(t *testing.T) {
	rec := testReconMeta
	emb := Meta{Model: rec.Model, Pool: "mean", Preprocess: rec.Preprocess, Version: rec.Version, Dim: 2, Precision: rec.Precision}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, format := range []string{"parquet", "npy"} {
		t.Run(format, func(t *testing.T) {
			embDir, recDir := t.TempDir(), t.TempDir()
			ew, err := NewEmbeddings(format, embDir, emb, ParquetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ew.Write([]Row{{ID: "a", Embedding: []float32{1, 2}}}); err != nil {
				t.Fatal(err)
			}
			if err := ew.Close(); err != nil {
				t.Fatal(err)
			}
			rw, err := NewReconstructions(format, recDir, rec, ParquetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := rw.Write(reconRows(rng, rec, 0, 1)); err != nil {
				t.Fatal(err)
			}
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := NewReconstructions(format, embDir, rec, ParquetOptions{}); err == nil ||
				!strings.Contains(err.Error(), "holds embeddings (maeembed embed or stream), this run writes reconstructions") {
				t.Errorf("reconstruct into an embed output: %v", err)
			}
			if err := CheckReconResume(embDir, format, rec); err == nil || !strings.Contains(err.Error(), "holds embeddings") {
				t.Errorf("reconstruct dry run into an embed output: %v", err)
			}
			if _, err := NewEmbeddings(format, recDir, emb, ParquetOptions{}); err == nil ||
				!strings.Contains(err.Error(), "holds reconstructions (maeembed reconstruct), this run writes embeddings") {
				t.Errorf("embed into a reconstruct output: %v", err)
			}
			if err := CheckResume(recDir, format, emb); err == nil || !strings.Contains(err.Error(), "holds reconstructions") {
				t.Errorf("embed dry run into a reconstruct output: %v", err)
			}
		})
	}
}

// A reconstruct run's error parts carry its own metadata; a resume
// continues them, and continues the error parts of earlier versions (an
// embedding run's Meta with pool mean and dim 1), while another mask
// ratio is refused by NewReconErrors and by the dry run's check alike.
func TestReconErrorPartsResume(t *testing.T) {
	writeRow := func(w *ErrorParts) {
		t.Helper()
		if err := w.Write([]ErrorRow{{ID: "bad.jpg", Stage: "decode", Error: "decode: not an image"}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	other := testReconMeta
	other.MaskRatio = 0.5
	for _, legacy := range []bool{false, true} {
		dir := t.TempDir()
		var w *ErrorParts
		var err error
		if legacy {
			w, err = NewErrors(dir, testReconMeta.legacyErrorMeta(), ParquetOptions{})
		} else {
			w, err = NewReconErrors(dir, testReconMeta, ParquetOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		writeRow(w)
		if err := CheckReconResume(dir, "parquet", testReconMeta); err != nil {
			t.Errorf("legacy %v: dry-run check of the same run: %v", legacy, err)
		}
		w, err = NewReconErrors(dir, testReconMeta, ParquetOptions{})
		if err != nil {
			t.Fatalf("legacy %v: resume of the same run: %v", legacy, err)
		}
		writeRow(w)
		tbl, kv, err := ReadParquet(filepath.Join(dir, errorsDir, "part-00001.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		tbl.Release()
		if _, ok := kv["maeembed.pool"]; ok || kv["maeembed.mask_ratio"] != "0.75" {
			t.Errorf("legacy %v: the resumed error part records %v", legacy, kv)
		}
		// The newest part is the run's own now: another mask ratio is refused.
		if _, err := NewReconErrors(dir, other, ParquetOptions{}); err == nil || !strings.Contains(err.Error(), "maeembed.mask_ratio") {
			t.Errorf("legacy %v: resume with another mask ratio: %v", legacy, err)
		}
		if err := CheckReconResume(dir, "parquet", other); err == nil {
			t.Errorf("legacy %v: dry-run check with another mask ratio passes", legacy)
		}
	}
}

// Error parts create errors/ with their first row only: a run without
// errors (or refused before any) leaves no empty directory.
func TestErrorsDirOnlyWithRows(t *testing.T) {
	dir := t.TempDir()
	w, err := NewErrors(dir, Meta{Model: "m", Pool: "mean", Dim: 2}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, errorsDir)); !os.IsNotExist(err) {
		t.Fatalf("errors/ without rows: %v", err)
	}
	w, err = NewReconErrors(dir, testReconMeta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]ErrorRow{{ID: "a", Stage: "decode", Error: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, errorsDir, "part-*.parquet")); len(parts) != 1 {
		t.Errorf("error parts after one row: %v", parts)
	}
}
