package stages

import "image"

// JPEG colour conversion and chroma upsampling as libjpeg-turbo does them
// (jdcolor.c ycc_rgb_convert, jdsample.c fancy upsampling), which is what
// PIL, and so torchvision, sees. Go's color.YCbCrToRGB rounds differently
// (a brightness-dependent bias of up to half a level) and image/jpeg
// replicates chroma instead of interpolating it.

const yccScaleBits = 16

func yccFix(x float64) int32 { return int32(x*(1<<yccScaleBits) + 0.5) }

var yccCrR, yccCbB, yccCrG, yccCbG = func() (crR, cbB, crG, cbG [256]int32) {
	const half = 1 << (yccScaleBits - 1)
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		crR[i] = (yccFix(1.40200)*x + half) >> yccScaleBits
		cbB[i] = (yccFix(1.77200)*x + half) >> yccScaleBits
		crG[i] = -yccFix(0.71414) * x
		cbG[i] = -yccFix(0.34414)*x + half
	}
	return
}()

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccRow converts one row of full-resolution Y, Cb, Cr to opaque NRGBA.
func yccRow(dst []uint8, y, cb, cr []uint8) {
	for x := range y {
		Y := int32(y[x])
		b, r := cb[x], cr[x]
		dst[4*x] = clampU8(Y + yccCrR[r])
		dst[4*x+1] = clampU8(Y + (yccCbG[b]+yccCrG[r])>>yccScaleBits)
		dst[4*x+2] = clampU8(Y + yccCbB[b])
		dst[4*x+3] = 255
	}
}

// ycbcrToNRGBA converts a decoded JPEG to RGB like libjpeg-turbo, with its
// triangle ("fancy") chroma upsampling for 4:2:2, 4:2:0 and 4:4:0. Other
// subsamplings (4:1:1, 4:1:0: rare) replicate chroma.
func ycbcrToNRGBA(s *image.YCbCr, dst *image.NRGBA) {
	b := s.Rect
	w, h := b.Dx(), b.Dy()
	cb := make([]uint8, w+2)
	cr := make([]uint8, w+2)
	// Column sums for vertical interpolation, before the horizontal pass.
	var sumCb, sumCr []int32
	chromaRows := len(s.Cb) / max(s.CStride, 1)
	for y := 0; y < h; y++ {
		yrow := s.Y[y*s.YStride : y*s.YStride+w]
		out := dst.Pix[y*dst.Stride:]
		switch s.SubsampleRatio {
		case image.YCbCrSubsampleRatio444:
			yccRow(out, yrow, s.Cb[y*s.CStride:y*s.CStride+w], s.Cr[y*s.CStride:y*s.CStride+w])
			continue
		case image.YCbCrSubsampleRatio422:
			n := (w + 1) / 2
			h2v1(cb, s.Cb[y*s.CStride:y*s.CStride+n])
			h2v1(cr, s.Cr[y*s.CStride:y*s.CStride+n])
		case image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440:
			n := w
			if s.SubsampleRatio == image.YCbCrSubsampleRatio420 {
				n = (w + 1) / 2
			}
			cy := y / 2
			ch := (h + 1) / 2
			if ch > chromaRows {
				ch = chromaRows
			}
			// Upper output row of a pair uses the chroma row above, the
			// lower one the row below (edges replicate).
			nb := cy - 1
			if y%2 == 1 {
				nb = cy + 1
			}
			nb = min(max(nb, 0), ch-1)
			if cap(sumCb) < n {
				sumCb, sumCr = make([]int32, n), make([]int32, n)
			}
			sumCb, sumCr = sumCb[:n], sumCr[:n]
			for i := 0; i < n; i++ {
				sumCb[i] = 3*int32(s.Cb[cy*s.CStride+i]) + int32(s.Cb[nb*s.CStride+i])
				sumCr[i] = 3*int32(s.Cr[cy*s.CStride+i]) + int32(s.Cr[nb*s.CStride+i])
			}
			if s.SubsampleRatio == image.YCbCrSubsampleRatio420 {
				h2v2(cb, sumCb)
				h2v2(cr, sumCr)
			} else {
				bias := int32(1) // h1v2_fancy_upsample: 1 above, 2 below
				if y%2 == 1 {
					bias = 2
				}
				for i := 0; i < n; i++ {
					cb[i] = uint8((sumCb[i] + bias) >> 2)
					cr[i] = uint8((sumCr[i] + bias) >> 2)
				}
			}
		default:
			for x := 0; x < w; x++ {
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				cb[x], cr[x] = s.Cb[ci], s.Cr[ci]
			}
		}
		yccRow(out, yrow, cb[:w], cr[:w])
	}
}

// h2v1 is jdsample.c h2v1_fancy_upsample: out has room for 2·len(in).
func h2v1(out []uint8, in []uint8) {
	n := len(in)
	if n == 1 {
		out[0], out[1] = in[0], in[0]
		return
	}
	out[0] = in[0]
	out[1] = uint8((int32(in[0])*3 + int32(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := int32(in[i]) * 3
		out[2*i] = uint8((v + int32(in[i-1]) + 1) >> 2)
		out[2*i+1] = uint8((v + int32(in[i+1]) + 2) >> 2)
	}
	v := int32(in[n-1])
	out[2*n-2] = uint8((v*3 + int32(in[n-2]) + 1) >> 2)
	out[2*n-1] = uint8(v)
}

// h2v2 is the horizontal half of jdsample.c h2v2_fancy_upsample, applied to
// the vertical column sums (3·near + far).
func h2v2(out []uint8, sum []int32) {
	n := len(sum)
	if n == 1 {
		out[0] = uint8((sum[0]*4 + 8) >> 4)
		out[1] = uint8((sum[0]*4 + 7) >> 4)
		return
	}
	out[0] = uint8((sum[0]*4 + 8) >> 4)
	out[1] = uint8((sum[0]*3 + sum[1] + 7) >> 4)
	for i := 1; i < n-1; i++ {
		out[2*i] = uint8((sum[i]*3 + sum[i-1] + 8) >> 4)
		out[2*i+1] = uint8((sum[i]*3 + sum[i+1] + 7) >> 4)
	}
	out[2*n-2] = uint8((sum[n-1]*3 + sum[n-2] + 8) >> 4)
	out[2*n-1] = uint8((sum[n-1]*4 + 7) >> 4)
}
