package kernels

import (
	"fmt"
	"github.com/maeembed/maeembed/internal/alloctest"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// forEachPath runs f once per code path this CPU supports.
func forEachPath(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := Path()
	defer SetPath(saved)
	for _, p := range Paths() {
		if err := SetPath(p); err != nil {
			t.Fatal(err)
		}
		t.Run(p, f)
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// refGemm is the naive float64 definition of Gemm.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*ldc+j] = v
		}
	}
	return out
}

// within checks got against want with a tolerance scaled by the size of
// the sum (k terms of unit-variance products).
func within(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	bad := 0
	for i := range want {
		g, w := float64(got[i]), want[i]
		if math.IsNaN(w) != math.IsNaN(g) || math.Abs(g-w) > tol*(1+math.Abs(w)) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %v, want %v", what, i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off", what, bad, len(want))
	}
}

func TestGemmShapes(t *testing.T) {
	type shape struct{ m, n, k int }
	shapes := []shape{{1, 1, 1}, {1, 1, 7}, {3, 5, 2}, {13, 33, 17}, {12, 32, 256}, {25, 65, 300},
		{37, 70, 513}, {100, 31, 1030}, {5, 200, 3001}, {130, 97, 64}, {1, 300, 40}, {300, 1, 40}}
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, s := range shapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 2}, {-1.5, 1}} {
					// Leading dimensions larger than the operands.
					ra, ca := s.m, s.k
					if tr[0] {
						ra, ca = s.k, s.m
					}
					rb, cb := s.k, s.n
					if tr[1] {
						rb, cb = s.n, s.k
					}
					lda, ldb, ldc := ca+3, cb+1, s.n+5
					a := randSlice(r, (ra-1)*lda+ca)
					b := randSlice(r, (rb-1)*ldb+cb)
					c := randSlice(r, (s.m-1)*ldc+s.n)
					want := refGemm(tr[0], tr[1], s.m, s.n, s.k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					Gemm(tr[0], tr[1], s.m, s.n, s.k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					tol := 1e-6 * math.Sqrt(float64(s.k)) * 4
					within(t, fmt.Sprintf("%v tA=%v tB=%v α=%v β=%v", s, tr[0], tr[1], ab[0], ab[1]), c, want, tol)
				}
			}
		}
	})
}

func TestGemmNaNInf(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		const m, n, k = 20, 40, 50
		r := rand.New(rand.NewPCG(3, 4))
		a, b := randSlice(r, m*k), randSlice(r, k*n)
		a[3*k+7] = float32(math.NaN())  // row 3 of C becomes NaN
		b[5*n+9] = float32(math.Inf(1)) // column 9 becomes ±Inf (or NaN in row 3)
		c := make([]float32, m*n)
		for i := range c {
			c[i] = float32(math.NaN()) // beta = 0 must not read C
		}
		Gemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				v := float64(c[i*n+j])
				switch {
				case i == 3:
					if !math.IsNaN(v) {
						t.Fatalf("C[%d,%d] = %v, want NaN", i, j, v)
					}
				case j == 9:
					if !math.IsInf(v, 0) {
						t.Fatalf("C[%d,%d] = %v, want ±Inf", i, j, v)
					}
				default:
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("C[%d,%d] = %v, want finite", i, j, v)
					}
				}
			}
		}
		// beta != 0 does read C: a NaN there propagates.
		c2 := make([]float32, m*n)
		c2[7] = float32(math.NaN())
		Gemm(false, false, m, n, k, 1, a, k, b, n, 1, c2, n)
		if !math.IsNaN(float64(c2[7])) {
			t.Fatalf("beta=1: NaN in C was dropped")
		}
	})
}

func TestLinearEpilogues(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {7, 45, 33}, {50, 768, 300}, {197, 100, 768}} {
			w := randSlice(r, s.n*s.k)
			x := randSlice(r, s.m*s.k)
			bias := randSlice(r, s.n)
			res := randSlice(r, s.m*s.n)
			p := PackLinear(w, s.n, s.k)
			base := refGemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, make([]float32, s.m*s.n), s.n)
			checkEpilogues(t, fmt.Sprint(s), p, x, bias, res, s.m, base, 4e-6*math.Sqrt(float64(s.k)))
		}
	})
}

