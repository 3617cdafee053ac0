package stages

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"sync"
)

// Resize brings a decoded image to Size×Size as the chosen ResizeMode says
// (the --resize flag) and returns an opaque *image.NRGBA.
//
// The resampler is our own port of PIL's (Pillow 9.4 Resample.c) bicubic
// path rather than disintegration/imaging: imaging's CatmullRom is the same
// a=-0.5 kernel with support scaling, but keeps float intermediates and
// rounds once where PIL quantises coefficients to 22-bit fixed point and
// rounds to uint8 after each separable pass (±1 level on rare pixels), and
// it fans out goroutines per call. The port matches torchvision bit for bit
// on lossless input and computes only the cropped window.
func (p Preprocess) Resize(img image.Image) (image.Image, error) {
	if p.Size <= 0 {
		return nil, fmt.Errorf("resize: size %d must be positive", p.Size)
	}
	src := asNRGBA(img)
	w, h := src.Rect.Dx(), src.Rect.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("resize: empty image %dx%d", w, h)
	}
	S := p.Size
	switch p.Mode {
	case NoResize:
		if w != S || h != S {
			return nil, fmt.Errorf("resize none: image is %dx%d, expected %dx%d", w, h, S, S)
		}
		return src, nil
	case Squash:
		return resampleWindow(src, S, S, image.Rect(0, 0, S, S)), nil
	case CenterCrop, "":
		nw, nh := shorterSideTo(w, h, int(math.Round(float64(S)/0.875)))
		if nw < S || nh < S {
			// Only for S ≥ 8·shorter … cannot happen since round(S/0.875) ≥ S,
			// but torchvision would pad: refuse rather than guess.
			return nil, fmt.Errorf("resize center-crop: %dx%d resized to %dx%d is smaller than %d", w, h, nw, nh, S)
		}
		// torchvision CenterCrop: int(round((h - S) / 2.0)), Python's
		// round-half-to-even.
		top := int(math.RoundToEven(float64(nh-S) / 2.0))
		left := int(math.RoundToEven(float64(nw-S) / 2.0))
		return resampleWindow(src, nw, nh, image.Rect(left, top, left+S, top+S)), nil
	default:
		return nil, fmt.Errorf("resize: unknown mode %q", p.Mode)
	}
}

// shorterSideTo is torchvision's Resize(int) output size: the shorter side
// becomes s, the longer int(s·long/short) (truncated).
func shorterSideTo(w, h, s int) (int, int) {
	if w <= h {
		return s, int(float64(s) * float64(h) / float64(w))
	}
	return int(float64(s) * float64(w) / float64(h)), s
}

func asNRGBA(img image.Image) *image.NRGBA {
	if n, ok := img.(*image.NRGBA); ok && n.Rect.Min == (image.Point{}) {
		return n
	}
	b := img.Bounds()
	n := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(n, n.Rect, img, b.Min, draw.Src)
	return n
}

const precisionBits = 32 - 8 - 2 // PIL's PRECISION_BITS for 8-bit channels

// bicubic is PIL's bicubic_filter (a = -0.5). The explicit float64
// conversions forbid fused multiply-adds so results equal the C code's.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return float64(float64(float64((a+2)*x)-(a+3))*x*x) + 1
	}
	if x < 2 {
		return float64(float64(float64(float64(float64(x-5)*x)+8)*x)-4) * a
	}
	return 0
}

// coeffs holds, per output pixel, the first input index, the tap count and
// ksize fixed-point weights (PIL's precompute_coeffs + normalize_coeffs_8bpc).
type coeffs struct {
	ksize  int
	bounds []int // xmin, n per output pixel
	k      []int32
}

// coeffScratch is resampleWindow's coefficient memory (vertical,
// horizontal, and precompute's float weights), pooled so that a resize
// allocates no coefficients once warm.
type coeffScratch struct {
	v, h coeffs
	kk   []float64
}

var coeffPool = sync.Pool{New: func() any { return new(coeffScratch) }}

// precompute fills c for resizing inSize pixels to outSize, reusing c's
// and *kk's memory.
func precompute(c *coeffs, kk *[]float64, inSize, outSize int) {
	const support0 = 2.0
	scale := float64(inSize) / float64(outSize)
	filterscale := math.Max(scale, 1)
	support := support0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c.ksize = ksize
	c.bounds = grow(c.bounds, 2*outSize)
	c.k = grow(c.k, ksize*outSize)
	*kk = grow(*kk, ksize)
	kkv := *kk
	ss := 1 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := float64(float64(xx)+0.5) * scale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w := bicubic(float64(float64(x+xmin)-center+0.5) * ss)
			kkv[x] = w
			ww += w
		}
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				kkv[x] /= ww
			}
			v := kkv[x] * (1 << precisionBits)
			if kkv[x] < 0 {
				c.k[xx*ksize+x] = int32(-0.5 + v)
			} else {
				c.k[xx*ksize+x] = int32(0.5 + v)
			}
		}
		c.bounds[2*xx], c.bounds[2*xx+1] = xmin, xmax
	}
}

