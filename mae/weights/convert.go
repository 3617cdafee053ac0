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

// float32To16 rounds a float32 to IEEE 754 half precision, to nearest with
// ties to even (as torch's .half()), subnormals included; values beyond the
// half range become infinities, NaN stays NaN.
func float32To16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	round := func(q, rem, half uint32) uint32 {
		if rem > half || (rem == half && q&1 == 1) {
			q++
		}
		return q
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		shift := uint32(126 - exp) // half subnormals count units of 2^-24
		if shift > 24 {
			return sign
		}
		mf := man | 0x800000
		return sign | uint16(round(mf>>shift, mf&(1<<shift-1), 1<<(shift-1)))
	}
	// A carry out of the mantissa correctly bumps the exponent (up to inf).
	return sign | uint16(uint32(e)<<10+round(man>>13, man&0x1fff, 0x1000))
}