// checkEpilogues runs Linear(y, x, m, p, ...) with every epilogue (GELU or
// not, bias or not, residual none, separate or y itself) against base, the
// float64 x·Wᵀ, within tol.
func checkEpilogues(t *testing.T, what string, p *Packed, x, bias, res []float32, m int, base []float64, tol float64) {
	t.Helper()
	n := p.N
	for _, act := range []Activation{ActNone, ActGELU} {
		for _, withBias := range []bool{false, true} {
			for _, resMode := range []string{"none", "separate", "alias"} {
				want := make([]float64, len(base))
				for i := range want {
					v := base[i]
					if withBias {
						v += float64(bias[i%n])
					}
					if act == ActGELU {
						v = geluExact(v)
					}
					if resMode != "none" {
						v += float64(res[i])
					}
					want[i] = v
				}
				y := make([]float32, m*n)
				var rs []float32
				switch resMode {
				case "separate":
					rs = res
				case "alias":
					copy(y, res)
					rs = y
				}
				var bs []float32
				if withBias {
					bs = bias
				}
				Linear(y, x, m, p, bs, act, rs)
				within(t, fmt.Sprintf("%s act=%d bias=%v res=%s", what, act, withBias, resMode), y, want, tol)
			}
		}
	}
}

func TestGELUAccuracy(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		var xs []float32
		for v := -12.0; v <= 12; v += 0.00037 {
			xs = append(xs, float32(v))
		}
		xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 30, -30, 1e6, -1e6, float32(math.Inf(1)))
		// Past ±12, where the AVX2 helpers switch to max(x, 0) at 13.1.
		for v := 12.0; v <= 20; v += 0.0011 {
			xs = append(xs, float32(v), float32(-v))
		}
		xs = append(xs, 13.1, -13.1, math.Nextafter32(13.1, 20), -math.Nextafter32(13.1, 20))
		y := append([]float32(nil), xs...)
		GELU(y)
		if im := current.Load(); im.geluTile != nil {
			// The Linear epilogue's tile version, on the same values: whole
			// tiles of 6 rows × nr, then compared with GELU's.
			n := len(xs) / (6 * nr) * (6 * nr)
			yt := append([]float32(nil), xs[:n]...)
			for i := 0; i < n; i += 6 * nr {
				im.geluTile(&yt[i], nr, 6)
			}
			for i := range yt {
				if yt[i] != y[i] && !(math.IsNaN(float64(yt[i])) && math.IsNaN(float64(y[i]))) {
					t.Fatalf("geluTile(%v) = %v, GELU gives %v", xs[i], yt[i], y[i])
				}
			}
		}
		worst := 0.0
		for i, x := range xs {
			want := geluExact(float64(x))
			got := float64(y[i])
			var err float64
			if got == want {
				err = 0
			} else if math.Abs(want) < 1e-30 {
				err = math.Abs(got-want) / 1e-30
			} else {
				err = math.Abs(got-want) / math.Abs(want)
			}
			if err > worst {
				worst = err
			}
			if !(err <= 1e-6) {
				t.Fatalf("GELU(%v) = %v, want %v (rel err %.3g)", x, got, want, err)
			}
		}
		t.Logf("worst relative error %.3g", worst)
		if testing.Verbose() {
			for _, lim := range []float64{1, 3, 6, 9, 12} {
				w := 0.0
				for i, x := range xs {
					if math.Abs(float64(x)) <= lim && lim-math.Abs(float64(x)) < 3 {
						want := geluExact(float64(x))
						if want != 0 {
							w = math.Max(w, math.Abs(float64(y[i])-want)/math.Abs(want))
						}
					}
				}
				t.Logf("|x| in (%v-3, %v]: worst relative error %.3g", lim, lim, w)
			}
		}
		nan := []float32{float32(math.NaN()), float32(math.Inf(-1))}
		GELU(nan)
		if !math.IsNaN(float64(nan[0])) {
			t.Errorf("GELU(NaN) = %v", nan[0])
		}
	})
}

func refSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	out := make([]float64, len(x))
	var s float64
	for i, v := range x {
		out[i] = math.Exp(float64(v) - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func TestSoftmax(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range []int{1, 2, 15, 16, 17, 197, 1000} {
			x := randSlice(r, n)
			for i := range x {
				x[i] = x[i]*10 + 80 // large values: would overflow without the max
			}
			want := refSoftmax(x)
			Softmax(x)
			within(t, fmt.Sprint("n=", n), x, want, 1e-6)
		}
		x := []float32{1, float32(math.Inf(-1)), 2}
		want := refSoftmax(x)
		Softmax(x)
		within(t, "-Inf entry", x, want, 1e-6)
		inf := float32(math.Inf(1))
		specials := [][]float32{{1, float32(math.NaN()), 2}, {1, inf, 2}, {-inf, -inf, -inf}}
		// The same in long rows, at every position: the assembly keeps
		// four running maxima over 32 floats a step and takes exp of 16.
		for _, n := range []int{33, 197} {
			for pos := 0; pos < n; pos++ {
				for _, v := range []float32{float32(math.NaN()), inf} {
					x := randSlice(r, n)
					x[pos] = v
					specials = append(specials, x)
				}
				x := randSlice(r, n)
				x[pos] = -inf
				want := refSoftmax(x)
				Softmax(x)
				within(t, fmt.Sprint("-Inf at ", pos, " of ", n), x, want, 1e-6)
			}
			x := make([]float32, n)
			for i := range x {
				x[i] = -inf
			}
			specials = append(specials, x)
		}
		for _, x := range specials {
			in := fmt.Sprint(x)
			Softmax(x)
			for _, v := range x {
				if !math.IsNaN(float64(v)) {
					t.Errorf("softmax(%s) = %v, want all NaN (as torch)", in, x)
					break
				}
			}
		}
	})
}

func TestLayerNorm(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, s := range []struct{ rows, d int }{{1, 1}, {3, 7}, {197, 768}, {5, 1000}} {
			x := randSlice(r, s.rows*s.d)
			for i := range x {
				x[i] = x[i]*3 + 5 // offset mean: a naive E[x²]−E[x]² would lose digits
			}
			gamma, beta := randSlice(r, s.d), randSlice(r, s.d)
			want := make([]float64, len(x))
			for i := 0; i < s.rows; i++ {
				row := x[i*s.d : i*s.d+s.d]
				var mean, v float64
				for _, e := range row {
					mean += float64(e)
				}
				mean /= float64(s.d)
				for _, e := range row {
					v += (float64(e) - mean) * (float64(e) - mean)
				}
				v /= float64(s.d)
				for j, e := range row {
					want[i*s.d+j] = (float64(e)-mean)/math.Sqrt(v+1e-6)*float64(gamma[j]) + float64(beta[j])
				}
			}
			y := make([]float32, len(x))
			LayerNorm(y, x, s.rows, s.d, gamma, beta, 1e-6)
			within(t, fmt.Sprint(s), y, want, 2e-5)
			LayerNorm(x, x, s.rows, s.d, gamma, beta, 1e-6) // in place
			within(t, fmt.Sprint(s, " in place"), x, want, 2e-5)
		}
	})
}

// refAttention is the naive float64 multi-head attention over timm's layout.
func refAttention(qkv []float32, batch, tokens, heads, hd int) []float64 {
	D := heads * hd
	out := make([]float64, batch*tokens*D)
	scale := 1 / math.Sqrt(float64(hd))
	at := func(b, t, s, h, d int) float64 { return float64(qkv[(b*tokens+t)*3*D+s*D+h*hd+d]) }
	for b := 0; b < batch; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < tokens; i++ {
				sc := make([]float64, tokens)
				m := math.Inf(-1)
				for j := range sc {
					var s float64
					for d := 0; d < hd; d++ {
						s += at(b, i, 0, h, d) * at(b, j, 1, h, d)
					}
					sc[j] = s * scale
					m = math.Max(m, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - m)
					z += sc[j]
				}
				for d := 0; d < hd; d++ {
					var o float64
					for j := range sc {
						o += sc[j] / z * at(b, j, 2, h, d)
					}
					out[(b*tokens+i)*D+h*hd+d] = o
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, s := range []struct{ b, t, h, hd int }{{1, 1, 1, 1}, {2, 5, 3, 4}, {2, 50, 12, 64}, {1, 197, 2, 64}, {3, 33, 4, 40}} {
			qkv := randSlice(r, s.b*s.t*3*s.h*s.hd)
			want := refAttention(qkv, s.b, s.t, s.h, s.hd)
			out := make([]float32, len(want))
			Attention(out, qkv, s.b, s.t, s.h, s.hd)
			within(t, fmt.Sprint(s), out, want, 2e-5)
		}
	})
}

