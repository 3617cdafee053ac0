package kernels

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Precision is the arithmetic of a packed Linear weight and of the
// activations multiplied with it. LayerNorm, softmax, GELU, bias and
// residuals stay float32 in every precision, and so does attention but for
// Int8 on the AVX2 int8 kernel (AttentionIn).
type Precision int

const (
	// FP32 is exact float32 (the default).
	FP32 Precision = iota
	// BF16 rounds weights and activations to bfloat16 (round to nearest
	// even) and accumulates their products in float32.
	BF16
	// Int8 is dynamic quantisation as in ONNX Runtime's and PyTorch's
	// dynamic quantisation: weights symmetric per output channel, activations
	// symmetric per row (token) at run time, int32 accumulation.
	Int8
)

var precisionNames = []string{"fp32", "bf16", "int8"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// PrecisionNames lists the accepted names of ParsePrecision.
func PrecisionNames() []string { return append([]string(nil), precisionNames...) }

// ParsePrecision reads a precision name ("fp32", "bf16", "int8"); an unknown name
// is an error that lists the choices.
func ParsePrecision(s string) (Precision, error) {
	for i, n := range precisionNames {
		if strings.EqualFold(s, n) {
			return Precision(i), nil
		}
	}
	return 0, fmt.Errorf("unknown precision %q (choose one of %s)", s, strings.Join(precisionNames, ", "))
}

// hasBF16 tells whether the CPU has AVX512_BF16 (VDPBF16PS,
// VCVTNEPS2BF16) beside the AVX-512 path.
var hasBF16 = cpu.X86.HasAVX512BF16

// bf16Impl is the AVX-512 path with the VDPBF16PS micro-kernel: the same
// driver, tile and epilogue; only the inner product differs. nil when the
// CPU lacks AVX512_BF16.
var bf16Impl *impl

// bf16Native tells whether BF16 weights packed now use the native bf16
// kernel (words of two bf16), or else are float32 values rounded to bf16
// and run through the float32 kernels of the current path.
func bf16Native() bool { return bf16Impl != nil && current.Load().name == "avx512" }

var slowOnce, slowI8Once sync.Once

// Convert returns p's weight in precision prec (p itself for FP32; p must
// be an FP32 weight, else Convert panics). The kernel family is fixed by
// the path in use when Convert runs (set the path first).
//
// BF16: on a CPU with AVX512_BF16 (avx512 path) the result holds pairs of
// bf16 along K in one 32-bit word, in the float32 panel layout (K/2 word
// rows of nr), for the VDPBF16PS kernel. Elsewhere it holds float32 values
// rounded to bf16 and runs through the float32 kernels: the same results
// (every product of two bf16 is exact in float32), without the speed-up,
// which is logged once.
//
// Int8: see toInt8; the kernel (VPDPBUSD, AVX2 VPMADDUBSW, or pure Go,
// logged once) is chosen per call.
func (p *Packed) Convert(prec Precision) *Packed {
	if p.prec != FP32 {
		panic(fmt.Sprintf("kernels.Packed.Convert: weight is %v, want fp32", p.prec))
	}
	switch prec {
	case FP32:
		return p
	case Int8:
		return p.toInt8()
	case BF16:
	default:
		panic(fmt.Sprintf("kernels.Packed.Convert: unknown precision %v", prec))
	}
	if !bf16Native() {
		slowOnce.Do(func() {
			slog.Warn("bf16: no native bf16 kernel on this CPU/path; bf16-rounded values run through the fp32 kernels (same results as bf16, fp32 speed)",
				"path", Path(), "avx512_bf16", hasBF16)
		})
		q := &Packed{N: p.N, K: p.K, prec: BF16, data: HugeFloats(len(p.data))}
		for i, v := range p.data {
			q.data[i] = roundBF16(v)
		}
		return q
	}
	kw := (p.K + 1) / 2
	q := &Packed{N: p.N, K: p.K, prec: BF16, kw: kw, data: HugeFloats(numPanels(p.N) * kw * nr)}
	w := words(q.data)
	for pn := 0; pn < numPanels(p.N); pn++ {
		src := p.data[pn*p.K*nr : (pn+1)*p.K*nr]
		dst := w[pn*kw*nr : (pn+1)*kw*nr]
		for i := 0; i < kw; i++ {
			for c := 0; c < nr; c++ {
				lo := uint32(bf16Bits(src[2*i*nr+c]))
				var hi uint32
				if 2*i+1 < p.K {
					hi = uint32(bf16Bits(src[(2*i+1)*nr+c]))
				}
				dst[i*nr+c] = lo | hi<<16
			}
		}
	}
	return q
}

// Precision is the arithmetic p's weight is held in.
func (p *Packed) Precision() Precision { return p.prec }

// bf16Bits rounds f to bfloat16 as VCVTNEPS2BF16 does: round to nearest
// even, denormals to signed zero, NaN stays NaN (quieted).
func bf16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	switch {
	case b&0x7f800000 == 0:
		return uint16(b>>16) & 0x8000
	case b&0x7fffffff > 0x7f800000:
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func roundBF16(f float32) float32 { return bf16Float(bf16Bits(f)) }

// toBF16Rows writes rows of x (row stride k floats) as bf16 into dst (row
// stride ldw words = 2·ldw bf16), zero-padding an odd k to whole words.
func toBF16Rows(dst []float32, x []float32, rows, k, ldw int) {
	h := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst))
	k16 := 0
	if bf16Impl != nil {
		k16 = k &^ 15
	}
	for r := 0; r < rows; r++ {
		src := x[r*k : r*k+k]
		d := h[2*r*ldw : 2*r*ldw+2*((k+1)/2)]
		if k16 > 0 {
			cvtBF16AVX512(&d[0], &src[0], k16)
		}
		for i := k16; i < k; i++ {
			d[i] = bf16Bits(src[i])
		}
		if k%2 == 1 {
			d[k] = 0
		}
	}
}

