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
	if p.Mode == NoResize {
		if w != p.Size || h != p.Size {
			return nil, fmt.Errorf("resize none: image is %dx%d, expected %dx%d", w, h, p.Size, p.Size)
		}
		return src, nil
	}
	outW, outH, win, err := p.plan(w, h)
	if err != nil {
		return nil, err
	}
	return resampleWindow(src, outW, outH, win), nil
}

// plan is Resize's geometry for a w×h image (w, h > 0, p.Size > 0): the
// size outW×outH it resizes to and the Size×Size window of that it keeps.
// Resize none has no plan (an error).
func (p Preprocess) plan(w, h int) (outW, outH int, win image.Rectangle, err error) {
	S := p.Size
	switch p.Mode {
	case Squash:
		return S, S, image.Rect(0, 0, S, S), nil
	case CenterCrop, "":
		nw, nh := shorterSideTo(w, h, int(math.Round(float64(S)/0.875)))
		if nw < S || nh < S {
			// Only for S ≥ 8·shorter … cannot happen since round(S/0.875) ≥ S,
			// but torchvision would pad: refuse rather than guess.
			return 0, 0, win, fmt.Errorf("resize center-crop: %dx%d resized to %dx%d is smaller than %d", w, h, nw, nh, S)
		}
		// torchvision CenterCrop: int(round((h - S) / 2.0)), Python's
		// round-half-to-even.
		top := int(math.RoundToEven(float64(nh-S) / 2.0))
		left := int(math.RoundToEven(float64(nw-S) / 2.0))
		return nw, nh, image.Rect(left, top, left+S, top+S), nil
	default:
		return 0, 0, win, fmt.Errorf("resize: unknown mode %q", p.Mode)
	}
}

// resizeBytes is what Resize of a w×h image allocates beyond the image
// itself, in bytes: the horizontal pass's rows (the window's columns, for
// the source rows the window reads), the Size×Size result and both axes'
// coefficient tables. It follows the window, so a 200000×1 strip costs as
// little as a photo; 0 for resize none or a size Resize refuses.
func (p Preprocess) resizeBytes(w, h int) int64 {
	if p.Size <= 0 || w <= 0 || h <= 0 || p.Mode == NoResize {
		return 0
	}
	outW, outH, win, err := p.plan(w, h)
	if err != nil {
		return 0
	}
	return resampleBytes(w, h, outW, outH, win)
}

// shrinkBytes is what ShrinkTo(img, s) of a w×h image allocates, in bytes
// (resampleBytes of the whole shrunk image): 0 when its shorter side is
// at most s already (or s <= 0), as then it is kept as it is.
func shrinkBytes(w, h, s int) int64 {
	if s <= 0 || w <= 0 || h <= 0 || min(w, h) <= s {
		return 0
	}
	nw, nh := shorterSideTo(w, h, s)
	return resampleBytes(w, h, nw, nh, image.Rect(0, 0, nw, nh))
}