// TestNoAllocs: once warm, no kernel allocates per call, on any path or
// precision. It counts only the kernels' own allocations, with the
// collector off on one P (alloctest), so a loaded machine cannot change the
// result; BenchmarkNoAllocs reports the same calls' allocations per op.
func TestNoAllocs(t *testing.T) {
	if alloctest.Race {
		t.Skip("sync.Pool is randomised under the race detector")
	}
	defer SetStrassen(true)() // for NormLinearStrassen on every path
	forEachPath(t, func(t *testing.T) {
		for name, f := range noAllocCases() {
			if a := alloctest.PerRun(10, f, kernelsPkg); a != 0 {
				t.Errorf("%s: %v allocations per call", name, a)
			}
		}
	})
}

const kernelsPkg = "github.com/maeembed/maeembed/mae/kernels"

// noAllocCases are the hot calls at sizes where the kernels split work
// across goroutines when there are several Ps (the benchmark; the test runs
// on one P, where each job runs on the caller).
func noAllocCases() map[string]func() {
	r := rand.New(rand.NewPCG(13, 14))
	const m, n, k = 197, 256, 192
	x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
	y := make([]float32, m*n)
	p := PackLinear(w, n, k)
	pb, pi := p.Convert(BF16), p.Convert(Int8)
	qkv := randSlice(r, 2*50*3*64*4)
	out := make([]float32, 2*50*64*4)
	gamma, beta := randSlice(r, n), randSlice(r, n)
	h := make([]float32, m*k)
	// A shape that runs Strassen–Winograd on every path (with it on).
	const sm, sn, sk = 197, 512, 2048
	sx, sh, sy, sg := randSlice(r, sm*sk), make([]float32, sm*sk), make([]float32, sm*sn), randSlice(r, sk)
	sp := PackLinear(randSlice(r, sn*sk), sn, sk)
	// Items of Parallel: their kernel calls go through the crew (board,
	// teams) even on one P, where the caller runs every item.
	const pn, pt, pd = 3, 50, 64
	items := &itemsWork{x: randSlice(r, pn*pt*pd), out: make([]float32, pn*pt*pd),
		qkvW: PackLinear(randSlice(r, 3*pd*pd), 3*pd, pd), pW: PackLinear(randSlice(r, pd*pd), pd, pd),
		gamma: randSlice(r, pd), bias: randSlice(r, 3*pd), done: make([]atomic.Int32, pn),
		scratch: [][]float32{make([]float32, 5*pt*pd), make([]float32, 5*pt*pd)}, tokens: pt, d: pd, heads: 2}
	return map[string]func(){
		"Parallel":   func() { Parallel(pn, 1, len(items.scratch), items) },
		"Gemm":       func() { Gemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n) },
		"Linear":     func() { Linear(y, x, m, p, bias, ActGELU, y) },
		"LinearBF16": func() { Linear(y, x, m, pb, bias, ActGELU, y) },
		"LinearInt8": func() { Linear(y, x, m, pi, bias, ActNone, y) },
		"Attention":  func() { Attention(out, qkv, 2, 50, 4, 64) },
		// Int8 attention where the path has it, float32 elsewhere.
		"AttentionInt8": func() { AttentionIn(Int8, out, qkv, 2, 50, 4, 64) },
		"LayerNorm":     func() { LayerNorm(y, y, m, n, gamma, beta, 1e-6) },
		"NormLinear":    func() { All.NormLinear(y, h, x, m, Norm{gamma[:k], beta[:k], 1e-6}, p, bias, ActGELU) },
		"NormLinearStrassen": func() {
			All.NormLinear(sy, sh, sx, sm, Norm{sg, sg, 1e-6}, sp, nil, ActNone)
		},
		"GELU": func() { GELU(y) },
	}
}

// BenchmarkNoAllocs reports allocs/op of TestNoAllocs's calls on the
// default path (0 once warm; process-wide, so a collection during the run
// can show a few).
// go test ./mae/kernels -run '^$' -bench NoAllocs -benchmem
func BenchmarkNoAllocs(b *testing.B) {
	defer SetStrassen(true)() // for NormLinearStrassen
	for name, f := range noAllocCases() {
		b.Run(name, func(b *testing.B) {
			f()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f()
			}
		})
	}
}

