package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParsePrecision(t *testing.T) {
	for i, n := range PrecisionNames() {
		p, err := ParsePrecision(n)
		if err != nil || int(p) != i || p.String() != n {
			t.Errorf("ParsePrecision(%q) = %v, %v", n, p, err)
		}
	}
	_, err := ParsePrecision("fp16")
	if err == nil {
		t.Fatal("ParsePrecision accepted fp16")
	}
	for _, n := range PrecisionNames() {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not name the choice %q", err, n)
		}
	}
}

// TestBF16Rounding checks the Go rounding (used for tails, the generic
// path and packing) against the definition, and the assembly conversion
// against the Go one, bit for bit.
func TestBF16Rounding(t *testing.T) {
	cases := map[float32]uint16{
		1:                                0x3f80,
		-2:                               0xc000,
		math.Float32frombits(0x3f808000): 0x3f80, // tie, even stays
		math.Float32frombits(0x3f818000): 0x3f82, // tie, odd rounds up
		math.Float32frombits(0x3f808001): 0x3f81,
		math.Float32frombits(0x00000001): 0x0000, // denormal → 0
		math.Float32frombits(0x80400000): 0x8000,
		float32(math.Inf(1)):             0x7f80,
		math.Float32frombits(0x7f7fffff): 0x7f80, // max float rounds to +Inf
	}
	for f, want := range cases {
		if got := bf16Bits(f); got != want {
			t.Errorf("bf16Bits(%x) = %#x, want %#x", math.Float32bits(f), got, want)
		}
	}
	if h := bf16Bits(float32(math.NaN())); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("NaN → %#x, not a NaN", h)
	}
	if bf16Impl == nil {
		t.Skip("no AVX512_BF16: the assembly conversion is not used")
	}
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(x[i])) {
			x[i] = float32(i)
		}
	}
	copy(x, []float32{0, 1, -1, math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), math.Float32frombits(1)})
	dst := make([]float32, len(x)/2)
	toBF16Rows(dst, x, 1, len(x), len(dst))
	for i, v := range x {
		got := uint16(math.Float32bits(dst[i/2]) >> (16 * (i % 2)))
		if want := bf16Bits(v); got != want {
			t.Fatalf("[%d] %#x: assembly %#x, Go %#x", i, math.Float32bits(v), got, want)
		}
	}
}

// refLinearBF16 is x·Wᵀ + bias in float64 from bf16-rounded x and W.
func refLinearBF16(x, w, bias []float32, m, n, k int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(roundBF16(x[i*k+p])) * float64(roundBF16(w[j*k+p]))
			}
			if bias != nil {
				s += float64(bias[j])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// TestLinearBF16 checks the bf16 Linear on every path, native and
// rounded-float32, against the float64 product of the rounded operands:
// only the float32 accumulation may differ. Odd K covers the zero-padded
// last word; shapes cover edge tiles and K chunks.
func TestLinearBF16(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {7, 45, 33}, {13, 64, 1030}, {50, 96, 768}, {30, 40, 3072}} {
			w := randSlice(r, s.n*s.k)
			x := randSlice(r, s.m*s.k)
			bias := randSlice(r, s.n)
			p := PackLinear(w, s.n, s.k).Convert(BF16)
			if p.Precision() != BF16 {
				t.Fatalf("Convert gave %v", p.Precision())
			}
			want := refLinearBF16(x, w, bias, s.m, s.n, s.k)
			y := make([]float32, s.m*s.n)
			Linear(y, x, s.m, p, bias, ActNone, nil)
			within(t, fmt.Sprintf("%v native=%v", s, p.kw > 0), y, want, 4e-6*math.Sqrt(float64(s.k)))
			// The result must differ from fp32 (else rounding did not happen).
			y32 := make([]float32, s.m*s.n)
			Linear(y32, x, s.m, PackLinear(w, s.n, s.k), bias, ActNone, nil)
			if s.k > 1 && maxAbsDiff(y, y32) == 0 {
				t.Errorf("%v: bf16 result equals fp32", s)
			}
			// Unpack gives the rounded weight.
			wu := make([]float32, len(w))
			UnpackLinear(p, wu)
			for i := range w {
				if wu[i] != roundBF16(w[i]) {
					t.Fatalf("%v: unpacked [%d] = %v, want %v", s, i, wu[i], roundBF16(w[i]))
				}
			}
		}
	})
}

