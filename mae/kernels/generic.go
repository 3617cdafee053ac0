package kernels

import (
	"math"
	"unsafe"
)

// genericImpl is the pure-Go path: the fallback on CPUs without AVX2 and
// the twin the assembly paths are tested against. Element-wise math is done
// in float64 so it doubles as an accuracy reference.
var genericImpl = impl{
	name:   "generic",
	mr:     4,
	kernel: kernelGeneric,
	gelu:   geluGeneric,
	add:    addGeneric,
	expSub: expSubGeneric,
	maxf:   maxGeneric,
	scale:  scaleGeneric,
	sum:    sumGeneric,
	sqdev:  sqdevGeneric,
	ln:     lnGeneric,
}

func kernelGeneric(k int, a *float32, rs, ps int, b *float32, c *float32, ldc int, alpha, beta float32, bias *float32) {
	const mr = 4
	A := unsafe.Slice(a, (mr-1)*rs+(k-1)*ps+1)
	B := unsafe.Slice(b, k*nr)
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		bp := (*[nr]float32)(B[p*nr : p*nr+nr])
		for r := 0; r < mr; r++ {
			av := A[r*rs+p*ps]
			row := &acc[r]
			for jj := range row {
				row[jj] += av * bp[jj]
			}
		}
	}
	storeGeneric(&acc, c, ldc, alpha, beta, bias)
}

// storeGeneric is the generic kernels' epilogue: C = alpha·acc + beta·C +
// bias for a 4×nr tile (beta == 0 does not read C; bias may be nil).
func storeGeneric(acc *[4][nr]float32, c *float32, ldc int, alpha, beta float32, bias *float32) {
	C := unsafe.Slice(c, 3*ldc+nr)
	var bv [nr]float32
	if bias != nil {
		bv = *(*[nr]float32)(unsafe.Slice(bias, nr))
	}
	for r := range acc {
		row := C[r*ldc : r*ldc+nr]
		for jj := range row {
			v := alpha * acc[r][jj]
			if beta != 0 {
				v += beta * row[jj]
			}
			row[jj] = v + bv[jj]
		}
	}
}

// geluExact is the float64 reference: x·Φ(x) = ½·x·erfc(−x/√2), which keeps
// full relative accuracy for negative x where 1+erf(x/√2) would cancel.
func geluExact(x float64) float64 { return 0.5 * x * math.Erfc(-x/math.Sqrt2) }

func geluGeneric(x []float32) {
	for i, v := range x {
		x[i] = float32(geluExact(float64(v)))
	}
}

func addGeneric(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

func expSubGeneric(x []float32, m float32) float32 {
	var s float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		s += e
	}
	return s
}

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m || v != v {
			m = v
			if v != v {
				return v
			}
		}
	}
	return m
}

func scaleGeneric(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func sumGeneric(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return float32(s)
}

func sqdevGeneric(x []float32, mean float32) float32 {
	var s float64
	for _, v := range x {
		d := float64(v - mean)
		s += d * d
	}
	return float32(s)
}

func lnGeneric(y, x []float32, mean, rstd float32, gamma, beta []float32) {
	y, gamma, beta = y[:len(x)], gamma[:len(x)], beta[:len(x)]
	for i, v := range x {
		y[i] = (v-mean)*rstd*gamma[i] + beta[i]
	}
}

// packA12Generic packs 12 rows of A (stride lda) into k×12 interleaved
// order in Go: the columns past the AVX-512 packer's multiple of 16.
func packA12Generic(dst, src *float32, lda, k int) {
	const mr = 12
	d := unsafe.Slice(dst, mr*k)
	a := unsafe.Slice(src, (mr-1)*lda+k)
	for r := 0; r < mr; r++ {
		row := a[r*lda : r*lda+k]
		dd := d[r:]
		for p, v := range row {
			dd[p*mr] = v
		}
	}
}