// TestPaths logs the paths this CPU runs (the bench script prints it) and
// checks that forcing each one takes effect.
func TestPaths(t *testing.T) {
	saved := Path()
	defer SetPath(saved)
	bf16, i8 := "bf16 via fp32 kernels (no AVX512_BF16)", "int8 pure Go (no AVX512_VNNI)"
	if bf16Impl != nil {
		bf16 = "bf16 VDPBF16PS on avx512"
	}
	if i8Impl != nil {
		i8 = "int8 VPDPBUSD on avx512"
	}
	if i8AVX2Impl != nil {
		i8 += ", VPMADDUBSW (quad format) and int8 attention scores on avx2"
	}
	t.Logf("paths: %v (default %s); %s; %s", Paths(), saved, bf16, i8)
	for _, p := range Paths() {
		if err := SetPath(p); err != nil || Path() != p {
			t.Fatalf("SetPath(%q) = %v, Path() = %q", p, err, Path())
		}
	}
	if err := SetPath("sse9"); err == nil {
		t.Fatal("SetPath accepted an unknown path")
	}
}

// TestGemmPackedA covers the A-packing path (taken when lda is a multiple
// of 512 floats on paths whose tile has more than 8 rows), including column
// counts that are not multiples of 16; on the other paths the same shapes
// read A in place.
func TestGemmPackedA(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		mr := current.Load().mr
		for _, s := range []struct{ m, n, k, lda int }{{37, 45, 16, 512}, {25, 33, 300, 512}, {13, 64, 1024, 1024}, {50, 70, 1000, 1024}, {1, 5, 7, 512}} {
			if needPackA(false, s.lda, mr) != (mr > 8) {
				t.Fatalf("lda %d does not take the packing path", s.lda)
			}
			a := randSlice(r, (s.m-1)*s.lda+s.k)
			b := randSlice(r, s.k*s.n)
			c := randSlice(r, s.m*s.n)
			want := refGemm(false, false, s.m, s.n, s.k, 1, a, s.lda, b, s.n, 0.5, c, s.n)
			Gemm(false, false, s.m, s.n, s.k, 1, a, s.lda, b, s.n, 0.5, c, s.n)
			within(t, fmt.Sprint(s), c, want, 4e-6*math.Sqrt(float64(s.k)))
		}
	})
}

// TestConcurrentCalls runs GEMMs and attention from several goroutines at
// once: the shared worker pool must neither deadlock nor mix up jobs.
func TestConcurrentCalls(t *testing.T) {
	const m, n, k = 70, 90, 300
	r := rand.New(rand.NewPCG(19, 20))
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := refGemm(false, false, m, n, k, 1, a, k, b, n, 0, make([]float32, m*n), n)
	qkv := randSlice(r, 2*20*3*2*16)
	wantAtt := refAttention(qkv, 2, 20, 2, 16)
	done := make(chan []float32)
	for g := 0; g < 6; g++ {
		go func() {
			c := make([]float32, m*n)
			for i := 0; i < 20; i++ {
				Gemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
				out := make([]float32, len(wantAtt))
				Attention(out, qkv, 2, 20, 2, 16)
				for j := range out {
					if math.Abs(float64(out[j])-wantAtt[j]) > 1e-4 {
						c[0] = float32(math.NaN()) // reported below
					}
				}
			}
			done <- c
		}()
	}
	for g := 0; g < 6; g++ {
		within(t, fmt.Sprint("goroutine ", g), <-done, want, 1e-4)
	}
}

