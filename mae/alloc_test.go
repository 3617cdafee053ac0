package mae

import (
	"testing"

	"github.com/maeembed/maeembed/mae/kernels"
)

// The embedding hot path reuses its buffers: nothing is allocated per batch
// after the first one, in every precision.
func TestEmbedAllocatesNothingAfterWarmUp(t *testing.T) {
	// Large enough that the kernels split work across goroutines.
	c := Config{ImageSize: 64, PatchSize: 8, Channels: 3, Dim: 192, Depth: 2, Heads: 3, MLPDim: 768, Eps: 1e-6, MaskRatio: 0.75}
	for _, prec := range []kernels.Precision{kernels.FP32, kernels.BF16, kernels.Int8} {
		m, err := New(c, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		n := 4
		patches := randPatches(n, c, 1)
		for _, pool := range []Pool{PoolMean, PoolTokens} {
			out := make([]float32, n*m.EmbedDim(pool))
			if err := m.Embed(out, patches, n, pool); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(5, func() {
				if err := m.Embed(out, patches, n, pool); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v, pool %s: %v allocations per batch", prec, pool, allocs)
			}
		}
	}
}