// roundBF16Rows writes x rounded to bf16 (as float32) into dst, both m×k.
func roundBF16Rows(dst, x []float32) {
	for i, v := range x {
		dst[i] = roundBF16(v)
	}
}

// kernelBF16Generic is the pure-Go bf16 micro-kernel (mr = 4): k counts
// words of two bf16 in A (rs, ps in words) and in the packed panel.
func kernelBF16Generic(k int, a *float32, rs, ps int, b *float32, c *float32, ldc int, alpha, beta float32, bias *float32) {
	const mr = 4
	A := unsafe.Slice((*uint32)(unsafe.Pointer(a)), (mr-1)*rs+(k-1)*ps+1)
	B := unsafe.Slice((*uint32)(unsafe.Pointer(b)), k*nr)
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		bp := B[p*nr : p*nr+nr]
		for r := 0; r < mr; r++ {
			aw := A[r*rs+p*ps]
			a0, a1 := bf16Float(uint16(aw)), bf16Float(uint16(aw>>16))
			row := &acc[r]
			for jj, bw := range bp {
				row[jj] += a0*bf16Float(uint16(bw)) + a1*bf16Float(uint16(bw>>16))
			}
		}
	}
	storeGeneric(&acc, c, ldc, alpha, beta, bias)
}

var bf16GenericImpl = genericImpl.reduced("generic-bf16", kernelBF16Generic, nil)