// resampleBytes is what resampleWindow of a w×h image to outW×outH,
// window win, allocates: the horizontal pass's rows (the window's
// columns, for the source rows the window reads), the result when there
// is a vertical pass (else the horizontal pass is the result) and both
// axes' coefficient tables.
func resampleBytes(w, h, outW, outH int, win image.Rectangle) int64 {
	tw, th := int64(win.Dx()), int64(win.Dy())
	// coeffBytes is one axis's tables for n output pixels (precompute).
	coeffBytes := func(inSize, outSize int, n int64) int64 {
		ksize, _, _, _ := kernelSize(inSize, outSize)
		return 8*2*n + 4*int64(ksize)*n + 8*int64(ksize)
	}
	var cost int64
	rows := th // source rows the horizontal pass reads
	if outH != h {
		_, scale, _, support := kernelSize(h, outH)
		first, _ := taps(win.Min.Y, h, scale, support)
		_, last := taps(win.Max.Y-1, h, scale, support)
		rows = int64(last - first)
		cost += coeffBytes(h, outH, th) + 4*tw*th // result
	}
	cost += 4 * tw * rows // horizontal pass (the result without vertical pass)
	if outW != w {
		cost += coeffBytes(w, outW, tw)
	}
	return cost
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

// coeffs holds, for the output pixels first..first+n-1 of one axis, the
// first input index, the tap count and ksize fixed-point weights (PIL's
// precompute_coeffs + normalize_coeffs_8bpc, restricted to a window).
type coeffs struct {
	ksize  int
	first  int   // output index of bounds[0:2]
	bounds []int // xmin, n per output pixel of the window
	k      []int32
}

// at returns output pixel o's first input index and its weights.
func (c *coeffs) at(o int) (xmin int, k []int32) {
	i := o - c.first
	xmin, n := c.bounds[2*i], c.bounds[2*i+1]
	return xmin, c.k[i*c.ksize : i*c.ksize+n]
}

// coeffScratch is resampleWindow's coefficient memory (vertical,
// horizontal, and precompute's float weights), pooled so that a resize
// allocates no coefficients once warm.
type coeffScratch struct {
	v, h coeffs
	kk   []float64
}

// bytes is the memory cs keeps.
func (cs *coeffScratch) bytes() int {
	return 8*(cap(cs.v.bounds)+cap(cs.h.bounds)+cap(cs.kk)) + 4*(cap(cs.v.k)+cap(cs.h.k))
}

// maxPooledCoeffBytes keeps the tables of a rare extreme downscale (a
// squash of a 100000-pixel-wide strip needs 3.2 MB of weights for 224
// columns) out of the pool. A photo's tables are tens of kilobytes.
const maxPooledCoeffBytes = 1 << 20

var coeffPool = sync.Pool{New: func() any { return new(coeffScratch) }}

func putCoeffs(cs *coeffScratch) {
	if cs.bytes() > maxPooledCoeffBytes {
		return
	}
	coeffPool.Put(cs)
}

// kernelSize is PIL's tap count (ksize) for resizing inSize pixels to
// outSize with the bicubic filter, and the scale and support it derives
// from them.
func kernelSize(inSize, outSize int) (ksize int, scale, filterscale, support float64) {
	const support0 = 2.0
	scale = float64(inSize) / float64(outSize)
	filterscale = math.Max(scale, 1)
	support = support0 * filterscale
	return int(math.Ceil(support))*2 + 1, scale, filterscale, support
}

// taps is PIL's input range [xmin, xmax) for output pixel xx.
func taps(xx, inSize int, scale, support float64) (xmin, xmax int) {
	center := float64(float64(xx)+0.5) * scale
	xmin = int(center - support + 0.5)
	if xmin < 0 {
		xmin = 0
	}
	xmax = int(center + support + 0.5)
	if xmax > inSize {
		xmax = inSize
	}
	return xmin, xmax
}

// precompute fills c for the output pixels [first, last) of resizing
// inSize pixels to outSize, reusing c's and *kk's memory: what it keeps is
// proportional to last-first, whatever outSize is. Each pixel's weights
// are PIL's for that pixel of the whole resize.
func precompute(c *coeffs, kk *[]float64, inSize, outSize, first, last int) {
	ksize, scale, filterscale, support := kernelSize(inSize, outSize)
	n := last - first
	c.ksize, c.first = ksize, first
	c.bounds = grow(c.bounds, 2*n)
	c.k = grow(c.k, ksize*n)
	*kk = grow(*kk, ksize)
	kkv := *kk
	ss := 1 / filterscale
	for i := 0; i < n; i++ {
		xx := first + i
		center := float64(float64(xx)+0.5) * scale
		xmin, xmax := taps(xx, inSize, scale, support)
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
				c.k[i*ksize+x] = int32(-0.5 + v)
			} else {
				c.k[i*ksize+x] = int32(0.5 + v)
			}
		}
		c.bounds[2*i], c.bounds[2*i+1] = xmin, xmax
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
// only on its own coefficients. Time and memory follow the window and the
// source rows it reads, not outW×outH: a 200000×1 strip center-cropped to
// 224 is resized to 51200000×256 in principle, of which 224×224 is made.
func resampleWindow(src *image.NRGBA, outW, outH int, win image.Rectangle) *image.NRGBA {
	cs := coeffPool.Get().(*coeffScratch)
	defer putCoeffs(cs)
	return resample(cs, src, outW, outH, win)
}

// resample is resampleWindow with the coefficient memory cs.
func resample(cs *coeffScratch, src *image.NRGBA, outW, outH int, win image.Rectangle) *image.NRGBA {
	inW, inH := src.Rect.Dx(), src.Rect.Dy()
	needH, needV := outW != inW, outH != inH

	// Vertical coefficients decide which source rows the window needs.
	cv := &cs.v
	rowFirst, rowLast := win.Min.Y, win.Max.Y // source rows if no vertical pass
	if needV {
		precompute(cv, &cs.kk, inH, outH, win.Min.Y, win.Max.Y)
		rowFirst, rowLast = inH, 0
		for i := 0; i < win.Dy(); i++ { // bounds are monotone, but be safe
			b, n := cv.bounds[2*i], cv.bounds[2*i+1]
			rowFirst, rowLast = min(rowFirst, b), max(rowLast, b+n)
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
		precompute(ch, &cs.kk, inW, outW, win.Min.X, win.Max.X)
		const half = int32(1) << (precisionBits - 1)
		for y := rowFirst; y < rowLast; y++ {
			in := src.Pix[y*src.Stride:]
			out := tmp.Pix[(y-rowFirst)*tmp.Stride:]
			for xx := 0; xx < tw; xx++ {
				xmin, k := ch.at(xx + win.Min.X)
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
		ymin, k := cv.at(yy + win.Min.Y)
		ymin -= rowFirst
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
