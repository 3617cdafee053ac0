package stages

import (
	"image"
	"sync"
	"sync/atomic"
)

// pixPool recycles the intermediate RGBA buffers of Tensor (decoded image,
// horizontal-pass rows, resized S×S), which are dead once the tensor is
// written. A pool per role: their sizes differ, so one shared pool would hand
// a small buffer to the large request and drop it.
type pixPool struct {
	p sync.Pool
	// misses counts get calls the pool could not serve (a new buffer was
	// allocated): tests check that warm pools serve every intermediate.
	misses atomic.Int64
}

var (
	decodedPool pixPool // toRGB / orient output, source-sized
	tmpPool     pixPool // resampleWindow's horizontal pass
	outPool     pixPool // resampleWindow's S×S output
)

// maxPooledBytes keeps a rare huge image from pinning its buffer in the pool
// (16 Mpx; a 4K photo is 8.3 Mpx).
const maxPooledBytes = 64 << 20

// get returns a w×h NRGBA with origin (0,0) whose pixels are NOT cleared:
// every caller writes all of them.
func (pp *pixPool) get(w, h int) *image.NRGBA {
	n := 4 * w * h
	// The pool holds the images themselves, header and all, so neither a
	// get nor a put allocates.
	if img, _ := pp.p.Get().(*image.NRGBA); img != nil && cap(img.Pix) >= n {
		img.Pix, img.Stride, img.Rect = img.Pix[:n], 4*w, image.Rect(0, 0, w, h)
		return img
	}
	pp.misses.Add(1)
	return image.NewNRGBA(image.Rect(0, 0, w, h))
}

// put gives img's pixels back; img must not be used afterwards.
func (pp *pixPool) put(img *image.NRGBA) {
	if cap(img.Pix) > maxPooledBytes {
		return
	}
	pp.p.Put(img)
}