// linearBF16 is Linear for a BF16 weight: activations are rounded to bf16
// (into pooled scratch) and multiplied with the native kernel, or with the
// float32 kernels when w holds rounded float32 values.
func linearBF16(th Threads, y, x []float32, m int, w *Packed, bias []float32, beta float32, act Activation, residual []float32) {
	bufp := bufPool.Get().(*[]float32)
	defer bufPool.Put(bufp)
	if w.kw == 0 {
		// Rounded float32 weights: round x the same way, then float32 GEMM.
		*bufp = grow(*bufp, m*w.K)
		xr := (*bufp)[:m*w.K]
		roundBF16Rows(xr, x[:m*w.K])
		runGemmOn(th, current.Load(), m, w.N, w.K, 1, xr, w.K, false, w.data, beta, y, w.N, bias, act, residual, dequant{})
		return
	}
	// Word rows padded so that the rows of a micro-panel do not share L1
	// sets (see needPackA).
	ldw := w.kw
	if ldw%64 == 0 {
		ldw += 16
	}
	*bufp = grow(*bufp, m*ldw)
	xw := (*bufp)[:m*ldw]
	convertRows(th, nil, xw, nil, x, m, w.K, ldw)
	im := bf16Impl
	if im == nil || current.Load().name != "avx512" {
		im = &bf16GenericImpl
	}
	runGemmOn(th, im, m, w.N, w.kw, 1, xw, ldw, false, w.data, beta, y, w.N, bias, act, residual, dequant{})
}

// hasVNNI tells whether the CPU has AVX512_VNNI (VPDPBUSD on ZMM).
var hasVNNI = cpu.X86.HasAVX512VNNI

// i8Impl is the AVX-512 path with the VPDPBUSD micro-kernel and the
// dequantising epilogue; nil without AVX512_VNNI. i8AVX2Impl is the AVX2
// int8 kernel (VPMADDUBSW/VPMADDWD); nil without AVX2.
var i8Impl, i8AVX2Impl *impl

// quantHelpers are the vector helpers of quantRows, for whole vectors of
// width floats.
type quantHelpers struct {
	absMax  func(x *float32, n int) float32
	quantU8 func(dst *byte, src *float32, n int, inv float32, off int32)
	width   int
	// The helper of int8 attention's K (nil where it does not run), n a
	// multiple of 8: quantS8Sum writes round(src·inv) as s8 and returns
	// their sum.
	quantS8Sum func(dst *byte, src *float32, n int, inv float32) int32
}

// i8Format is how an Int8 weight and the activations multiplied with it
// are quantised: weights symmetric per output channel in [−wMax, wMax],
// activations symmetric per row in [−aMax, aMax], stored as q+aOff (u8).
// Every kernel computes Σ (q_a+aOff)·q_w − comp with comp = aOff·Σ q_w.
type i8Format struct{ wMax, aMax, aOff int32 }

var (
	// i8Full is the 8-bit format of VPDPBUSD (u8·s8 summed into int32
	// without intermediate saturation) and of the pure-Go kernel.
	i8Full = i8Format{wMax: 127, aMax: 127, aOff: 128}
	// i8Quad is the format of the AVX2 kernel (VPMADDUBSW, which saturates
	// its int16 pair sums): weights of 7 bits, activations of 6 (u8 in
	// [0, 64]), so that one pair is at most 2·64·63 = 8064 and the pairs
	// of four K words add in int16 (4·8064 = 32256 < 32767; see
	// kernelI8AVX2 in asmgen.go): 1.25 multiplies per 32 products. Measured
	// against fp32 it stays above 0.9993 minimum cosine on every model
	// here; 6-bit weights with 7-bit activations (the same bound) lost ~4×
	// more cosine (README).
	i8Quad = i8Format{wMax: 63, aMax: 32, aOff: 32}
)

var quantAVX512, quantAVX2 *quantHelpers

// i8Kernel picks the int8 implementation and quantisation helpers for the
// current path and a weight in format f: VPDPBUSD on avx512 with VNNI (any
// format), VPMADDUBSW on avx2 and on avx512 without VNNI (i8Quad only),
// else pure Go (any format).
func i8Kernel(f i8Format) (*impl, *quantHelpers) {
	switch cur := current.Load().name; {
	case cur == "avx512" && i8Impl != nil:
		return i8Impl, quantAVX512
	case (cur == "avx512" || cur == "avx2") && i8AVX2Impl != nil && f == i8Quad:
		return i8AVX2Impl, quantAVX2
	}
	return &i8GenericImpl, nil
}

