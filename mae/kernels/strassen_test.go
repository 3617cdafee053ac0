package kernels

import (
	"fmt"
	"github.com/maeembed/maeembed/internal/alloctest"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// withStrassenAt sets Strassen on, used from the given sizes up on every
// path, for the rest of t.
func withStrassenAt(t testing.TB, m, n, k int) {
	sm, sn, sk := swMinM, swMinN, swMinK
	restore := SetStrassen(true)
	t.Cleanup(func() { restore(); swMinM, swMinN, swMinK = sm, sn, sk })
	swMinM, swMinN, swMinK = map[string]int{}, n, map[string]int{}
	for p := range sk {
		swMinM[p], swMinK[p] = m, k
	}
}

// TestStrassenEnv checks MAEEMBED_STRASSEN on every path: 0 turns
// Strassen off, 1 on, and unset it is on except on the paths of swAutoOff;
// the recorded kernel (Arithmetic) says "+strassen" exactly when it is on.
// It reads the variable while the test runs so that go test does not reuse
// a cached result of another setting (see TestKernelEnv).
func TestStrassenEnv(t *testing.T) {
	v := os.Getenv("MAEEMBED_STRASSEN")
	forEachPath(t, func(t *testing.T) {
		want := !swAutoOff[Path()]
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "0", "off", "false", "no":
			want = false
		case "1", "on", "true", "yes":
			want = true
		}
		if Strassen() != want {
			t.Errorf("MAEEMBED_STRASSEN=%q on %s (auto-off paths %v): Strassen() = %v", v, Path(), swAutoOff, Strassen())
		}
		label := Path()
		if want {
			label += "+strassen"
		}
		if got := Arithmetic(FP32); got != label {
			t.Errorf("MAEEMBED_STRASSEN=%q on %s: Arithmetic(fp32) = %q, want %q", v, Path(), got, label)
		}
	})
}

// strassenTol is the tolerance of within for Strassen–Winograd results
// with k terms: 8× that of the plain GEMM tests. The 7 products multiply
// sums of up to four inputs (S4 = A12−A21−A22+A11, T4 likewise), and each
// quadrant adds up to four products whose magnitudes exceed its own, so the
// float32 rounding error grows by a small constant factor over the plain
// GEMM's (Higham, Accuracy and Stability of Numerical Algorithms, §23.2.2);
// measured factors on random data are 2–4 (TestStrassenVsPlain logs them).
func strassenTol(k int) float64 { return 8 * 4e-6 * math.Sqrt(float64(k)) }

func TestStrassenLinear(t *testing.T) {
	withStrassenAt(t, 2, 64, 2)
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		// Odd and even m (odd pads A21, A22 by a zero row), rows below a
		// micro-panel, K in several chunks, N/2 of one panel.
		for _, s := range []struct{ m, n, k int }{{2, 64, 2}, {3, 64, 6}, {13, 128, 34}, {197, 192, 96},
			{50, 256, 1100}, {101, 64, 1538}, {400, 320, 130}} {
			w := randSlice(r, s.n*s.k)
			x := randSlice(r, s.m*s.k)
			bias := randSlice(r, s.n)
			res := randSlice(r, s.m*s.n)
			p := PackLinear(w, s.n, s.k)
			if !p.useStrassen(s.m) {
				t.Fatalf("%v: Strassen not used", s)
			}
			base := refGemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, make([]float32, s.m*s.n), s.n)
			checkEpilogues(t, fmt.Sprint(s), p, x, bias, res, s.m, base, strassenTol(s.k))
		}
	})
}

// TestStrassenPrepare: Prepare packs T1..T4 ahead for a float32 weight
// whose shape qualifies, and never for one that does not, for a bf16 or
// int8 weight, or with Strassen off (no extra memory then).
func TestStrassenPrepare(t *testing.T) {
	withStrassenAt(t, 2, 64, 2)
	r := rand.New(rand.NewPCG(31, 32))
	w := randSlice(r, 96*8)
	p := PackLinear(w, 64, 8)
	if p.sw != nil {
		t.Fatal("PackLinear packed T1..T4")
	}
	p.Prepare()
	if p.sw == nil {
		t.Error("Prepare did not pack T1..T4 of a 64×8 float32 weight")
	}
	for what, q := range map[string]*Packed{
		"N not a multiple of 2·nr": PackLinear(w, 96, 8),
		"bf16":                     PackLinear(w, 64, 8).Convert(BF16),
		"int8":                     PackLinear(w, 64, 8).Convert(Int8),
	} {
		if q.Prepare(); q.sw != nil {
			t.Errorf("%s: Prepare packed T1..T4", what)
		}
	}
	SetStrassen(false)
	q := PackLinear(w, 64, 8)
	if q.Prepare(); q.sw != nil {
		t.Error("Strassen off: Prepare packed T1..T4")
	}
}