// TestEnvForcesPath runs this test binary again with MAEEMBED_KERNEL set
// and checks that init picked that path.
func TestEnvForcesPath(t *testing.T) {
	if os.Getenv("MAEEMBED_KERNEL_CHILD") != "" {
		if err := EnvError(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("path=%s\n", Path())
		return
	}
	for i, p := range Paths() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvForcesPath$")
		env := p
		if i%2 == 0 { // any letter case names the path
			env = strings.ToUpper(p)
		}
		cmd.Env = append(os.Environ(), "MAEEMBED_KERNEL="+env, "MAEEMBED_KERNEL_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("MAEEMBED_KERNEL=%s: %v\n%s", p, err, out)
		}
		if !strings.Contains(string(out), "path="+p+"\n") {
			t.Errorf("MAEEMBED_KERNEL=%s: child reported %q", p, out)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEnvForcesPath$")
	cmd.Env = append(os.Environ(), "MAEEMBED_KERNEL=sse9", "MAEEMBED_KERNEL_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("MAEEMBED_KERNEL=sse9 was accepted:\n%s", out)
	}
	// Refused with a message naming the paths, not a panic.
	if strings.Contains(string(out), "goroutine ") || !strings.Contains(string(out), "available paths are "+strings.Join(Paths(), ", ")) {
		t.Errorf("MAEEMBED_KERNEL=sse9: want an error naming the paths, got:\n%s", out)
	}
}

// TestGemmDegenerate covers k = 0 (C = beta·C, and beta = 0 clears even
// NaN), alpha = 0, and empty m or n.
func TestGemmDegenerate(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		c := []float32{1, 2, float32(math.NaN()), 4}
		Gemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0.5, c, 2)
		if c[0] != 0.5 || c[1] != 1 || !math.IsNaN(float64(c[2])) || c[3] != 2 {
			t.Errorf("k=0 beta=0.5: C = %v", c)
		}
		Gemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		for _, v := range c {
			if v != 0 {
				t.Errorf("k=0 beta=0: C = %v, want zeros", c)
			}
		}
		a, b := []float32{1, 2, 3, 4}, []float32{float32(math.Inf(1)), 1, 1, 1}
		c = []float32{1, 1, 1, 1}
		Gemm(false, false, 2, 2, 2, 0, a, 2, b, 2, 2, c, 2)
		for _, v := range c {
			if v != 2 {
				t.Errorf("alpha=0: C = %v, want all 2 (A·B not evaluated, as BLAS)", c)
			}
		}
		Gemm(false, false, 0, 2, 2, 1, nil, 2, b, 2, 0, nil, 2)
		Gemm(false, false, 2, 0, 2, 1, a, 2, nil, 1, 0, nil, 1)
	})
}

func TestOverlapPanics(t *testing.T) {
	buf := make([]float32, 100)
	p := PackLinear(make([]float32, 4*4), 4, 4)
	for name, f := range map[string]func(){
		"Gemm C on A":           func() { Gemm(false, false, 2, 2, 2, 1, buf[0:4], 2, buf[50:54], 2, 0, buf[2:6], 2) },
		"Linear y on x":         func() { Linear(buf[4:12], buf[0:8], 2, p, nil, ActNone, nil) },
		"Linear residual shift": func() { Linear(buf[40:48], buf[0:8], 2, p, nil, ActNone, buf[41:49]) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestNoFalseOverlap: open-ended sub-slices of one arena (a common way to
// lay out buffers) are fine as long as the used regions are disjoint.
func TestNoFalseOverlap(t *testing.T) {
	arena := make([]float32, 64)
	for i := range arena[:8] {
		arena[i] = 1
	}
	a, b, c := arena[0:], arena[4:], arena[8:] // a's slice runs past its 2×2 region
	Gemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2)
	for i, v := range c[:4] {
		if v != 2 {
			t.Fatalf("C[%d] = %v, want 2", i, v)
		}
	}
}

// TestGemmBitwise checks that an output element does not depend on how
// the work was split: the same rows computed in one call, alone (the
// edge-row kernels), or with a different number of workers are bitwise
// equal.
func TestGemmBitwise(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, s := range []struct{ m, k, n int }{{197, 768, 96}, {50, 1030, 70}, {29, 512, 33}, {197, 512, 600}, {197, 1536, 400}, {60, 1600, 40}} {
			x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
			p := PackLinear(w, s.n, s.k)
			want := make([]float32, s.m*s.n)
			Linear(want, x, s.m, p, bias, ActGELU, nil)
			got := make([]float32, s.m*s.n)
			// 1, 2, ..., 11 rows per call, again and again: every edge
			// kernel of every path.
			for i, c := 0, 0; i < s.m; i, c = i+c%11+1, c+1 {
				rows := min(c%11+1, s.m-i)
				Linear(got[i*s.n:], x[i*s.k:], rows, p, bias, ActGELU, nil)
			}
			sameBits(t, fmt.Sprintf("%v in row slices", s), got, want)
			for _, procs := range []int{1, 3} {
				old := runtime.GOMAXPROCS(procs)
				Linear(got, x, s.m, p, bias, ActGELU, nil)
				runtime.GOMAXPROCS(old)
				sameBits(t, fmt.Sprintf("%v at GOMAXPROCS=%d", s, procs), got, want)
			}
		}
	})
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s: [%d] = %v, want bitwise %v", what, i, got[i], want[i])
			return
		}
	}
}