// i8FormatForPath is the format Convert gives an Int8 weight on the
// current path: i8Quad where the AVX2 kernel will run it.
func i8FormatForPath() i8Format {
	if im, _ := i8Kernel(i8Quad); im == i8AVX2Impl {
		return i8Quad
	}
	return i8Full
}

// toInt8 quantises the weight per output column j in the format of the
// current path (f, see i8Format): scale_j = max_k |W[j][k]| / f.wMax,
// q = round(W/scale_j) in [−f.wMax, f.wMax] (round to nearest even). Words
// hold four q along K (zero-padded to a multiple of 4) in the float32
// panel layout. comp_j = f.aOff·Σ_k q[j][k] undoes the offset that makes
// the activations unsigned for VPDPBUSD and VPMADDUBSW (u8·s8).
func (p *Packed) toInt8() *Packed {
	f := i8FormatForPath()
	kw := (p.K + 3) / 4
	np := numPanels(p.N)
	q := &Packed{N: p.N, K: p.K, prec: Int8, kw: kw, i8: f, data: HugeFloats(np * kw * nr),
		scale: make([]float32, np*nr), comp: make([]float32, np*nr)}
	bytes := unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(q.data))), 4*len(q.data))
	for pn := 0; pn < np; pn++ {
		src := p.data[pn*p.K*nr : (pn+1)*p.K*nr]
		dst := bytes[4*pn*kw*nr : 4*(pn+1)*kw*nr]
		for c := 0; c < nr; c++ {
			var amax float32
			for i := 0; i < p.K; i++ {
				amax = max(amax, float32(math.Abs(float64(src[i*nr+c]))))
			}
			if amax == 0 {
				continue // all-zero (or padding) column: q = 0, scale 0
			}
			inv := float64(f.wMax) / float64(amax)
			var sum int32
			for i := 0; i < p.K; i++ {
				v := int32(math.RoundToEven(float64(src[i*nr+c]) * inv))
				v = max(-f.wMax, min(f.wMax, v))
				dst[(i/4*nr+c)*4+i%4] = int8(v)
				sum += v
			}
			q.scale[pn*nr+c] = amax / float32(f.wMax)
			q.comp[pn*nr+c] = math.Float32frombits(uint32(f.aOff * sum))
		}
	}
	if im, _ := i8Kernel(f); im == &i8GenericImpl {
		slowI8Once.Do(func() {
			slog.Warn("int8: no int8 kernel on this CPU/path (needs AVX2 or AVX512_VNNI); running the pure-Go int8 kernel, much slower than fp32",
				"path", Path())
		})
	}
	return q
}

// quantRows quantises each row of x (m×k) symmetrically in format f:
// scale[r] = max|x[r]|/f.aMax (0 for a zero row), and writes
// round(x/scale)+f.aOff as bytes into dst (row stride ldw words), padding
// each row to whole words with f.aOff (zero).
func quantRows(dst, scale []float32, x []float32, m, k, ldw int, f i8Format) {
	b := wordBytes(dst)
	_, qh := i8Kernel(f)
	for r := 0; r < m; r++ {
		scale[r] = quantRow(b[4*r*ldw:4*r*ldw+4*((k+3)/4)], x[r*k:r*k+k], f, qh)
	}
}

