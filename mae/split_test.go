package mae

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/maeembed/maeembed/mae/kernels"
)

// A batch split across cores by image (split) gives bitwise the results of
// one batch on one core and of each image alone, in every precision, for
// embedding in each pool and for reconstruction: per-row work must not
// depend on which goroutine ran it or with which other images. That holds
// but where Strassen–Winograd runs (its rows mix within a call; these
// shapes are below its thresholds anyway): it is off here, so a larger
// fixture keeps testing the split alone.
func TestSplitKeepsResults(t *testing.T) {
	defer kernels.SetStrassen(false)()
	c := Config{ImageSize: 64, PatchSize: 8, Channels: 3, Dim: 192, Depth: 2, Heads: 3, MLPDim: 768,
		DecDim: 128, DecDepth: 1, DecHeads: 4, DecMLPDim: 512, Eps: 1e-6, MaskRatio: 0.75}
	// 9 images: at GOMAXPROCS=2, 8 run as items (of 4 images: see
	// imagesPerItem) and the last one on all cores.
	const n = 9
	l := c.NumPatches()
	patches := randPatches(n, c, 3)
	noise := make([]float32, n*l)
	for i := 0; i < n; i++ {
		NoiseRow(noise[i*l:(i+1)*l], 1, int64(i))
	}
	for _, prec := range []kernels.Precision{kernels.FP32, kernels.BF16, kernels.Int8} {
		m := perturbedModel(t, c, true, 1, 2)
		if err := m.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		// run returns the outputs of one batch of images [b0, b0+k) at
		// GOMAXPROCS procs: embeddings in each pool, then latent,
		// prediction and loss.
		run := func(procs, b0, k int) [][]float32 {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			var outs [][]float32
			p := patches[b0*l*c.PatchDim() : (b0+k)*l*c.PatchDim()]
			for _, pool := range []Pool{PoolMean, PoolCLS, PoolTokens} {
				out := make([]float32, k*m.EmbedDim(pool))
				if err := m.Embed(out, p, k, pool); err != nil {
					t.Fatal(err)
				}
				outs = append(outs, out)
			}
			r, err := m.Reconstruct(p, noise[b0*l:(b0+k)*l], k, 0.75, true)
			if err != nil {
				t.Fatal(err)
			}
			return append(outs, r.Latent, r.Pred, r.Loss)
		}
		want := run(1, 0, n)
		for _, procs := range []int{2, 3} {
			sameOutputs(t, fmt.Sprintf("%v at GOMAXPROCS=%d", prec, procs), run(procs, 0, n), want, n, 0)
		}
		for b := 0; b < n; b++ {
			sameOutputs(t, fmt.Sprintf("%v image %d alone", prec, b), run(2, b, 1), want, n, b)
		}
	}
}

// sameOutputs compares run's outputs for images from b0 with those of
// all n images in want (each output is n equal parts), bit for bit.
func sameOutputs(t *testing.T, what string, got, want [][]float32, n, b0 int) {
	t.Helper()
	names := []string{"embed mean", "embed cls", "embed tokens", "latent", "pred", "loss"}
	for i := range want {
		per := len(want[i]) / n
		w := want[i][b0*per : b0*per+len(got[i])]
		for j := range w {
			if math.Float32bits(got[i][j]) != math.Float32bits(w[j]) {
				t.Errorf("%s: %s [%d] = %v, want bitwise %v", what, names[i], j, got[i][j], w[j])
				break
			}
		}
	}
}