// TestLinearBF16Generic runs a natively packed bf16 weight on the generic
// path (the path changed after packing): the pure-Go bf16 kernel.
func TestLinearBF16Generic(t *testing.T) {
	if bf16Impl == nil {
		t.Skip("no AVX512_BF16")
	}
	saved := Path()
	defer SetPath(saved)
	SetPath("avx512")
	r := rand.New(rand.NewPCG(9, 10))
	const m, n, k = 9, 70, 101
	w, x, bias := randSlice(r, n*k), randSlice(r, m*k), randSlice(r, n)
	p := PackLinear(w, n, k).Convert(BF16)
	SetPath("generic")
	y := make([]float32, m*n)
	res := randSlice(r, m*n)
	copy(y, res)
	Linear(y, x, m, p, bias, ActGELU, y)
	want := refLinearBF16(x, w, bias, m, n, k)
	for i := range want {
		want[i] = geluExact(want[i]) + float64(res[i])
	}
	within(t, "generic bf16", y, want, 4e-6*math.Sqrt(k))
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// refLinearInt8 is the int8 definition in float64: x quantised per row,
// W per column (symmetric, round to nearest even, to the ranges of format
// f), products of the integers, scaled back, plus bias.
func refLinearInt8(x, w, bias []float32, m, n, k int, f i8Format) []float64 {
	quant := func(v []float32, qmax int32, weight bool) ([]float64, float64) {
		var amax float64
		for _, f := range v {
			amax = math.Max(amax, math.Abs(float64(f)))
		}
		q := make([]float64, len(v))
		if amax == 0 {
			return q, 0
		}
		if weight {
			// Weights are quantised once, in float64.
			inv := float64(qmax) / amax
			for i, f := range v {
				q[i] = math.RoundToEven(float64(f) * inv)
			}
		} else {
			// Activations at run time in float32, as the vector code does.
			inv := float32(qmax) / float32(amax)
			for i, f := range v {
				q[i] = math.RoundToEven(float64(f * inv))
			}
		}
		return q, amax / float64(qmax)
	}
	qw := make([][]float64, n)
	sw := make([]float64, n)
	for j := range qw {
		qw[j], sw[j] = quant(w[j*k:(j+1)*k], f.wMax, true)
	}
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		qa, sa := quant(x[i*k:(i+1)*k], f.aMax, false)
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += qa[p] * qw[j][p]
			}
			out[i*n+j] = s * sa * sw[j]
			if bias != nil {
				out[i*n+j] += float64(bias[j])
			}
		}
	}
	return out
}

// TestLinearInt8 checks the int8 Linear on every path against the float64
// evaluation of the same quantisation, with every epilogue (bias or not,
// GELU, residual separate or y itself), and that it stays near fp32.
func TestLinearInt8(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 0}, {7, 45, 33}, {13, 64, 1030}, {50, 96, 768}, {30, 40, 3072}} {
			w := randSlice(r, s.n*s.k)
			x := randSlice(r, s.m*s.k)
			bias := randSlice(r, s.n)
			res := randSlice(r, s.m*s.n)
			p := PackLinear(w, s.n, s.k).Convert(Int8)
			base := refLinearInt8(x, w, nil, s.m, s.n, s.k, p.i8)
			checkEpilogues(t, fmt.Sprint(s), p, x, bias, res, s.m, base, 2e-6*math.Sqrt(float64(max(s.k, 1))))
			// Near fp32: the quantisation error of unit normals over k terms
			// (bounds for 8-bit operands, scaled by the format's steps).
			step := func(qmax int32) float64 { return 127 / float64(qmax) }
			y, y32 := make([]float32, s.m*s.n), make([]float32, s.m*s.n)
			Linear(y, x, s.m, p, bias, ActNone, nil)
			Linear(y32, x, s.m, PackLinear(w, s.n, s.k), bias, ActNone, nil)
			if d := maxAbsDiff(y, y32); d > 0.05*math.Sqrt(float64(s.k))*(step(p.i8.wMax)+step(p.i8.aMax))/2 || (s.k > 1 && d == 0) {
				t.Errorf("%v: int8 differs from fp32 by %v", s, d)
			}
			wu := make([]float32, len(w))
			UnpackLinear(p, wu)
			if d := maxAbsDiff(wu, w); d > 0.03*step(p.i8.wMax) {
				t.Errorf("%v: unpacked int8 weight off by %v", s, d)
			}
		}
	})
}

