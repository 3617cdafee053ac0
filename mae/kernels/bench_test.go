package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// gemmShape is one Linear call of a benchmark: m×k times k×n.
type gemmShape struct {
	name    string
	m, k, n int
}

// modelShapes are the ViT-B/16 encoder's GEMMs at batch 8 (8·197 = 1576
// rows): qkv, proj, fc1, fc2 as m×k×n.
var modelShapes = []gemmShape{
	{"qkv", 1576, 768, 2304},
	{"proj", 1576, 768, 768},
	{"fc1", 1576, 768, 3072},
	{"fc2", 1576, 3072, 768},
}

// onPath switches to path p for the rest of benchmark b.
func onPath(b *testing.B, p string) {
	saved := Path()
	b.Cleanup(func() { SetPath(saved) })
	if err := SetPath(p); err != nil {
		b.Fatal(err)
	}
}

// reportGFLOPs reports flops per iteration as GFLOP/s over b's run, and
// per second of process CPU time since cpu0 (cpuSeconds() after the timer
// reset): on a machine shared with other work the CPU-time figure of a
// GOMAXPROCS=1 run is the steadier one.
func reportGFLOPs(b *testing.B, flops float64, cpu0 float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(flops*float64(b.N)/(cpuSeconds()-cpu0)/1e9, "cpu-GFLOP/s")
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkGemm runs Gemm (C = A·Bᵀ, the Linear layout) at the model's
// shapes on every path; the path=generic runs are slow by design.
func BenchmarkGemm(b *testing.B) {
	for _, p := range Paths() {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("path=%s/%s_%dx%dx%d", p, s.name, s.m, s.k, s.n), func(b *testing.B) {
				onPath(b, p)
				r := rand.New(rand.NewPCG(1, 1))
				a, w := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k)
				c := make([]float32, s.m*s.n)
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					Gemm(false, true, s.m, s.n, s.k, 1, a, s.k, w, s.k, 0, c, s.n)
				}
				reportGFLOPs(b, 2*float64(s.m)*float64(s.n)*float64(s.k), cpu0)
			})
		}
	}
}

// BenchmarkGemmPagesAB alternates, call by call, Gemm with its packed B on
// huge pages (hugeFloats, as Gemm allocates it) and on ordinary 4 KiB heap
// pages, at the model's shapes on the current path (MAEEMBED_KERNEL) and
// GOMAXPROCS, and reports both per second of process CPU time and the
// median over call pairs of the 4 KiB time ÷ the huge-page time (above 1:
// huge pages are faster).
// GOMAXPROCS=1 MAEEMBED_KERNEL=avx2 go test ./mae/kernels -run '^$' -bench GemmPagesAB -benchtime 10x
func BenchmarkGemmPagesAB(b *testing.B) {
	for _, s := range modelShapes {
		b.Run(fmt.Sprintf("%s_%dx%dx%d", s.name, s.m, s.k, s.n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			a, w := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k)
			c := make([]float32, s.m*s.n)
			need := numPanels(s.n) * s.k * nr
			bufs := [2][]float32{hugeFloats(need), make([]float32, need)}
			var t [2]float64
			var ratios []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var d [2]float64
				for _, v := range []int{i % 2, 1 - i%2} {
					// Gemm takes the buffer it is given back from its pool
					// (one goroutine: the pool's private slot).
					packedBPool.Put(&bufs[v])
					c0 := cpuSeconds()
					Gemm(false, true, s.m, s.n, s.k, 1, a, s.k, w, s.k, 0, c, s.n)
					d[v] = cpuSeconds() - c0
					if got := packedBPool.Get().(*[]float32); &(*got)[0] != &bufs[v][0] {
						b.Fatal("Gemm did not use the buffer under test")
					}
				}
				t[0], t[1] = t[0]+d[0], t[1]+d[1]
				ratios = append(ratios, d[1]/d[0])
			}
			slices.Sort(ratios)
			fl := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N) / 1e9
			b.ReportMetric(fl/t[0], "huge-cpu-GFLOP/s")
			b.ReportMetric(fl/t[1], "4k-cpu-GFLOP/s")
			b.ReportMetric(ratios[len(ratios)/2], "4k/huge")
		})
	}
}

// benchLinear times the model's call at m×k×n: packed weights, bias, and
// exact GELU on fc1.
func benchLinear(b *testing.B, m, k, n int, name string) { benchLinearPrec(b, m, k, n, name, FP32) }