// TestStrassenNaNInf: a NaN or Inf in x or W reaches the same outputs as
// in the plain GEMM (its own row or column), not the rows or columns
// Strassen–Winograd would mix it into; x and W stay untouched.
func TestStrassenNaNInf(t *testing.T) {
	withStrassenAt(t, 2, 64, 2)
	forEachPath(t, func(t *testing.T) {
		const m, n, k = 37, 128, 96 // odd m: row r pairs with r ± 19
		r := rand.New(rand.NewPCG(27, 28))
		for _, c := range []struct {
			what       string
			row, col   int // NaN/Inf of x at row, of W at column (-1: none)
			inf        bool
			badR, badC int // the output row / column that must not be finite
		}{
			{"NaN in x", 3, -1, false, 3, -1},
			{"Inf in x", 30, -1, true, 30, -1},
			{"NaN in W", -1, 5, false, -1, 5},
			{"Inf in W", -1, 100, true, -1, 100},
		} {
			x, w := randSlice(r, m*k), randSlice(r, n*k)
			bad := float32(math.NaN())
			if c.inf {
				bad = float32(math.Inf(1))
			}
			if c.row >= 0 {
				x[c.row*k+7] = bad
			}
			if c.col >= 0 {
				w[c.col*k+11] = bad
			}
			p := PackLinear(w, n, k)
			y := make([]float32, m*n)
			Linear(y, x, m, p, nil, ActNone, nil)
			for i := 0; i < m; i++ {
				for jj := 0; jj < n; jj++ {
					v := float64(y[i*n+jj])
					finite := !math.IsNaN(v) && !math.IsInf(v, 0)
					if want := i != c.badR && jj != c.badC; finite != want {
						t.Fatalf("%s: y[%d][%d] = %v, finite want %v", c.what, i, jj, v, want)
					}
				}
			}
		}
	})
}

// TestStrassenConcurrent: goroutines sharing one weight, whose T1..T4 are
// packed on first use by whichever call comes first, get the same results
// as one call alone (the task order never changes a value).
func TestStrassenConcurrent(t *testing.T) {
	withStrassenAt(t, 2, 64, 2)
	r := rand.New(rand.NewPCG(29, 30))
	const m, n, k = 101, 192, 130
	x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
	p := PackLinear(w, n, k) // no T1..T4 yet
	want := make([]float32, m*n)
	Linear(want, x, m, PackLinear(w, n, k), bias, ActGELU, nil)
	done := make(chan []float32)
	for g := 0; g < 6; g++ {
		go func() {
			y := make([]float32, m*n)
			for i := 0; i < 10; i++ {
				Linear(y, x, m, p, bias, ActGELU, nil)
			}
			done <- y
		}()
	}
	for g := 0; g < 6; g++ {
		sameBits(t, fmt.Sprint("goroutine ", g), <-done, want)
	}
}

