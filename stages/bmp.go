package stages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
)

// The BMP variants PIL (BmpImagePlugin) reads and golang.org/x/image/bmp
// refuses: 16 bits per pixel (5-5-5, or 5-6-5 / 5-5-5 bit fields) and
// run-length encoded palette images (RLE8, RLE4). Everything else goes
// to x/image/bmp.

type bmpInfo struct {
	w, h      int
	bottomUp  bool
	bpp       int
	comp      uint32
	pixOff    int
	pal       color.Palette
	rgb565    bool // 16-bit: 5-6-5 rather than 5-5-5
	data      []byte
	headerLen int
}

// bmpFallback parses the header of a BMP that x/image/bmp refuses; ok is
// false for anything it does not handle either.
func bmpFallback(data []byte) (bmpInfo, bool) {
	if len(data) < 54 || string(data[:2]) != "BM" {
		return bmpInfo{}, false
	}
	le := binary.LittleEndian
	b := bmpInfo{data: data, pixOff: int(le.Uint32(data[10:])), headerLen: int(le.Uint32(data[14:]))}
	if b.headerLen < 40 || 14+b.headerLen > len(data) {
		return bmpInfo{}, false
	}
	w, h := int32(le.Uint32(data[18:])), int32(le.Uint32(data[22:]))
	b.bpp, b.comp = int(le.Uint16(data[28:])), le.Uint32(data[30:])
	b.bottomUp = h > 0
	if h < 0 {
		h = -h
	}
	b.w, b.h = int(w), int(h)
	if w <= 0 || h <= 0 {
		return bmpInfo{}, false
	}
	switch {
	case b.bpp == 16 && b.comp == 0: // 5-5-5
	case b.bpp == 16 && b.comp == 3: // bit fields, after a 40-byte header or inside a larger one
		if len(data) < 66 {
			return bmpInfo{}, false
		}
		r, g, bl := le.Uint32(data[54:]), le.Uint32(data[58:]), le.Uint32(data[62:])
		switch [3]uint32{r, g, bl} {
		case [3]uint32{0xf800, 0x07e0, 0x001f}:
			b.rgb565 = true
		case [3]uint32{0x7c00, 0x03e0, 0x001f}:
		default:
			return bmpInfo{}, false // PIL refuses other layouts too
		}
	case b.bpp == 8 && b.comp == 1, b.bpp == 4 && b.comp == 2: // RLE8, RLE4
		n := int(le.Uint32(data[46:]))
		if n == 0 || n > 1<<b.bpp {
			n = 1 << b.bpp
		}
		off := 14 + b.headerLen
		if off+4*n > len(data) {
			return bmpInfo{}, false
		}
		for i := 0; i < n; i++ {
			p := data[off+4*i:]
			b.pal = append(b.pal, color.NRGBA{p[2], p[1], p[0], 255})
		}
	default:
		return bmpInfo{}, false
	}
	return b, true
}

func (b bmpInfo) config() image.Config {
	if b.pal != nil {
		return image.Config{ColorModel: b.pal, Width: b.w, Height: b.h}
	}
	return image.Config{ColorModel: color.NRGBAModel, Width: b.w, Height: b.h}
}

// decode returns the pixels: *image.Paletted for RLE, opaque *image.NRGBA
// for 16-bit, with PIL's 5/6-bit expansion (v·255/31, v·255/63).
func (b bmpInfo) decode() (image.Image, error) {
	if b.pixOff < 0 || b.pixOff > len(b.data) {
		return nil, errors.New("bmp: pixel data offset outside the file")
	}
	px := b.data[b.pixOff:]
	row := func(y int) int { // the stored row holding image row y
		if b.bottomUp {
			return b.h - 1 - y
		}
		return y
	}
	if b.bpp == 16 {
		stride := (2*b.w + 3) &^ 3
		if len(px) < stride*b.h {
			return nil, fmt.Errorf("bmp: %d bytes of pixel data, %dx%d at 16 bits need %d", len(px), b.w, b.h, stride*b.h)
		}
		m := decodedPool.get(b.w, b.h)
		for y := 0; y < b.h; y++ {
			src := px[row(y)*stride:]
			dst := m.Pix[y*m.Stride:]
			for x := 0; x < b.w; x++ {
				v := int(src[2*x]) | int(src[2*x+1])<<8
				if b.rgb565 {
					dst[4*x], dst[4*x+1], dst[4*x+2] = uint8((v>>11&31)*255/31), uint8((v>>5&63)*255/63), uint8((v&31)*255/31)
				} else {
					dst[4*x], dst[4*x+1], dst[4*x+2] = uint8((v>>10&31)*255/31), uint8((v>>5&31)*255/31), uint8((v&31)*255/31)
				}
				dst[4*x+3] = 255
			}
		}
		return m, nil
	}
	idx, err := bmpRLE(px, b.w, b.h, b.bpp == 4)
	if err != nil {
		return nil, err
	}
	m := image.NewPaletted(image.Rect(0, 0, b.w, b.h), b.pal)
	for y := 0; y < b.h; y++ {
		copy(m.Pix[y*m.Stride:y*m.Stride+b.w], idx[row(y)*b.w:])
	}
	return m, nil
}

// bmpRLE expands RLE8/RLE4 data into w·h palette indices in stored row
// order, as PIL's BmpRleDecoder does: encoded runs are cut at the row end,
// end-of-line and delta skip pixels (index 0), and data that stops before
// the last pixel is an error (PIL: "not enough image data").
func bmpRLE(src []byte, w, h int, rle4 bool) ([]byte, error) {
	total := w * h
	out := make([]byte, 0, total)
	x, i := 0, 0
	for len(out) < total && i+2 <= len(src) {
		n, v := int(src[i]), src[i+1]
		i += 2
		if n > 0 { // encoded run
			n = min(n, max(0, w-x))
			for k := 0; k < n; k++ {
				c := v
				if rle4 {
					c = v >> 4
					if k%2 == 1 {
						c = v & 15
					}
				}
				out = append(out, c)
			}
			x += n
			continue
		}
		switch v {
		case 0: // end of line
			for len(out)%w != 0 {
				out = append(out, 0)
			}
			x = 0
		case 1: // end of bitmap
			i = len(src)
		case 2: // delta: right, up
			if i+2 > len(src) {
				i = len(src)
				break
			}
			skip := int(src[i]) + int(src[i+1])*w
			i += 2
			out = append(out, make([]byte, min(skip, total-len(out)))...)
			x = len(out) % w
		default: // absolute run of v pixels, padded to a 16-bit boundary
			n := int(v)
			nb := n
			if rle4 {
				nb = (n + 1) / 2
			}
			if i+nb > len(src) {
				i = len(src)
				break
			}
			for k := 0; k < n; k++ {
				var c byte
				switch {
				case !rle4:
					c = src[i+k]
				case k%2 == 0:
					c = src[i+k/2] >> 4
				default:
					c = src[i+k/2] & 15
				}
				out = append(out, c)
			}
			i += nb + nb&1
			x += n
		}
	}
	if len(out) < total {
		return nil, fmt.Errorf("bmp: run-length data ends after %d of %d pixels", len(out), total)
	}
	return out[:total], nil
}