// benchLinearPrec is benchLinear with the weight in precision prec.
func benchLinearPrec(b *testing.B, m, k, n int, name string, prec Precision) {
	act := ActNone
	if name == "fc1" {
		act = ActGELU
	}
	r := rand.New(rand.NewPCG(1, 1))
	x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
	y := make([]float32, m*n)
	pw := PackLinear(w, n, k).Convert(prec)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		Linear(y, x, m, pw, bias, act, nil)
	}
	reportGFLOPs(b, 2*float64(m)*float64(n)*float64(k), cpu0)
}

// BenchmarkLinearSmall covers batch-1 (197 rows) and the masked encoder
// at batch 1 (50 rows) on the fastest path.
func BenchmarkLinearSmall(b *testing.B) {
	for _, m := range []int{197, 50} {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("%s_%dx%dx%d", s.name, m, s.k, s.n), func(b *testing.B) {
				benchLinear(b, m, s.k, s.n, s.name)
			})
		}
	}
}

// decoderShapes are the MAE decoder's GEMMs at batch 8 (512 wide, MLP
// 2048) and its prediction head, plus the masked encoder's (8·50 = 400
// rows): reconstruction's hot calls.
var decoderShapes = []gemmShape{
	{"qkv", 1576, 512, 1536},
	{"proj", 1576, 512, 512},
	{"fc1", 1576, 512, 2048},
	{"fc2", 1576, 2048, 512},
	{"pred", 1576, 512, 768},
	{"qkv", 400, 768, 2304},
	{"fc2", 400, 3072, 768},
}

// itemShapes are reconstruction's GEMMs in the items of a batch split
// across cores (mae's imagesPerItem): 4 images, 200 rows in the masked
// encoder and 788 in the decoder.
var itemShapes = []gemmShape{
	{"qkv", 200, 768, 2304},
	{"proj", 200, 768, 768},
	{"fc1", 200, 768, 3072},
	{"fc2", 200, 3072, 768},
	{"qkv", 788, 512, 1536},
	{"proj", 788, 512, 512},
	{"fc1", 788, 512, 2048},
	{"fc2", 788, 2048, 512},
	{"pred", 788, 512, 768},
}

// BenchmarkLinearDecoder is reconstruction's calls on the fastest path.
func BenchmarkLinearDecoder(b *testing.B) {
	for _, s := range decoderShapes {
		b.Run(fmt.Sprintf("%s_%dx%dx%d", s.name, s.m, s.k, s.n), func(b *testing.B) {
			benchLinear(b, s.m, s.k, s.n, s.name)
		})
	}
}

// BenchmarkLinear is the model's hot call at batch 8 on every path.
func BenchmarkLinear(b *testing.B) {
	for _, p := range Paths() {
		for _, s := range modelShapes {
			b.Run(fmt.Sprintf("path=%s/%s_%dx%dx%d", p, s.name, s.m, s.k, s.n), func(b *testing.B) {
				onPath(b, p)
				benchLinear(b, s.m, s.k, s.n, s.name)
			})
		}
	}
}

// BenchmarkLinearPrecision is BenchmarkLinear in each reduced precision
// (bf16: native VDPBF16PS on the avx512 path where the CPU has it, else
// bf16-rounded values through the float32 kernels; int8: VPDPBUSD on the
// avx512 path with AVX512_VNNI, VPMADDUBSW on avx2, else the pure-Go
// kernel — slow).
func BenchmarkLinearPrecision(b *testing.B) {
	for _, p := range Paths() {
		for _, prec := range []Precision{BF16, Int8} {
			for _, s := range modelShapes {
				b.Run(fmt.Sprintf("path=%s/prec=%v/%s_%dx%dx%d", p, prec, s.name, s.m, s.k, s.n), func(b *testing.B) {
					onPath(b, p)
					benchLinearPrec(b, s.m, s.k, s.n, s.name, prec)
				})
			}
		}
	}
}