// TestStrassenVsPlain compares Strassen–Winograd with the plain GEMM on
// the model's shapes (batch 1 and the masked encoder at batch 8) and logs
// how much larger its error against float64 is.
func TestStrassenVsPlain(t *testing.T) {
	if testing.Short() {
		t.Skip("model shapes")
	}
	withStrassenAt(t, 2, 64, 2)
	r := rand.New(rand.NewPCG(23, 24))
	for _, s := range []gemmShape{{"qkv", 197, 768, 2304}, {"fc2", 197, 3072, 768}, {"dec-fc1", 197, 512, 2048}, {"fc1", 400, 768, 3072}} {
		w, x, bias := randSlice(r, s.n*s.k), randSlice(r, s.m*s.k), randSlice(r, s.n)
		p := PackLinear(w, s.n, s.k)
		want := refGemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, make([]float32, s.m*s.n), s.n)
		for i := range want {
			want[i] += float64(bias[i%s.n])
		}
		plain, sw := make([]float32, s.m*s.n), make([]float32, s.m*s.n)
		SetStrassen(false)
		Linear(plain, x, s.m, p, bias, ActNone, nil)
		SetStrassen(true)
		Linear(sw, x, s.m, p, bias, ActNone, nil)
		ep, es, d := maxErr(plain, want), maxErr(sw, want), 0.0
		for i := range sw {
			d = max(d, math.Abs(float64(sw[i])-float64(plain[i])))
		}
		t.Logf("%s %dx%dx%d: max |err| plain %.3g, strassen %.3g (×%.2f); max |strassen−plain| %.3g", s.name, s.m, s.k, s.n, ep, es, es/ep, d)
		within(t, s.name, sw, want, strassenTol(s.k))
	}
}

// TestStrassenNoAllocs: once warm (T1..T4 packed, scratch pooled), a
// Strassen Linear allocates nothing per call, with every epilogue.
func TestStrassenNoAllocs(t *testing.T) {
	if alloctest.Race {
		t.Skip("sync.Pool is randomised under the race detector")
	}
	withStrassenAt(t, 2, 64, 2)
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		const m, n, k = 197, 256, 3072 // k: A copied to scratch on avx512
		x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
		y := make([]float32, m*n)
		p := PackLinear(w, n, k)
		for name, f := range map[string]func(){
			"bias+GELU+residual": func() { Linear(y, x, m, p, bias, ActGELU, y) },
			"residual=y":         func() { Linear(y, x, m, p, bias, ActNone, y) },
			"plain":              func() { Linear(y, x, m-1, p, nil, ActNone, nil) },
		} {
			if a := alloctest.PerRun(10, f, kernelsPkg); a != 0 {
				t.Errorf("%s: %v allocations per call", name, a)
			}
		}
	})
}

func maxErr(got []float32, want []float64) float64 {
	e := 0.0
	for i, w := range want {
		e = max(e, math.Abs(float64(got[i])-w))
	}
	return e
}

// BenchmarkStrassenAB alternates the plain GEMM and Strassen–Winograd per
// iteration on the model's Linear calls (bias; GELU on fc1) on every
// assembly path, and reports both per second of process CPU time and their
// ratio (and the ratio of wall times, for GOMAXPROCS > 1): an A/B that
// the machine's other load disturbs alike.
// GOMAXPROCS=1 go test ./mae/kernels -run '^$' -bench StrassenAB
func BenchmarkStrassenAB(b *testing.B) {
	var shapes []gemmShape
	for _, s := range modelShapes {
		shapes = append(shapes, s, gemmShape{s.name, 197, s.k, s.n}, gemmShape{s.name, 50, s.k, s.n})
	}
	shapes = append(shapes, decoderShapes...)
	shapes = append(shapes, itemShapes...)
	for _, p := range Paths() {
		if p == "generic" {
			continue
		}
		for _, s := range shapes {
			b.Run(fmt.Sprintf("path=%s/%s_%dx%dx%d", p, s.name, s.m, s.k, s.n), func(b *testing.B) {
				onPath(b, p)
				withStrassenAt(b, 2, 64, 2)
				act := ActNone
				if s.name == "fc1" {
					act = ActGELU
				}
				r := rand.New(rand.NewPCG(1, 1))
				x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
				y := make([]float32, s.m*s.n)
				pw := PackLinear(w, s.n, s.k)
				Linear(y, x, s.m, pw, bias, act, nil) // packs T1..T4
				var tPlain, tSW, wPlain, wSW float64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, on := range []bool{i%2 == 0, i%2 != 0} {
						SetStrassen(on)
						c0, w0 := cpuSeconds(), time.Now()
						Linear(y, x, s.m, pw, bias, act, nil)
						d, w := cpuSeconds()-c0, time.Since(w0).Seconds()
						if on {
							tSW, wSW = tSW+d, wSW+w
						} else {
							tPlain, wPlain = tPlain+d, wPlain+w
						}
					}
				}
				fl := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N) / 1e9
				b.ReportMetric(fl/tPlain, "plain-cpu-GFLOP/s")
				b.ReportMetric(fl/tSW, "sw-cpu-GFLOP/s")
				b.ReportMetric(tPlain/tSW, "speedup")
				b.ReportMetric(wPlain/wSW, "wall-speedup")
			})
		}
	}
}

