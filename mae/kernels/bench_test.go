package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// modelShapes are the ViT-B/16 encoder's GEMMs at batch 8 (8·197 = 1576
// rows): qkv, proj, fc1, fc2 as m×k×n.
var modelShapes = []struct {
	name    string
	m, k, n int
}{
	{"qkv", 1576, 768, 2304},
	{"proj", 1576, 768, 768},
	{"fc1", 1576, 768, 3072},
	{"fc2", 1576, 3072, 768},
}

// BenchmarkGemm runs Gemm (C = A·Bᵀ, the Linear layout) at the model's
// shapes on every path; the path=generic runs are slow by design.
func BenchmarkGemm(b *testing.B) {
	for _, p := range Paths() {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("path=%s/%s_%dx%dx%d", p, s.name, s.m, s.k, s.n), func(b *testing.B) {
				saved := Path()
				defer SetPath(saved)
				SetPath(p)
				r := rand.New(rand.NewPCG(1, 1))
				a, w := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k)
				c := make([]float32, s.m*s.n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Gemm(false, true, s.m, s.n, s.k, 1, a, s.k, w, s.k, 0, c, s.n)
				}
				b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkLinearSmall covers batch-1 (197 rows) and the masked encoder
// at batch 1 (50 rows) on the fastest path.
func BenchmarkLinearSmall(b *testing.B) {
	for _, m := range []int{197, 50} {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("%s_%dx%dx%d", s.name, m, s.k, s.n), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				x, w, bias := randSlice(r, m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
				y := make([]float32, m*s.n)
				pw := PackLinear(w, s.n, s.k)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Linear(y, x, m, pw, bias, ActNone, nil)
				}
				b.ReportMetric(2*float64(m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkLinear is the model's hot call: packed weights, fused epilogue.
func BenchmarkLinear(b *testing.B) {
	for _, p := range Paths() {
		for _, s := range modelShapes {
			act := ActNone
			if s.name == "fc1" {
				act = ActGELU
			}
			b.Run(fmt.Sprintf("path=%s/%s_%dx%dx%d", p, s.name, s.m, s.k, s.n), func(b *testing.B) {
				saved := Path()
				defer SetPath(saved)
				SetPath(p)
				r := rand.New(rand.NewPCG(1, 1))
				x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
				y := make([]float32, s.m*s.n)
				pw := PackLinear(w, s.n, s.k)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Linear(y, x, s.m, pw, bias, act, nil)
				}
				b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkAttention(b *testing.B) {
	for _, p := range Paths() {
		for _, tokens := range []int{197, 50} {
			const batch, heads, hd = 8, 12, 64
			b.Run(fmt.Sprintf("path=%s/tokens=%d", p, tokens), func(b *testing.B) {
				saved := Path()
				defer SetPath(saved)
				SetPath(p)
				r := rand.New(rand.NewPCG(1, 1))
				qkv := randSlice(r, batch*tokens*3*heads*hd)
				out := make([]float32, batch*tokens*heads*hd)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Attention(out, qkv, batch, tokens, heads, hd)
				}
				flops := 4 * float64(batch*heads) * float64(tokens*tokens) * hd
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	for _, p := range Paths() {
		b.Run("path="+p, func(b *testing.B) {
			saved := Path()
			defer SetPath(saved)
			SetPath(p)
			r := rand.New(rand.NewPCG(1, 1))
			x := randSlice(r, 1576*768)
			g, be := randSlice(r, 768), randSlice(r, 768)
			b.SetBytes(int64(len(x) * 4))
			for i := 0; i < b.N; i++ {
				LayerNorm(x, x, 1576, 768, g, be, 1e-6)
			}
		})
	}
}

func BenchmarkGELU(b *testing.B) {
	for _, p := range Paths() {
		b.Run("path="+p, func(b *testing.B) {
			saved := Path()
			defer SetPath(saved)
			SetPath(p)
			r := rand.New(rand.NewPCG(1, 1))
			src := randSlice(r, 1576*3072)
			x := make([]float32, len(src))
			b.SetBytes(int64(len(x) * 4))
			for i := 0; i < b.N; i++ {
				// Fresh input each time: GELU applied repeatedly drives
				// values into denormals, which would measure the FPU's slow
				// path instead of the kernel.
				copy(x, src)
				GELU(x)
			}
		})
	}
}
