package kernels

import (
	"fmt"
	"unsafe"
)

// UnpackLinear writes the weight held by p back into w in the row-major
// [N×K] PyTorch layout (a reduced-precision weight as the values it holds). Models keep only the packed form (one copy of the
// weights) and unpack on demand, for export or training.
func UnpackLinear(p *Packed, w []float32) {
	n, k := p.N, p.K
	if len(w) < n*k {
		panic(fmt.Sprintf("kernels.UnpackLinear: w has %d elements, want %d×%d", len(w), n, k))
	}
	for q := 0; q < numPanels(n); q++ {
		j0 := q * nr
		cols := min(nr, n-j0)
		if p.prec == Int8 {
			// Words of four int8 along K, times the column's scale.
			b := unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(p.data))), 4*len(p.data))[4*q*p.kw*nr : 4*(q+1)*p.kw*nr]
			for c := 0; c < cols; c++ {
				dst := w[(j0+c)*k : (j0+c)*k+k]
				for i := range dst {
					dst[i] = float32(b[(i/4*nr+c)*4+i%4]) * p.scale[j0+c]
				}
			}
			continue
		}
		if p.kw > 0 {
			// Words of two bf16 along K.
			d := words(p.data)[q*p.kw*nr : (q+1)*p.kw*nr]
			for c := 0; c < cols; c++ {
				dst := w[(j0+c)*k : (j0+c)*k+k]
				for i := range dst {
					wd := d[i/2*nr+c]
					dst[i] = bf16Float(uint16(wd >> (16 * (i % 2))))
				}
			}
			continue
		}
		d := p.data[q*k*nr : (q+1)*k*nr]
		for c := 0; c < cols; c++ {
			dst := w[(j0+c)*k : (j0+c)*k+k]
			for i := range dst {
				dst[i] = d[i*nr+c]
			}
		}
	}
}
