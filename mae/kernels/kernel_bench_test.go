package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMicroKernel measures one micro-kernel call with A and B in L1:
// the ceiling the blocked driver can reach on one core.
func BenchmarkMicroKernel(b *testing.B) {
	for _, name := range Paths() {
		im := paths[name]
		b.Run("path="+name, func(b *testing.B) {
			const k = 256
			r := rand.New(rand.NewPCG(1, 1))
			a := randSlice(r, im.mr*k)
			bp := randSlice(r, k*nr)
			c := make([]float32, im.mr*nr)
			for i := 0; i < b.N; i++ {
				im.kernel(k, &a[0], 1, im.mr, &bp[0], &c[0], nr, 1, 0, nil)
			}
			reportGFLOPs(b, 2*float64(im.mr*nr*k))
		})
	}
}