// TestLinearInt8Extremes drives every int8 kernel at the ends of its
// format's ranges (activations all +aMax or all −aMax, weights all ±wMax),
// where an int16 pair sum of VPMADDUBSW would saturate if the format let
// it: y must be exactly ±K (up to float32 rounding of the scales).
func TestLinearInt8Extremes(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		for _, k := range []int{4, 6, 768, 3072} {
			const m, n = 9, 64
			w := make([]float32, n*k)
			for j := 0; j < n; j++ {
				for p := 0; p < k; p++ {
					w[j*k+p] = float32(1 - 2*(j%2)) // +1 on even columns, −1 on odd
				}
			}
			x := make([]float32, m*k)
			for i := 0; i < m; i++ {
				for p := 0; p < k; p++ {
					x[i*k+p] = float32(1 - 2*(i%2))
				}
			}
			p := PackLinear(w, n, k).Convert(Int8)
			y := make([]float32, m*n)
			Linear(y, x, m, p, nil, ActNone, nil)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					want := float64(k * (1 - 2*(i%2)) * (1 - 2*(j%2)))
					if got := float64(y[i*n+j]); math.Abs(got-want) > 1e-5*float64(k) {
						t.Fatalf("k=%d y[%d][%d] = %v, want %v (format %+v)", k, i, j, got, want, p.i8)
					}
				}
			}
		}
	})
}

// TestGELUFast checks the int8 epilogue's GELU on AVX2 (vector, tile and
// Go tail) against float64 erf: error ≤ 1.5e-6·max(1, |GELU|), relative
// ≤ 5e-7 for x > 0.01, NaN and ±Inf as documented.
func TestGELUFast(t *testing.T) {
	if i8AVX2Impl == nil {
		t.Skip("no AVX2")
	}
	im := i8AVX2Impl
	var xs []float32
	for v := -20.0; v <= 20; v += 0.00031 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 5.5, -5.5, 1e6, -1e6, float32(math.Inf(1)), float32(math.Inf(-1)))
	xs = xs[:len(xs)/(4*nr)*(4*nr)+3] // a tail for the Go code
	y := append([]float32(nil), xs...)
	im.gelu(y)
	n := len(xs) / (4 * nr) * (4 * nr)
	yt := append([]float32(nil), xs[:n]...)
	for i := 0; i < n; i += 4 * nr {
		im.geluTile(&yt[i], nr, 4)
	}
	for i := range yt {
		if yt[i] != y[i] {
			t.Fatalf("geluTile(%v) = %v, gelu gives %v", xs[i], yt[i], y[i])
		}
	}
	check := func(x, got float32) {
		if math.IsInf(float64(x), 0) {
			if x > 0 && !math.IsInf(float64(got), 1) || x < 0 && !(math.Abs(float64(got)) < 1e-6) {
				t.Errorf("GELU(%v) = %v", x, got)
			}
			return
		}
		want := geluExact(float64(x))
		d := math.Abs(float64(got) - want)
		if d > 1.5e-6*math.Max(1, math.Abs(want)) || x > 0.01 && d > 5e-7*want {
			t.Errorf("GELU(%v) = %v, want %v (abs err %.3g)", x, got, want, d)
		}
	}
	for i, x := range xs {
		check(x, y[i])
		check(x, geluFast(x))
	}
	nan := make([]float32, 8)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	im.gelu(nan)
	if g := geluFast(float32(math.NaN())); !math.IsNaN(float64(nan[0])) || !math.IsNaN(float64(g)) {
		t.Errorf("GELU(NaN) = %v (vector), %v (Go)", nan[0], g)
	}
}