// quantRow is one row of quantRows (d: the row's whole words) with the
// vector helpers qh (nil: Go); it returns the row's scale.
func quantRow(d []byte, row []float32, f i8Format, qh *quantHelpers) float32 {
	k := len(row)
	k16 := 0
	if qh != nil {
		k16 = k - k%qh.width
	}
	var amax float32
	if k16 > 0 {
		amax = qh.absMax(&row[0], k16)
	}
	for _, v := range row[k16:] {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	inv := float32(0)
	if amax > 0 {
		inv = float32(f.aMax) / amax
	}
	if k16 > 0 {
		qh.quantU8(&d[0], &row[0], k16, inv, f.aOff)
	}
	for i := k16; i < k; i++ {
		d[i] = byte(int32(math.RoundToEven(float64(row[i]*inv))) + f.aOff)
	}
	for i := k; i < len(d); i++ {
		d[i] = byte(f.aOff)
	}
	return amax / float32(f.aMax)
}

// kernelI8Generic is the pure-Go int8 micro-kernel (mr = 4) with the
// semantics of kernelI8AVX512: k words of four u8 (A) times four s8 (B),
// int32 sums, minus the compensation row passed as bias, as float32 (alpha
// is 1 for int8).
func kernelI8Generic(k int, a *float32, rs, ps int, b *float32, c *float32, ldc int, alpha, beta float32, comp *float32) {
	const mr = 4
	A := unsafe.Slice((*uint32)(unsafe.Pointer(a)), (mr-1)*rs+(k-1)*ps+1)
	B := unsafe.Slice((*uint32)(unsafe.Pointer(b)), k*nr)
	var acc [mr][nr]int32
	for p := 0; p < k; p++ {
		bp := B[p*nr : p*nr+nr]
		for r := 0; r < mr; r++ {
			aw := A[r*rs+p*ps]
			row := &acc[r]
			for jj, bw := range bp {
				var s int32
				for t := 0; t < 4; t++ {
					s += int32(uint8(aw>>(8*t))) * int32(int8(bw>>(8*t)))
				}
				row[jj] += s
			}
		}
	}
	var cv [nr]int32
	if comp != nil {
		for jj, v := range unsafe.Slice(comp, nr) {
			cv[jj] = int32(math.Float32bits(v))
		}
	}
	C := unsafe.Slice(c, (mr-1)*ldc+nr)
	for r := 0; r < mr; r++ {
		row := C[r*ldc : r*ldc+nr]
		for jj := range row {
			v := float32(acc[r][jj] - cv[jj])
			if beta != 0 {
				v += beta * row[jj]
			}
			row[jj] = v
		}
	}
}

var i8GenericImpl = genericImpl.reduced("generic-int8", kernelI8Generic, nil)

// linearInt8 is Linear for an Int8 weight (beta 0: a residual that is y
// itself comes as a copy). Activations are quantised per row into pooled
// scratch; the kernel's int32 sums, compensated, become float32, and the
// epilogue scales them by row and column scale and adds the bias before
// the activation and residual.
func linearInt8(th Threads, y, x []float32, m int, w *Packed, bias []float32, act Activation, residual []float32) {
	if w.K == 0 {
		// No products: y = act(bias) + residual, as the float32 path does
		// it (the int8 GEMM's bias argument is the compensation row).
		runGemm(m, w.N, 0, 1, nil, 0, false, nil, 0, y, w.N, bias, act, residual)
		return
	}
	ldw := w.kw
	if ldw%64 == 0 {
		ldw += 16 // keep a micro-panel's rows in distinct L1 sets
	}
	bufp := bufPool.Get().(*[]float32)
	defer bufPool.Put(bufp)
	sp := bufPool.Get().(*[]float32)
	defer bufPool.Put(sp)
	*bufp = grow(*bufp, m*ldw)
	*sp = grow(*sp, m+numPanels(w.N)*nr)
	xw, rowScale, zero := (*bufp)[:m*ldw], (*sp)[:m], (*sp)[m:]
	convertRows(th, &w.i8, xw, rowScale, x, m, w.K, ldw)
	if bias == nil {
		clear(zero)
		bias = zero
	}
	im, _ := i8Kernel(w.i8)
	runGemmOn(th, im, m, w.N, w.kw, 1, xw, ldw, false, w.data, 0, y, w.N, w.comp, act, residual,
		dequant{rowScale: rowScale, colScale: w.scale, bias: bias})
}

// rowsJob converts or quantises the rows of an activation matrix in
// parallel, in blocks of 32 rows (pooled: no allocation per call).
type rowsJob struct {
	i8         *i8Format // nil: bf16
	dst, scale []float32
	x          []float32
	m, k, ldw  int
	next       atomic.Int64
}

var rowsPool = sync.Pool{New: func() any { return new(rowsJob) }}

const rowsBlock = 32

func (j *rowsJob) run() {
	for {
		r0 := int(j.next.Add(rowsBlock)) - rowsBlock
		if r0 >= j.m {
			return
		}
		r1 := min(j.m, r0+rowsBlock)
		x, dst := j.x[r0*j.k:], j.dst[r0*j.ldw:]
		if j.i8 != nil {
			quantRows(dst, j.scale[r0:r1], x, r1-r0, j.k, j.ldw, *j.i8)
		} else {
			toBF16Rows(dst, x, r1-r0, j.k, j.ldw)
		}
	}
}

// convertRows runs toBF16Rows (i8 nil) or quantRows in format *i8 on th's
// goroutines.
func convertRows(th Threads, i8 *i8Format, dst, scale, x []float32, m, k, ldw int) {
	j := rowsPool.Get().(*rowsJob)
	*j = rowsJob{i8: i8, dst: dst, scale: scale, x: x, m: m, k: k, ldw: ldw}
	th.run(min(th.workers(4*float64(m)*float64(k)), ceilDiv(m, rowsBlock)), j)
	*j = rowsJob{}
	rowsPool.Put(j)
}

// geluFast is GELU by the rational erf of the AVX2 int8 epilogue
// (geluFast256 in asmgen.go, the same coefficients and clamp): erf(x/√2)
// ≈ x·P(x²)/Q(x²) on |x| ≤ 5.5. Absolute error ≤ 1.3e-6, relative ≤ 3e-7
// for x > 0.01. It does the tails of rows that are not whole vectors.
func geluFast(x float32) float32 {
	xc := max(x, -5.5) // NaN stays NaN
	z := min(xc, 5.5)
	h, t := 0.5*xc, z*z
	p := ((((4.56744367e-08*t+1.26685582e-05)*t+0.000334177224)*t+0.00933292042)*t+0.0673774555)*t + 0.797884464
	q := ((((1.19876972e-06*t+7.3062205e-05)*t+0.00187454862)*t+0.0285501499)*t+0.25111115)*t + 1
	return h + h*(z*p/q)
}

// wordBytes is the bytes of the 32-bit words w.
func wordBytes(w []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 4*len(w))
}