func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resampleWindow resizes src to outW×outH with PIL's two-pass bicubic
// (horizontal first, uint8 in between) and returns only the window win of
// that result. Computing just the window is exact: each output pixel depends
// only on its own coefficients.
func resampleWindow(src *image.NRGBA, outW, outH int, win image.Rectangle) *image.NRGBA {
	inW, inH := src.Rect.Dx(), src.Rect.Dy()
	needH, needV := outW != inW, outH != inH

	// Vertical coefficients decide which source rows the window needs.
	cs := coeffPool.Get().(*coeffScratch)
	defer coeffPool.Put(cs)
	cv := &cs.v
	rowFirst, rowLast := win.Min.Y, win.Max.Y // source rows if no vertical pass
	if needV {
		precompute(cv, &cs.kk, inH, outH)
		rowFirst = cv.bounds[2*win.Min.Y]
		rowLast = cv.bounds[2*(win.Max.Y-1)] + cv.bounds[2*(win.Max.Y-1)+1]
		for y := win.Min.Y + 1; y < win.Max.Y; y++ { // bounds are monotone, but be safe
			if b := cv.bounds[2*y]; b < rowFirst {
				rowFirst = b
			}
			if e := cv.bounds[2*y] + cv.bounds[2*y+1]; e > rowLast {
				rowLast = e
			}
		}
	}

	// Horizontal pass into tmp: rows rowFirst..rowLast, columns of the window.
	tw := win.Dx()
	pool := &tmpPool
	if !needV {
		pool = &outPool // tmp is the result
	}
	tmp := pool.get(tw, rowLast-rowFirst)
	if needH {
		ch := &cs.h
		precompute(ch, &cs.kk, inW, outW)
		const half = int32(1) << (precisionBits - 1)
		for y := rowFirst; y < rowLast; y++ {
			in := src.Pix[y*src.Stride:]
			out := tmp.Pix[(y-rowFirst)*tmp.Stride:]
			for xx := 0; xx < tw; xx++ {
				ox := xx + win.Min.X
				xmin, n := ch.bounds[2*ox], ch.bounds[2*ox+1]
				k := ch.k[ox*ch.ksize : ox*ch.ksize+n]
				s0, s1, s2 := half, half, half
				p := in[4*xmin:]
				for x, kx := range k {
					s0 += int32(p[4*x]) * kx
					s1 += int32(p[4*x+1]) * kx
					s2 += int32(p[4*x+2]) * kx
				}
				out[4*xx], out[4*xx+1], out[4*xx+2], out[4*xx+3] = clip8(s0), clip8(s1), clip8(s2), 255
			}
		}
	} else {
		for y := rowFirst; y < rowLast; y++ {
			copy(tmp.Pix[(y-rowFirst)*tmp.Stride:(y-rowFirst+1)*tmp.Stride], src.Pix[y*src.Stride+4*win.Min.X:])
		}
	}
	if !needV {
		return tmp
	}
	defer tmpPool.put(tmp)
	dst := outPool.get(win.Dx(), win.Dy())
	const half = int32(1) << (precisionBits - 1)
	for yy := 0; yy < win.Dy(); yy++ {
		oy := yy + win.Min.Y
		ymin, n := cv.bounds[2*oy]-rowFirst, cv.bounds[2*oy+1]
		k := cv.k[oy*cv.ksize : oy*cv.ksize+n]
		out := dst.Pix[yy*dst.Stride:]
		for xx := 0; xx < tw; xx++ {
			s0, s1, s2 := half, half, half
			off := ymin*tmp.Stride + 4*xx
			for _, ky := range k {
				s0 += int32(tmp.Pix[off]) * ky
				s1 += int32(tmp.Pix[off+1]) * ky
				s2 += int32(tmp.Pix[off+2]) * ky
				off += tmp.Stride
			}
			out[4*xx], out[4*xx+1], out[4*xx+2], out[4*xx+3] = clip8(s0), clip8(s1), clip8(s2), 255
		}
	}
	return dst
}

// grow returns b resized to n elements, reusing its memory when it is large
// enough (contents are not kept or cleared: callers write what they read).
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
