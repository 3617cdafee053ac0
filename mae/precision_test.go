package mae

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae/builtin"
	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/stages"
)

// Real photos for the accuracy of reduced precision: those shipped by
// Debian's python3-skimage and python3-sklearn.
var accuracyPhotos = []string{
	"/usr/lib/python3/dist-packages/skimage/data/astronaut.png",
	"/usr/lib/python3/dist-packages/skimage/data/camera.png",
	"/usr/lib/python3/dist-packages/skimage/data/chelsea.png",
	"/usr/lib/python3/dist-packages/skimage/data/coffee.png",
	"/usr/lib/python3/dist-packages/skimage/data/hubble_deep_field.jpg",
	"/usr/lib/python3/dist-packages/skimage/data/motorcycle_left.png",
	"/usr/lib/python3/dist-packages/skimage/data/page.png",
	"/usr/lib/python3/dist-packages/skimage/data/retina.jpg",
	"/usr/lib/python3/dist-packages/skimage/data/rocket.jpg",
	"/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
	"/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg",
}

// accuracyCrops are regions of accuracyPhotos (x0, y0, x1, y1 in
// pixels), embedded as lossless PNGs after the whole photos: mostly black
// fundus and sky, where a token can put most of its attention on one
// other token and spread the rest thinly. 6-bit attention probabilities
// (the AVX2 int8 path before its P·V went float32) took the first to a
// cosine of 0.994 against fp32.
var accuracyCrops = []struct {
	path string
	r    image.Rectangle
}{
	{"/usr/lib/python3/dist-packages/skimage/data/retina.jpg", image.Rect(59, 241, 1297, 883)},
	{"/usr/lib/python3/dist-packages/skimage/data/retina.jpg", image.Rect(0, 0, 640, 640)},
	{"/usr/lib/python3/dist-packages/skimage/data/hubble_deep_field.jpg", image.Rect(0, 0, 480, 480)},
}