// TestAttentionBitwise: attention on several workers (whose last items run
// in pieces of query rows) gives bitwise what one worker gives.
func TestAttentionBitwise(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, s := range []struct{ b, t, h, hd int }{{1, 197, 12, 64}, {2, 50, 12, 64}, {1, 197, 1, 64}, {3, 33, 4, 40}, {1, 61, 3, 32}} {
			qkv := randSlice(r, s.b*s.t*3*s.h*s.hd)
			want := make([]float32, s.b*s.t*s.h*s.hd)
			old := runtime.GOMAXPROCS(1)
			Attention(want, qkv, s.b, s.t, s.h, s.hd)
			for _, procs := range []int{2, 3} {
				runtime.GOMAXPROCS(procs)
				got := make([]float32, len(want))
				Attention(got, qkv, s.b, s.t, s.h, s.hd)
				sameBits(t, fmt.Sprintf("%v at GOMAXPROCS=%d", s, procs), got, want)
			}
			runtime.GOMAXPROCS(old)
		}
	})
}

// TestNormLinear: NormLinear gives bitwise LayerNorm then Linear, with and
// without Strassen–Winograd, on one and several workers, in every
// precision, and with a NaN in x (Strassen's fallback to the plain GEMM).
func TestNormLinear(t *testing.T) {
	// On, also where MAEEMBED_STRASSEN's auto leaves it off: the large
	// shapes run Strassen–Winograd, the small ones the plain GEMM.
	defer SetStrassen(true)()
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		sw := false
		for _, s := range []struct{ m, k, n int }{{197, 768, 96}, {197, 2048, 512}, {50, 1030, 70}, {3, 40, 33}, {197, 768, 2304}} {
			x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
			n := Norm{Gamma: randSlice(r, s.k), Beta: randSlice(r, s.k), Eps: 1e-6}
			p := PackLinear(w, s.n, s.k)
			sw = sw || p.useStrassen(s.m)
			for _, prec := range []Precision{FP32, BF16, Int8} {
				pw := p
				if prec != FP32 {
					pw = p.Convert(prec)
				}
				for _, nan := range []bool{false, true} {
					if nan {
						x[min(5, s.m-1)*s.k+1] = float32(math.NaN())
					}
					for _, procs := range []int{1, 2, 3} {
						// The two calls at the same thread count: whether a
						// Linear runs Strassen may depend on it.
						old := runtime.GOMAXPROCS(procs)
						wantH, want := make([]float32, s.m*s.k), make([]float32, s.m*s.n)
						LayerNorm(wantH, x, s.m, s.k, n.Gamma, n.Beta, n.Eps)
						Linear(want, wantH, s.m, pw, bias, ActGELU, nil)
						h, got := make([]float32, s.m*s.k), make([]float32, s.m*s.n)
						All.NormLinear(got, h, x, s.m, n, pw, bias, ActGELU)
						runtime.GOMAXPROCS(old)
						what := fmt.Sprintf("%v %v nan=%v GOMAXPROCS=%d", s, prec, nan, procs)
						sameBitsNaN(t, what+" h", h, wantH)
						sameBitsNaN(t, what+" y", got, want)
					}
					x[min(5, s.m-1)*s.k+1] = 0.5
				}
			}
		}
		if !sw {
			t.Errorf("no shape ran Strassen–Winograd on %s", Path())
		}
	})
}

// sameBitsNaN is sameBits where any NaN equals any NaN.
func sameBitsNaN(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		g, w := got[i], want[i]
		if g != g && w != w {
			continue
		}
		if math.Float32bits(g) != math.Float32bits(w) {
			t.Errorf("%s: [%d] = %v, want bitwise %v", what, i, g, w)
			return
		}
	}
}
