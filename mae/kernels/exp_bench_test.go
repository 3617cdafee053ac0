package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkExpLda(b *testing.B) {
	for _, pad := range []int{0, 16} {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("path=avx2/%s-pad%d_", s.name, pad), func(b *testing.B) {
				onPath(b, "avx2")
				r := rand.New(rand.NewPCG(1, 1))
				lda := s.k + pad
				a, w := randSlice(r, s.m*lda), randSlice(r, s.n*s.k)
				pw := PackLinear(w, s.n, s.k)
				c := make([]float32, s.m*s.n)
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					runGemm(s.m, s.n, s.k, 1, a, lda, false, pw.data, 0, c, s.n, nil, ActNone, nil)
				}
				reportGFLOPs(b, 2*float64(s.m)*float64(s.n)*float64(s.k), cpu0)
			})
		}
	}
}

func BenchmarkExpShape(b *testing.B) {
	for _, s := range []struct{ m, k, n int }{{96, 512, 256}, {96, 512, 32}, {1576, 512, 256}, {96, 3072, 768}, {1576, 768, 256}} {
		b.Run(fmt.Sprintf("path=avx2/%dx%dx%d", s.m, s.k, s.n), func(b *testing.B) {
			onPath(b, "avx2")
			r := rand.New(rand.NewPCG(1, 1))
			lda := s.k
			a, w := randSlice(r, s.m*lda), randSlice(r, s.n*s.k)
			pw := PackLinear(w, s.n, s.k)
			c := make([]float32, s.m*s.n)
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				runGemm(s.m, s.n, s.k, 1, a, lda, false, pw.data, 0, c, s.n, nil, ActNone, nil)
			}
			reportGFLOPs(b, 2*float64(s.m)*float64(s.n)*float64(s.k), cpu0)
		})
	}
}

func BenchmarkExpAct(b *testing.B) {
	for _, act := range []Activation{ActNone, ActGELU} {
		b.Run(fmt.Sprintf("path=avx2/fc1_act%d", act), func(b *testing.B) {
			onPath(b, "avx2")
			m, k, n := 1576, 768, 3072
			r := rand.New(rand.NewPCG(1, 1))
			x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
			y := make([]float32, m*n)
			pw := PackLinear(w, n, k)
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				Linear(y, x, m, pw, bias, act, nil)
			}
			reportGFLOPs(b, 2*float64(m)*float64(n)*float64(k), cpu0)
		})
	}
}

func BenchmarkExpGelu(b *testing.B) {
	for _, amp := range []float32{3, 12, 13.5, 20} {
		b.Run(fmt.Sprintf("path=avx2/amp%g", amp), func(b *testing.B) {
			onPath(b, "avx2")
			r := rand.New(rand.NewPCG(1, 1))
			src := randSlice(r, 6*32*1000)
			for i := range src {
				src[i] *= amp
			}
			x := make([]float32, len(src))
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				copy(x, src)
				for t := 0; t < 1000; t++ {
					geluTileAVX2(&x[t*192], 32, 6)
				}
			}
			reportGFLOPs(b, float64(len(src)), cpu0)
		})
	}
}
