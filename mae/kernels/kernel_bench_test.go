package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkMicroKernel measures one micro-kernel call with A and B in L1:
// the ceiling the blocked driver can reach on one core.
// The bf16 kernel's k counts words of two bf16 (two multiply-adds each),
// the int8 kernel's words of four int8.
func BenchmarkMicroKernel(b *testing.B) {
	ims := map[string]*impl{}
	for _, name := range Paths() {
		ims[name] = paths[name]
	}
	if bf16Impl != nil {
		ims["avx512-bf16"] = bf16Impl
	}
	if i8Impl != nil {
		ims["avx512-vnni"] = i8Impl
	}
	if i8AVX2Impl != nil {
		ims["avx2-int8"] = i8AVX2Impl
	}
	for name, im := range ims {
		flops := 2 * float64(im.mr*nr*256)
		switch im {
		case bf16Impl:
			flops *= 2
		case i8Impl, i8AVX2Impl:
			flops *= 4 // integer operations
		}
		b.Run("path="+name, func(b *testing.B) {
			const k = 256
			r := rand.New(rand.NewPCG(1, 1))
			a := randSlice(r, im.mr*k)
			bp := randSlice(r, k*nr)
			c := make([]float32, im.mr*nr)
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				im.kernel(k, &a[0], 1, im.mr, &bp[0], &c[0], nr, 1, 0, nil)
			}
			reportGFLOPs(b, flops, cpu0)
		})
	}
}

// BenchmarkGELUTile measures the GEMM epilogue's GELU of one micro-tile
// (mr rows of nr floats at fc1's row stride, 3072) in L1, against the
// slice GELU over the same rows (slice) and the input copy alone (copy,
// to subtract): the figure that interleaving vectors would change.
func BenchmarkGELUTile(b *testing.B) {
	for _, name := range Paths() {
		im := paths[name]
		if im.geluTile == nil {
			continue
		}
		for _, mode := range []string{"tile", "slice", "copy"} {
			b.Run(fmt.Sprintf("path=%s/%s", name, mode), func(b *testing.B) {
				const ldc = 3072
				r := rand.New(rand.NewPCG(1, 1))
				src := randSlice(r, im.mr*nr)
				for i := range src {
					src[i] *= 3
				}
				c := make([]float32, (im.mr-1)*ldc+nr)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// Fresh input each time (see BenchmarkGELU).
					for row := 0; row < im.mr; row++ {
						copy(c[row*ldc:row*ldc+nr], src[row*nr:])
					}
					switch mode {
					case "tile":
						im.geluTile(&c[0], ldc, im.mr)
					case "slice":
						for row := 0; row < im.mr; row++ {
							im.gelu(c[row*ldc : row*ldc+nr])
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(im.mr*nr/8), "ns/8floats")
			})
		}
	}
}
