package mae

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

func smallConfig() Config {
	return Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 24, Depth: 2, Heads: 3, MLPDim: 40,
		DecDim: 16, DecDepth: 1, DecHeads: 2, DecMLPDim: 32, Eps: 1e-6, MaskRatio: 0.75}
}

// perturb makes the fresh model's LayerNorms and biases non-trivial, so
// their gradients are exercised.
// centralDiff is the central finite difference (f(v+h) − f(v−h)) / 2h of
// loss in v[i], h = 1e-2; v[i] is restored.
func centralDiff(v []float32, i int, loss func() float64) float64 {
	const h = 1e-2
	old := v[i]
	v[i] = old + h
	up := loss()
	v[i] = old - h
	down := loss()
	v[i] = old
	return (up - down) / (2 * h)
}

// perturbedModel is New(c, decoder, seed) with every weight but the fixed
// ones moved off its initial value by perturb(pseed).
func perturbedModel(t *testing.T, c Config, decoder bool, seed, pseed uint64) *Model {
	t.Helper()
	m, err := New(c, decoder, seed)
	if err != nil {
		t.Fatal(err)
	}
	perturb(m, pseed)
	return m
}

func perturb(m *Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for name, t := range m.Tensors() {
		if name == "pos_embed" || name == "decoder_pos_embed" || name == "patch_embed.proj.weight" {
			continue
		}
		for i := range t.Data {
			t.Data[i] += float32(0.2 * r.NormFloat64())
		}
	}
	m.Repack()
}

func randPatches(n int, c Config, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	p := make([]float32, n*c.NumPatches()*c.PatchDim())
	for i := range p {
		p[i] = float32(r.NormFloat64())
	}
	return p
}

// The spago graph and the inference path compute the same tokens.
func TestEncodeGraphMatchesEmbed(t *testing.T) {
	c := smallConfig()
	m := perturbedModel(t, c, false, 1, 2)
	n := 3
	patches := randPatches(n, c, 3)
	want := make([]float32, n*m.EmbedDim(PoolTokens))
	if err := m.Embed(want, patches, n, PoolTokens); err != nil {
		t.Fatal(err)
	}
	x := mat.NewDense[float32](mat.WithShape(n*c.NumPatches(), c.PatchDim()), mat.WithBacking(patches))
	y, err := m.EncodeGraph(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, "graph", mat.Data[float32](y.Value()), want); d > 1e-5 {
		t.Fatalf("graph and inference differ by %g", d)
	}
}

// Gradients of the custom autograd functions agree with central finite
// differences of the loss sum(tokens ∘ R), in float64 tolerance terms.
func TestEncodeGraphGradients(t *testing.T) {
	c := smallConfig()
	c.Depth = 1
	m := perturbedModel(t, c, false, 4, 5)
	n := 2
	patches := randPatches(n, c, 6)
	x := mat.NewDense[float32](mat.WithShape(n*c.NumPatches(), c.PatchDim()), mat.WithBacking(patches))
	x.SetRequiresGrad(true)
	r := rand.New(rand.NewPCG(7, 7))
	proj := make([]float32, n*(1+c.NumPatches())*c.Dim)
	for i := range proj {
		proj[i] = float32(r.NormFloat64())
	}
	loss := func() float64 {
		y, err := m.EncodeGraph(x, n)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range mat.Data[float32](y.Value()) {
			s += float64(v) * float64(proj[i])
		}
		return s
	}
	blk := m.Encoder.Blocks[0]
	params := map[string]mat.Tensor{
		"qkv.W": blk.QKV.Weight(), "qkv.B": blk.QKV.B, "proj.W": blk.Proj.Weight(), "fc1.W": blk.FC1.Weight(), "fc2.B": blk.FC2.B,
		"norm1.W": blk.Norm1.W, "norm2.B": blk.Norm2.B, "norm.W": m.Encoder.Norm.W, "cls": m.Encoder.ClsToken,
		"pos": m.Encoder.PosEmbed, "patch.W": m.Encoder.PatchEmbed.Weight(), "input": x,
	}
	for _, p := range params {
		p.(interface{ SetRequiresGrad(bool) }).SetRequiresGrad(true)
	}
	y, err := m.EncodeGraph(x, n)
	if err != nil {
		t.Fatal(err)
	}
	y.AccGrad(mat.NewDense[float32](mat.WithShape(y.Shape()...), mat.WithBacking(append([]float32(nil), proj...))))
	if err := ag.Backward(y); err != nil {
		t.Fatal(err)
	}
	for name, p := range params {
		g := mat.Data[float32](p.Grad())
		v := mat.Data[float32](p.Value())
		for _, i := range []int{0, len(v) / 3, len(v) - 1} {
			fd := centralDiff(v, i, loss)
			if diff := math.Abs(fd - float64(g[i])); diff > 2e-2*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s[%d]: autograd %g, finite difference %g", name, i, g[i], fd)
			}
		}
	}
}

// TestReconstructMaskRatioZero: with nothing removed the reference's loss is
// (loss·mask).sum()/mask.sum() = 0/0 = NaN; maeembed writes NaN too, never 0
// (which would read as a perfect reconstruction). The predictions are
// still produced.
func TestReconstructMaskRatioZero(t *testing.T) {
	c := smallConfig()
	m := perturbedModel(t, c, true, 1, 3)
	n, l := 2, c.NumPatches()
	patches := randPatches(n, c, 4)
	noise := make([]float32, n*l)
	for i := range noise {
		noise[i] = float32(i%l) / float32(l)
	}
	for _, normPix := range []bool{false, true} {
		r, err := m.Reconstruct(patches, noise, n, 0, normPix)
		if err != nil {
			t.Fatal(err)
		}
		if r.Keep != l {
			t.Fatalf("keep %d, want all %d", r.Keep, l)
		}
		for b, v := range r.Loss {
			if !math.IsNaN(float64(v)) {
				t.Errorf("normPix %v image %d: loss %v at mask ratio 0, want NaN", normPix, b, v)
			}
		}
		// The same model at 0.75 gives finite losses: NaN is the ratio's doing.
		r, err = m.Reconstruct(patches, noise, n, 0.75, normPix)
		if err != nil {
			t.Fatal(err)
		}
		for b, v := range r.Loss {
			if math.IsNaN(float64(v)) || v <= 0 {
				t.Errorf("normPix %v image %d: loss %v at mask ratio 0.75", normPix, b, v)
			}
		}
	}
}
