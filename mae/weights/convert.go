package weights

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// float32Bytes views a float32 slice as bytes so that files can be read
// straight into the final tensor memory.
func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// leToHostFloat32 fixes the byte order of data read from a little-endian file
// in place; a no-op on little-endian hosts.
func leToHostFloat32(f []float32) {
	if hostLittleEndian {
		return
	}
	b := float32Bytes(f)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// float16To32 converts IEEE 754 half precision bits to float32 exactly,
// subnormals, infinities and NaN included.
func float16To32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalize the mantissa.
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

func bfloat16To32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// convertInto decodes len(dst) little-endian elements of dtype dt from raw.
func convertInto(dst []float32, raw []byte, dt dtype) {
	switch dt {
	case dtFloat32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case dtFloat16:
		for i := range dst {
			dst[i] = float16To32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case dtBFloat16:
		for i := range dst {
			dst[i] = bfloat16To32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case dtFloat64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		panic("convertInto: unsupported dtype")
	}
}