// refAttentionInt8 is int8 attention's definition in float64 (itemI8):
// Q rows quantised in i8Quad's activation range, K rows in its weight
// range (scales and products as the vector code forms them, in float32),
// integer dot products for the scores; softmax and P·V in float64.
func refAttentionInt8(qkv []float32, batch, tokens, heads, hd int) []float64 {
	D := heads * hd
	ld := 3 * D
	out := make([]float64, batch*tokens*D)
	quant := func(v []float32, qmax int32) ([]float64, float32) {
		var amax float32
		for _, f := range v {
			amax = max(amax, float32(math.Abs(float64(f))))
		}
		q := make([]float64, len(v))
		if amax == 0 {
			return q, 0
		}
		inv := float32(qmax) / amax
		for i, f := range v {
			q[i] = math.RoundToEven(float64(f * inv))
		}
		return q, amax / float32(qmax)
	}
	for b := 0; b < batch; b++ {
		for h := 0; h < heads; h++ {
			row := func(t, part int) []float32 {
				o := (b*tokens+t)*ld + part*D + h*hd
				return qkv[o : o+hd]
			}
			qk := make([][]float64, tokens)
			sk := make([]float32, tokens)
			for t := range qk {
				qk[t], sk[t] = quant(row(t, 1), i8Quad.wMax)
			}
			s := make([]float64, tokens)
			for i := 0; i < tokens; i++ {
				qa, sa := quant(row(i, 0), i8Quad.aMax)
				sa *= float32(1 / math.Sqrt(float64(hd)))
				m := math.Inf(-1)
				for j := range s {
					var dot float64
					for c := range qa {
						dot += qa[c] * qk[j][c]
					}
					s[j] = float64(float32(dot) * (sa * sk[j]))
					m = math.Max(m, s[j])
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					sum += s[j]
				}
				for c := 0; c < hd; c++ {
					var dot float64
					for j := range s {
						dot += s[j] * float64(row(j, 2)[c])
					}
					out[(b*tokens+i)*D+h*hd+c] = dot / sum
				}
			}
		}
	}
	return out
}

// TestAttentionInt8 checks int8 attention (where a path has it) against
// its float64 definition at token counts that are and are not multiples of
// the word (4), the 8-byte group and the tile, and head dimensions of one
// and more panels: every element within float32 rounding of it. It also
// stays within a few percent of float32 attention (Q of 6 bits).
func TestAttentionInt8(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, s := range []struct{ b, t, h, hd int }{{1, 1, 1, 64}, {2, 13, 2, 64}, {1, 50, 3, 64}, {2, 197, 2, 64}, {1, 9, 2, 72}, {1, 64, 1, 96}} {
			if !attnI8(Int8, s.hd) {
				t.Skipf("no int8 attention on path %s", Path())
			}
			qkv := randSlice(r, s.b*s.t*3*s.h*s.hd)
			want := refAttentionInt8(qkv, s.b, s.t, s.h, s.hd)
			got := make([]float32, len(want))
			AttentionIn(Int8, got, qkv, s.b, s.t, s.h, s.hd)
			var worst float64
			for i := range want {
				d := math.Abs(float64(got[i])-want[i]) / (1 + math.Abs(want[i]))
				if d > 1e-5 {
					t.Fatalf("%+v: [%d] = %v, want %v", s, i, got[i], want[i])
				}
				worst = max(worst, d)
			}
			f32 := make([]float32, len(want))
			Attention(f32, qkv, s.b, s.t, s.h, s.hd)
			var d2, w2 float64
			for i := range f32 {
				d := float64(got[i] - f32[i])
				d2 += d * d
				w2 += float64(f32[i]) * float64(f32[i])
			}
			rel := math.Sqrt(d2 / w2)
			if !(rel < 0.04) || s.t > 1 && rel == 0 {
				t.Errorf("%+v: int8 attention differs from float32 by %.3g (rms, relative)", s, rel)
			}
			t.Logf("%+v: worst %.2g off the definition; %.3g rms from float32", s, worst, rel)
		}
	})
}