// words is the 32-bit words w as integers (packed bf16 pairs, int8 quads).
func words(w []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(w))), len(w))
}

// quantWeightRows quantises the n rows of src (k values each, k a
// multiple of 8, row stride ld) as an Int8 weight of n output columns in
// format f, as toInt8 does but in float32, into dst (numPanels(n) panels
// of k/4 words × nr), with scale and comp per column (zero past n); tmp
// holds k/4 words. qh must have the attention helpers.
func quantWeightRows(dst, scale, comp, tmp, src []float32, ld, n, k int, f i8Format, qh *quantHelpers) {
	kw := k / 4
	tb, tw, dw := wordBytes(tmp), words(tmp)[:kw], words(dst)
	for j := 0; j < numPanels(n)*nr; j++ {
		d := dw[j/nr*kw*nr+j%nr:]
		var amax float32
		if j < n {
			amax = qh.absMax(&src[j*ld], k)
		}
		if amax == 0 {
			// A zero row, or padding: q = 0, scale 0.
			for i := 0; i < kw; i++ {
				d[i*nr] = 0
			}
			scale[j], comp[j] = 0, 0
			continue
		}
		sum := qh.quantS8Sum(&tb[0], &src[j*ld], k, float32(f.wMax)/amax)
		for i, w := range tw {
			d[i*nr] = w
		}
		scale[j] = amax / float32(f.wMax)
		comp[j] = math.Float32frombits(uint32(f.aOff * sum))
	}
}