// accuracyImages returns the encoded images of the accuracy test: the
// photos, then the crops. It skips t when the photos are not installed.
func accuracyImages(t *testing.T) [][]byte {
	t.Helper()
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && os.Getenv("MAEEMBED_REQUIRE_TOOLS") != "1" {
			t.Skipf("photo %s missing: apt-get install -y python3-skimage python3-sklearn", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out [][]byte
	for _, path := range accuracyPhotos {
		out = append(out, read(path))
	}
	for _, c := range accuracyCrops {
		img, err := jpeg.Decode(bytes.NewReader(read(c.path)))
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(c.r)); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// minCosine is the bar a reduced precision must clear on every model and
// photo: the cosine similarity of its embedding with the fp32 one.
const minCosine = 0.995

// precisionModel loads one model fresh (SetPrecision is one-way).
type precisionModel struct {
	name string
	load func() (*Model, error)
}

func precisionModels(t *testing.T) []precisionModel {
	var out []precisionModel
	for _, d := range fixtureDirs(t) {
		path, cfg := filepath.Join(d, "model.pth"), filepath.Join(d, "hf", "config.json")
		out = append(out, precisionModel{filepath.Base(d), func() (*Model, error) { return Load(path, cfg) }})
	}
	// The built-in ViT-Tiny, trained: trained ViTs have outlier channels
	// that random weights lack.
	out = append(out, precisionModel{"builtin (trained)", func() (*Model, error) {
		dir, err := builtin.Dir(t.TempDir())
		if err != nil {
			return nil, err
		}
		return Load(dir, "")
	}})
	if !testing.Short() {
		out = append(out, precisionModel{"vit-b random", func() (*Model, error) {
			return New(Presets["mae_vit_base_patch16"], true, 1)
		}})
	}
	// A trained checkpoint, when one is at hand (not in the repository).
	if p := os.Getenv("MAEEMBED_TRAINED_MODEL"); p != "" {
		out = append(out, precisionModel{"trained:" + filepath.Base(p), func() (*Model, error) { return Load(p, "") }})
	}
	return out
}

// photoPatches preprocesses the photos (center crop to size) into patches.
func photoPatches(t *testing.T, c Config) []float32 {
	t.Helper()
	pre := stages.Preprocess{Size: c.ImageSize, Mode: stages.CenterCrop}
	ims := accuracyImages(t)
	n := len(ims)
	imgs := make([]float32, n*3*c.ImageSize*c.ImageSize)
	for i, b := range ims {
		sz := 3 * c.ImageSize * c.ImageSize
		if _, _, err := pre.Tensor(imgs[i*sz:(i+1)*sz], b); err != nil {
			t.Fatalf("image %d of the accuracy set: %v", i, err)
		}
	}
	patches := make([]float32, n*c.NumPatches()*c.PatchDim())
	Patchify(patches, imgs, n, c.ImageSize, c.PatchSize)
	return patches
}

type precisionResult struct {
	meanCos, minCos float64
	maxAbs, predMax float64 // reconstruction: max |pred − pred_fp32|, max |pred_fp32|
}

// runPrecision embeds (mean pool) and reconstructs (ratio 0.75, fixed
// noise) the photos with m.
func runPrecision(t *testing.T, m *Model, patches []float32, n int) (emb, pred []float32) {
	t.Helper()
	emb = make([]float32, n*m.EmbedDim(PoolMean))
	if err := m.Embed(emb, patches, n, PoolMean); err != nil {
		t.Fatal(err)
	}
	if !m.HasDecoder() {
		return emb, nil
	}
	r, err := m.Reconstruct(patches, testNoise(m.Config, n, 7), n, 0.75, false)
	if err != nil {
		t.Fatal(err)
	}
	return emb, r.Pred
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// TestPrecisionAccuracy measures every reduced precision against fp32 on
// real photos for every model loadable here (the fixtures, ViT-B with
// random weights unless -short, and MAEEMBED_TRAINED_MODEL if set): mean
// and minimum cosine of the mean-pooled embeddings, max abs error of the
// reconstructions. It logs the table (go test -v -run PrecisionAccuracy
// ./mae) and fails when a precision's minimum cosine is below 0.995.
func TestPrecisionAccuracy(t *testing.T) {
	precs := []kernels.Precision{kernels.BF16, kernels.Int8}
	var table strings.Builder
	fmt.Fprintf(&table, "path %s\n%-20s %-5s %9s %9s %12s %10s\n", kernels.Path(), "model", "prec", "mean cos", "min cos", "max|Δpred|", "max|pred|")
	for _, pm := range precisionModels(t) {
		ref, err := pm.load()
		if err != nil {
			t.Fatal(err)
		}
		n := len(accuracyPhotos) + len(accuracyCrops)
		patches := photoPatches(t, ref.Config)
		emb32, pred32 := runPrecision(t, ref, patches, n)
		for _, prec := range precs {
			m, err := pm.load()
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetPrecision(prec); err != nil {
				t.Fatal(err)
			}
			emb, pred := runPrecision(t, m, patches, n)
			d := ref.EmbedDim(PoolMean)
			res := precisionResult{minCos: 1}
			for i := 0; i < n; i++ {
				c := cosine(emb[i*d:(i+1)*d], emb32[i*d:(i+1)*d])
				res.meanCos += c / float64(n)
				res.minCos = math.Min(res.minCos, c)
			}
			for i := range pred {
				res.maxAbs = math.Max(res.maxAbs, math.Abs(float64(pred[i]-pred32[i])))
				res.predMax = math.Max(res.predMax, math.Abs(float64(pred32[i])))
			}
			fmt.Fprintf(&table, "%-20s %-5v %9.6f %9.6f %12.4g %10.4g\n", pm.name, prec, res.meanCos, res.minCos, res.maxAbs, res.predMax)
			if res.minCos < minCosine || math.IsNaN(res.minCos) {
				t.Errorf("%s %v: min cosine %.6f < %v", pm.name, prec, res.minCos, minCosine)
			}
			if res.meanCos == 1 && res.maxAbs == 0 {
				t.Errorf("%s %v: identical to fp32: the precision was not applied", pm.name, prec)
			}
		}
	}
	t.Logf("accuracy against fp32 on %d photos and %d crops:\n%s", len(accuracyPhotos), len(accuracyCrops), table.String())
}
