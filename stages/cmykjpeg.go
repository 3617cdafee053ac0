package stages

import (
	"bytes"
	"image"
	"image/jpeg"
)

// Four-component (CMYK and YCCK) JPEGs as libjpeg-turbo decodes them for
// PIL: each subsampled component is upsampled with the triangle ("fancy")
// filter, YCCK is converted to CMYK with libjpeg's tables, and PIL reads the
// result as Adobe-inverted CMYK ("CMYK;I") and converts it with cmyk2rgb.
//
// image/jpeg replicates the subsampled components instead and converts
// YCCK with its own rounding: on ImageMagick's CMYK JPEGs (YCCK, C and K
// full, M and Y 2×2 subsampled) that differs from PIL by up to ~60 levels
// at colour edges. It cannot be asked for the planes, but it keeps every
// sample when the Adobe marker says plain CMYK (transform 0): each of its
// CMYK bytes is 255 − the decoded sample, a subsampled sample replicated
// over its 2×2 block. So the file is decoded with the marker's transform
// byte set to 0, the samples are read back, and the libjpeg steps are
// applied here.

// jpeg4Layout is what decodeJPEG4 needs from the markers: the Adobe
// transform and where its byte is, and whether components 1 and 2 are
// subsampled 2×2 (image/jpeg accepts only 0x11 everywhere, or 0x22 for
// components 0 and 3 with 0x11 for 1 and 2).
type jpeg4Layout struct {
	transformAt int // offset of the APP14 transform byte in the file
	transform   byte
	sub         bool
}

// jpeg4Markers reads the layout of a four-component JPEG with an Adobe
// marker; ok is false for any other JPEG (image/jpeg refuses four
// components without the marker).
func jpeg4Markers(data []byte) (l jpeg4Layout, ok bool) {
	adobe, sof := false, false
	jpegSegments(data, func(marker byte, seg []byte) bool {
		switch {
		case marker == 0xEE && len(seg) >= 12 && string(seg[:5]) == "Adobe":
			// The last before the frame counts, as in libjpeg and
			// image/jpeg. seg is data[i:j]: its offset is what its
			// capacity lacks.
			l.transformAt, l.transform, adobe = cap(data)-cap(seg)+11, seg[11], true
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			sof = true
			if len(seg) < 6+4*3 || seg[5] != 4 {
				return false
			}
			l.sub = seg[6+1] == 0x22 && seg[6+3+1] == 0x11
			ok = true
			return false
		}
		return true
	})
	return l, ok && sof && adobe
}

// decodeJPEG4 decodes a four-component JPEG with an Adobe marker to opaque
// RGB as PIL does (see above); ok is false when data is not one.
func decodeJPEG4(data []byte, w, h int) (rgb *image.NRGBA, ok bool, err error) {
	l, ok := jpeg4Markers(data)
	if !ok {
		return nil, false, nil
	}
	patched := data
	if l.transform != 0 {
		patched = bytes.Clone(data)
		patched[l.transformAt] = 0
	}
	src, err := jpeg.Decode(bytes.NewReader(patched))
	if err != nil {
		return nil, true, err
	}
	m, isCMYK := src.(*image.CMYK)
	if !isCMYK || m.Rect != image.Rect(0, 0, w, h) {
		return nil, false, nil // not what image/jpeg gives today: the general path
	}
	// The samples of components 1 and 2: whole, or the top-left byte of
	// each replicated 2×2 block, upsampled as libjpeg does.
	var up1, up2 []uint8
	if l.sub {
		cw, ch := (w+1)/2, (h+1)/2
		s1, s2 := make([]uint8, cw*ch), make([]uint8, cw*ch)
		for y := 0; y < ch; y++ {
			row := m.Pix[2*y*m.Stride:]
			for x := 0; x < cw; x++ {
				s1[y*cw+x] = 255 - row[8*x+1]
				s2[y*cw+x] = 255 - row[8*x+2]
			}
		}
		up1, up2 = fancy420(s1, cw, w, h), fancy420(s2, cw, w, h)
	}
	rgb = decodedPool.get(w, h)
	c0, c1, c2 := make([]uint8, w), make([]uint8, w), make([]uint8, w)
	for y := 0; y < h; y++ {
		in := m.Pix[y*m.Stride : y*m.Stride+4*w]
		out := rgb.Pix[y*rgb.Stride : y*rgb.Stride+4*w]
		for x := 0; x < w; x++ {
			c0[x], c1[x], c2[x] = 255-in[4*x], 255-in[4*x+1], 255-in[4*x+2]
		}
		if l.sub {
			copy(c1, up1[y*w:(y+1)*w])
			copy(c2, up2[y*w:(y+1)*w])
		}
		if l.transform != 0 {
			// YCCK: libjpeg's ycck_cmyk_convert gives 255 − R, G, B of
			// (Y, Cb, Cr); read inverted, C, M, Y are R, G, B.
			yccRow(out, c0, c1, c2)
		} else {
			for x := 0; x < w; x++ {
				out[4*x], out[4*x+1], out[4*x+2] = 255-c0[x], 255-c1[x], 255-c2[x]
			}
		}
		for x := 0; x < w; x++ {
			out[4*x+3] = in[4*x+3] // K, inverted as PIL reads it: 255 − sample
		}
	}
	cmykToRGB(rgb)
	return rgb, true, nil
}

// fancy420 upsamples a 2×2-subsampled plane (stride cw, (h+1)/2 rows) to
// w×h with jdsample.c h2v2_fancy_upsample, as ycbcrToNRGBA does chroma.
func fancy420(sub []uint8, cw, w, h int) []uint8 {
	out := make([]uint8, w*h)
	ch := (h + 1) / 2
	sum := make([]int32, cw)
	row := make([]uint8, 2*cw)
	for y := 0; y < h; y++ {
		cy := y / 2
		nb := cy - 1 // the upper row of a pair leans on the row above, the lower on the one below
		if y%2 == 1 {
			nb = cy + 1
		}
		nb = min(max(nb, 0), ch-1)
		for i := range sum {
			sum[i] = 3*int32(sub[cy*cw+i]) + int32(sub[nb*cw+i])
		}
		h2v2(row, sum)
		copy(out[y*w:(y+1)*w], row[:w])
	}
	return out
}