// TestArithmetic: the recorded kernel (maeembed.kernel) is the path, with
// "+strassen" for float32 while Strassen–Winograd is on and never for
// bf16 or int8, which do not run it; bf16 on VDPBF16PS and int8 name
// their own kernels.
func TestArithmetic(t *testing.T) {
	defer SetStrassen(true)()
	forEachPath(t, func(t *testing.T) {
		for _, on := range []bool{true, false} {
			SetStrassen(on)
			want := Path()
			if on {
				want += "+strassen"
			}
			if got := Arithmetic(FP32); got != want {
				t.Errorf("Strassen %v: Arithmetic(fp32) = %q, want %q", on, got, want)
			}
			wantBF16 := Path()
			if Path() == "avx512" && bf16Impl != nil {
				wantBF16 = "avx512-bf16"
			}
			if got := Arithmetic(BF16); got != wantBF16 {
				t.Errorf("Strassen %v: Arithmetic(bf16) = %q, want %q", on, got, wantBF16)
			}
			wantI8 := map[string]string{"avx512": "avx2-int8", "avx2": "avx2-int8", "generic": "generic-int8"}[Path()]
			if Path() == "avx512" && hasVNNI {
				wantI8 = "avx512-vnni"
			}
			if got := Arithmetic(Int8); got != wantI8 {
				t.Errorf("Strassen %v: Arithmetic(int8) = %q, want %q", on, got, wantI8)
			}
		}
	})
}

// BenchmarkStrassenColdAB runs the four encoder Linear layers of 12 ViT-B
// blocks at 197 rows (batch 1) as the model calls them (proj and fc2 add
// into y, fc1 applies GELU), each block with its own weights so that they
// come cold from memory as in a forward pass, alternating passes of all
// 48 calls with Strassen–Winograd and with the plain GEMM, on the current
// path (MAEEMBED_KERNEL) and GOMAXPROCS. It reports the median over passes
// of Strassen's time ÷ the plain GEMM's, per layer and for the pass, by
// wall time and by process CPU time (below 1: Strassen is faster).
// GOMAXPROCS=2 MAEEMBED_KERNEL=avx2 go test ./mae/kernels -run '^$' -bench StrassenColdAB -benchtime 40x
func BenchmarkStrassenColdAB(b *testing.B) {
	const m = 197
	withStrassenAt(b, m, 512, 512)
	ls, x := blockLayers(12)
	for _, l := range ls {
		l.w.Prepare()
	}
	y := make([]float32, m*3072)
	// pass runs all calls and returns per layer kind and in total the wall
	// and CPU seconds.
	pass := func() (wall, cpu [5]float64) {
		for i, l := range ls {
			act, res := ActNone, []float32(nil)
			switch l.s.name {
			case "fc1":
				act = ActGELU
			case "proj", "fc2":
				res = y
			}
			w0, c0 := time.Now(), cpuSeconds()
			Linear(y, x, m, l.w, l.bias, act, res)
			dw, dc := time.Since(w0).Seconds(), cpuSeconds()-c0
			wall[i%4] += dw
			cpu[i%4] += dc
			wall[4] += dw
			cpu[4] += dc
		}
		return wall, cpu
	}
	var rw, rc [5][]float64
	b.ResetTimer()
	for i := -1; i < b.N; i++ { // i = -1: warm-up of both
		var w, c [2][5]float64 // [0] plain, [1] Strassen
		for _, on := range []bool{i%2 == 0, i%2 != 0} {
			SetStrassen(on)
			v := 0
			if on {
				v = 1
			}
			w[v], c[v] = pass()
		}
		if i < 0 {
			continue
		}
		for k := range 5 {
			rw[k] = append(rw[k], w[1][k]/w[0][k])
			rc[k] = append(rc[k], c[1][k]/c[0][k])
		}
	}
	med := func(x []float64) float64 {
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	for k, name := range []string{"qkv", "proj", "fc1", "fc2", "pass"} {
		b.ReportMetric(med(rw[k]), name+"-sw/plain")
		b.ReportMetric(med(rc[k]), name+"-cpu-sw/plain")
	}
}
