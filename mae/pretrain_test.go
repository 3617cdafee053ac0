package mae

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// testNoise is the seeded noise of images 0..n-1, one row per image.
func testNoise(c Config, n int, seed uint64) []float32 {
	l := c.NumPatches()
	noise := make([]float32, n*l)
	for b := 0; b < n; b++ {
		NoiseRow(noise[b*l:(b+1)*l], seed, int64(b))
	}
	return noise
}

func testMasking(c Config, n int, seed uint64) *Masking {
	return NewMasking(testNoise(c, n, seed), n, c.NumPatches(), c.NumKeep(c.MaskRatio))
}

// The graph's loss is the inference path's loss (Reconstruct), batch-averaged.
func TestPretrainLossMatchesReconstruct(t *testing.T) {
	c := smallConfig()
	m := perturbedModel(t, c, true, 1, 2)
	n := 3
	patches := randPatches(n, c, 3)
	mk := testMasking(c, n, 4)
	for _, normPix := range []bool{false, true} {
		y, err := m.PretrainLoss(patches, mk, normPix)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.Reconstruct(patches, testNoise(c, n, 4), n, c.MaskRatio, normPix)
		if err != nil {
			t.Fatal(err)
		}
		// Every image has the same number of removed patches, so the batch
		// loss is the mean of the per-image losses.
		var want float64
		for _, v := range r.Loss {
			want += float64(v) / float64(n)
		}
		if got := float64(mat.Data[float32](y.Value())[0]); math.Abs(got-want) > 1e-5*math.Max(1, want) {
			t.Errorf("normPix %v: graph loss %g, inference %g", normPix, got, want)
		}
	}
}

// Gradients of the whole pretraining loss agree with central finite
// differences, for parameters of every part of the model.
func TestPretrainLossGradients(t *testing.T) {
	c := smallConfig()
	c.Depth = 1
	m := perturbedModel(t, c, true, 4, 5)
	params, err := m.TrainableParams()
	if err != nil {
		t.Fatal(err)
	}
	n := 2
	patches := randPatches(n, c, 6)
	mk := testMasking(c, n, 7)
	for _, normPix := range []bool{false, true} {
		for _, p := range params {
			p.Param.ZeroGrad()
		}
		loss := func() float64 {
			y, err := m.PretrainLoss(patches, mk, normPix)
			if err != nil {
				t.Fatal(err)
			}
			return float64(mat.Data[float32](y.Value())[0])
		}
		y, err := m.PretrainLoss(patches, mk, normPix)
		if err != nil {
			t.Fatal(err)
		}
		if err := ag.Backward(y); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(8, 8))
		for _, p := range params {
			if p.Param.Grad() == nil {
				t.Errorf("%s: no gradient", p.Name)
				continue
			}
			g := mat.Data[float32](p.Param.Grad())
			v := mat.Data[float32](p.Param.Value())
			for _, i := range []int{0, r.IntN(len(v)), len(v) - 1} {
				fd := centralDiff(v, i, loss)
				if diff := math.Abs(fd - float64(g[i])); diff > 2e-3+2e-2*math.Abs(fd) {
					t.Errorf("normPix %v: %s[%d]: autograd %g, finite difference %g", normPix, p.Name, i, g[i], fd)
				}
			}
		}
	}
}

// The interpolated GELU derivative equals Φ(x) + x·φ(x) to far below
// float32 resolution, inside and outside the table.
func TestGeluGrad(t *testing.T) {
	var worst float64
	for x := -12.0; x <= 12; x += 1.0 / 1024 / 3.7 {
		want := 0.5*math.Erfc(-x/math.Sqrt2) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
		worst = math.Max(worst, math.Abs(geluGrad(float32(x))-want)-math.Abs(float64(float32(x))-x)*1.2)
	}
	if worst > 1e-8 {
		t.Errorf("interpolated GELU derivative off by %g", worst)
	}
}