// BenchmarkAttention runs float32 attention on every path, and int8
// attention (AttentionIn) where a path has it ("prec=int8"; int8
// "GFLOP/s" are integer operations).
func BenchmarkAttention(b *testing.B) {
	for _, p := range Paths() {
		for _, prec := range []Precision{FP32, Int8} {
			for _, cfg := range []struct{ tokens, heads, hd int }{{197, 12, 64}, {50, 12, 64}, {197, 16, 32}} {
				const batch = 8
				tokens, heads, hd := cfg.tokens, cfg.heads, cfg.hd
				name := fmt.Sprintf("path=%s/tokens=%d/heads=%dx%d", p, tokens, heads, hd)
				if prec != FP32 {
					name = fmt.Sprintf("path=%s/prec=%v/tokens=%d/heads=%dx%d", p, prec, tokens, heads, hd)
				}
				b.Run(name, func(b *testing.B) {
					onPath(b, p)
					if prec != FP32 && !attnI8(prec, hd) {
						b.Skipf("no %v attention on path %s", prec, p)
					}
					r := rand.New(rand.NewPCG(1, 1))
					qkv := randSlice(r, batch*tokens*3*heads*hd)
					out := make([]float32, batch*tokens*heads*hd)
					b.ResetTimer()
					cpu0 := cpuSeconds()
					for i := 0; i < b.N; i++ {
						AttentionIn(prec, out, qkv, batch, tokens, heads, hd)
					}
					reportGFLOPs(b, 4*float64(batch*heads)*float64(tokens*tokens)*float64(hd), cpu0)
				})
			}
		}
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	for _, p := range Paths() {
		b.Run("path="+p, func(b *testing.B) {
			onPath(b, p)
			r := rand.New(rand.NewPCG(1, 1))
			x := randSlice(r, 1576*768)
			g, be := randSlice(r, 768), randSlice(r, 768)
			b.SetBytes(int64(len(x) * 4))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				LayerNorm(x, x, 1576, 768, g, be, 1e-6)
			}
		})
	}
}

func BenchmarkGELU(b *testing.B) {
	for _, p := range Paths() {
		b.Run("path="+p, func(b *testing.B) {
			onPath(b, p)
			r := rand.New(rand.NewPCG(1, 1))
			src := randSlice(r, 1576*3072)
			x := make([]float32, len(src))
			b.SetBytes(int64(len(x) * 4))
			b.ResetTimer()
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

// BenchmarkLinearColdWarm measures what streaming the weights from memory
// costs at batch 1: the four encoder Linear layers of 12 ViT-B blocks at
// 197 rows, each block with its own weights (cold, as in a forward pass),
// each call made twice in a row, the second with its weight warm in the
// caches (L2/L3). It reports the median over passes of the first call's
// time ÷ the second's, per layer and for the pass (above 1: the cold
// weight costs that much), on the current path and GOMAXPROCS.
// GOMAXPROCS=2 go test ./mae/kernels -run '^$' -bench LinearColdWarm -benchtime 20x
func BenchmarkLinearColdWarm(b *testing.B) {
	const m = 197
	ls, x := blockLayers(12)
	y := make([]float32, m*3072)
	var ratios [5][]float64
	b.ResetTimer()
	for i := -1; i < b.N; i++ { // i = -1: warm-up
		var cold, warm [5]float64
		for li, l := range ls {
			act := ActNone
			if l.s.name == "fc1" {
				act = ActGELU
			}
			t0 := time.Now()
			Linear(y, x, m, l.w, l.bias, act, nil)
			t1 := time.Now()
			Linear(y, x, m, l.w, l.bias, act, nil)
			dc, dw := t1.Sub(t0).Seconds(), time.Since(t1).Seconds()
			cold[li%4] += dc
			warm[li%4] += dw
			cold[4] += dc
			warm[4] += dw
		}
		if i < 0 {
			continue
		}
		for k := range 5 {
			ratios[k] = append(ratios[k], cold[k]/warm[k])
		}
	}
	for k, name := range []string{"qkv", "proj", "fc1", "fc2", "pass"} {
		x := slices.Clone(ratios[k])
		slices.Sort(x)
		b.ReportMetric(x[len(x)/2], name+"-cold/warm")
	}
}

// blockLayer is one encoder Linear of a ViT-B block, with its own weights.
type blockLayer struct {
	s    gemmShape
	w    *Packed
	bias []float32
}

// blockLayers returns the four encoder Linear layers (modelShapes) of the
// given number of ViT-B blocks, each with its own random weights, so that
// a pass over them reads every weight cold from memory as a forward pass
// does, and an input x of 197 rows for any of them.
func blockLayers(blocks int) ([]blockLayer, []float32) {
	r := rand.New(rand.NewPCG(1, 1))
	var ls []blockLayer
	for range blocks {
		for _, s := range modelShapes {
			ls = append(ls, blockLayer{s, PackLinear(randSlice(r, s.n*s.k), s.n, s.k), randSlice(r, s.n)})
		}
	}
	return ls, randSlice(r, 197*3072)
}
