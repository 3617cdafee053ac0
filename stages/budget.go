package stages

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// DefaultMemoryBudget is the default bound on the bytes held in flight by
// the images being read and decoded, across all workers (1 GiB).
const DefaultMemoryBudget int64 = 1 << 30

// ErrOverBudget is wrapped by TensorContext when one image alone needs more
// decoding memory than the budget allows: it becomes that item's error,
// where waiting could never succeed.
var ErrOverBudget = errors.New("image needs more memory than the budget")

// Budget bounds the memory of everything in flight between the sources and
// the model, whatever the inputs: the encoded bytes of items read but not
// yet decoded (AcquireInput), and the pixels of the images being decoded
// (TensorContext, from the header, before any pixel is decoded). Workers
// wait for their share instead of allocating; a decompression bomb that
// fits the pixel limit no longer costs gigabytes per worker.
//
// A quarter of the budget is for encoded input, the rest for decoding, so
// that queued inputs can never take all of it while the workers that would
// free them wait for decoding memory. An input larger than its quarter
// waits until it is alone, one larger than the whole budget is refused with
// ErrOverBudget, and so is an image whose decoding needs more than the
// decoding share.
//
// The budget counts what maeembed holds, not what the Go runtime keeps:
// with the default GOGC the heap may grow past the live bytes before a
// collection, so pair the budget with debug.SetMemoryLimit (GOMEMLIMIT)
// set to the model's size plus the budget.
//
// A nil *Budget is unlimited. Safe for concurrent use.
type Budget struct {
	size             int64
	inputCap, decCap int64
	input, dec       *semaphore.Weighted
	inUse, peak      atomic.Int64
}

// NewBudget returns a budget of size bytes (size ≤ 0: DefaultMemoryBudget).
func NewBudget(size int64) *Budget {
	if size <= 0 {
		size = DefaultMemoryBudget
	}
	in := size / 4
	return &Budget{size: size, inputCap: in, decCap: size - in,
		input: semaphore.NewWeighted(in), dec: semaphore.NewWeighted(size - in)}
}

// Size is the budget in bytes.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Peak is the largest number of bytes held at once so far.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	return b.peak.Load()
}

// InUse is the number of bytes held now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.inUse.Load()
}

// AcquireInput waits until n more bytes of encoded input may be held (an
// input larger than the input share waits to be the only one) and returns
// the function that gives them back, to be called once when the bytes are
// dropped. It fails when ctx ends, and with ErrOverBudget for an input
// larger than the whole budget (that item's error: drop its bytes).
func (b *Budget) AcquireInput(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	if n > b.size {
		return nil, fmt.Errorf("input of %s is larger than the whole memory budget of %s (raise it to read this item): %w",
			FormatBytes(n), FormatBytes(b.size), ErrOverBudget)
	}
	w := min(n, b.inputCap)
	if err := b.input.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return b.held(b.input, w, n), nil
}

// acquireDecode waits for n bytes of decoding memory; n beyond the decoding
// share is ErrOverBudget.
func (b *Budget) acquireDecode(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	if n > b.decCap {
		return nil, fmt.Errorf("decoding needs about %s, the memory budget allows %s for decoding (%s in all; raise it to decode this image): %w",
			FormatBytes(n), FormatBytes(b.decCap), FormatBytes(b.size), ErrOverBudget)
	}
	if err := b.dec.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return b.held(b.dec, n, n), nil
}

// held records n bytes as in use (w of them weighed on s) and returns their
// release, which is safe to call more than once.
func (b *Budget) held(s *semaphore.Weighted, w, n int64) func() {
	now := b.inUse.Add(n)
	for p := b.peak.Load(); now > p && !b.peak.CompareAndSwap(p, now); p = b.peak.Load() {
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			b.inUse.Add(-n)
			s.Release(w)
		}
	}
}

// FormatBytes writes a size of n bytes in the largest binary unit it
// reaches (B, KiB, MiB, GiB, TiB), with one decimal when that unit does
// not divide it: 10240 is "10 KiB", 1572864 "1.5 MiB".
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i, div := 0, int64(1)
	for i < len(units)-1 && n >= div<<10 {
		i, div = i+1, div<<10
	}
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(div), units[i])
}

// decodeCost estimates the bytes decoding an image holds at its peak, from
// its header: the decoder's own image and working buffers, our opaque RGB
// copy, the upright copy when an EXIF orientation applies, and the resize
// pass. It errs on the large side (JPEG as 4:4:4).
func (p Preprocess) decodeCost(hd header) int64 {
	format, cfg, oriented := hd.format, hd.cfg, hd.orient > 1
	px := int64(cfg.Width) * int64(cfg.Height)
	native := int64(8) // 16-bit and anything unknown
	switch cfg.ColorModel {
	case color.GrayModel, color.AlphaModel:
		native = 1
	case color.Gray16Model:
		native = 2
	case color.YCbCrModel:
		native = 3
	case color.NYCbCrAModel, color.CMYKModel, color.RGBAModel, color.NRGBAModel:
		native = 4
	}
	if _, ok := cfg.ColorModel.(color.Palette); ok {
		native = 1
	}
	switch format {
	case "jpeg":
		if jpegProgressive(hd.data) {
			native += 12 // every coefficient kept: an int32 per sample, 3 components
		}
	case "png", "tiff":
		native *= 2 // the decompressed rows (interlace passes, TIFF strips)
	case "bmp":
		if native == 1 {
			native = 2 // run-length BMPs expand their indices before the image
		}
	case "webp":
		native = 8 // lossless: the ARGB transform buffer beside the NRGBA; animated: frame and canvas
	}
	perPx := native + 4 // our RGB copy
	if oriented {
		perPx += 4
	}
	resize := 4 * int64(p.Size+1) * int64(max(cfg.Width, cfg.Height))
	cost := px*perPx + resize
	if format == "tiff" {
		cost += int64(len(hd.data)) // x/image/tiff reads compressed strips whole
	}
	return cost
}
