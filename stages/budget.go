package stages

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/maeembed/maeembed/config"
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
// waits until it is alone and takes the rest of its size from the decoding
// share (so what is held never exceeds the budget: Peak ≤ Size); the images
// decoded beside it (its own, as nothing else is read meanwhile) get what
// it leaves, and one that needs more is ErrOverBudget rather than a wait
// that could never end. An input larger than the whole budget is refused
// with ErrOverBudget, and so is an image whose decoding needs more than the
// decoding share.
//
// The budget counts what maeembed holds, not what the Go runtime keeps:
// with the default GOGC the heap may grow past the live bytes before a
// collection. So a large hold (LargeHold or more) granted after as much
// was given back first collects the garbage and returns it to the system:
// the heap holds the live images, not the last large image's buffers
// beside the next one's. With the accounting exact, what the budget
// counts stays within it; a process also holds its model, the run's
// tensors and the sinks' buffers, which the budget does not count, and
// the collector's headroom above the live heap, which only a soft memory
// limit bounds (cmd's is the model plus 384 MiB; docs/batch.md, "What
// bounds the peak RSS").
//
// A nil *Budget is unlimited. Safe for concurrent use.
type Budget struct {
	size             int64
	inputCap, decCap int64
	input, dec       *semaphore.Weighted
	inUse, peak      atomic.Int64
	// excess is what an input larger than the input share holds of the
	// decoding share.
	excess atomic.Int64
	// kept is what Keep holds of the decoding share; mostDecode the
	// largest decoding granted so far, which Keep leaves room for.
	kept, mostDecode atomic.Int64
	keepMu           sync.Mutex // one Keep at a time: check, then take
	// freed counts the bytes of large holds given back since the last
	// collection.
	freed atomic.Int64
}

// LargeHold is the size from which a hold is large: granting one collects
// the garbage of the large holds given back before it (see Budget).
// Ordinary photos stay far below it and never pay for a collection.
const LargeHold = 32 << 20

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
// input larger than the input share waits to be the only one, and takes
// the rest from the decoding share) and returns the function that gives
// them back, to be called once when the bytes are dropped. It fails when
// ctx ends, and with ErrOverBudget for an input larger than the whole
// budget (that item's error: drop its bytes).
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
	x := n - w
	if x > 0 {
		// Holding the whole input share, this input is alone: no image is
		// waiting for decoding memory (each input is given back only after
		// its image is decoded), so this wait ends with the decodes now
		// running.
		if err := b.dec.Acquire(ctx, x); err != nil {
			b.input.Release(w)
			return nil, err
		}
		b.excess.Add(x)
	}
	b.collect(n)
	b.held(n)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			b.unheld(n)
			b.input.Release(w)
			if x > 0 {
				b.excess.Add(-x)
				b.dec.Release(x)
			}
		}
	}, nil
}

// acquireDecode waits for n bytes of decoding memory; n beyond the decoding
// share (less what a large input holds of it) is ErrOverBudget.
func (b *Budget) acquireDecode(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	// The hints are for every command (pretrain has no --retry-errors; a
	// batch run's summary says how to retry).
	if n > b.decCap {
		return nil, fmt.Errorf("decoding needs about %s, the memory budget allows %s for decoding (%s in all; raise --memory-budget to decode this image; if it cannot be that large, its header is corrupt): %w",
			FormatBytes(n), FormatBytes(b.decCap), FormatBytes(b.size), ErrOverBudget)
	}
	// An input larger than the input share holds the rest of its size from
	// the decoding share until its images are decoded (they are the only
	// ones in flight then): what it leaves is all they can have.
	if x := b.excess.Load(); n > b.decCap-x-b.kept.Load() {
		if k := b.kept.Load(); k > 0 {
			return nil, fmt.Errorf("decoding needs about %s; beside the %s of images kept in memory, the memory budget of %s leaves %s for decoding (raise --memory-budget to decode this image; if it cannot be that large, its header is corrupt): %w",
				FormatBytes(n), FormatBytes(k), FormatBytes(b.size), FormatBytes(b.decCap-x-k), ErrOverBudget)
		}
		return nil, fmt.Errorf("decoding needs about %s; beside its input of more than %s, the memory budget of %s leaves %s for decoding (raise --memory-budget to decode this image; if it cannot be that large, its header is corrupt): %w",
			FormatBytes(n), FormatBytes(b.inputCap), FormatBytes(b.size), FormatBytes(b.decCap-x), ErrOverBudget)
	}
	if err := b.dec.Acquire(ctx, n); err != nil {
		return nil, err
	}
	for m := b.mostDecode.Load(); n > m && !b.mostDecode.CompareAndSwap(m, n); m = b.mostDecode.Load() {
	}
	b.collect(n)
	b.held(n)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			b.unheld(n)
			b.dec.Release(n)
		}
	}, nil
}

// Keep takes n bytes from the decoding share for images a run keeps in
// memory (a training set), until the returned release. It leaves room
// for the largest decoding granted so far, so that the images still to
// come can be decoded beside the kept ones; an n that does not fit beside
// that is ErrOverBudget, at once (what is kept is not given back while
// the run lasts, so waiting could never end). A wait for decodings in
// flight ends with ctx.
func (b *Budget) Keep(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	b.keepMu.Lock()
	defer b.keepMu.Unlock()
	k, room := b.kept.Load(), b.decCap-b.mostDecode.Load()
	if k+n > room {
		return nil, fmt.Errorf("keeping %s more in memory beside the %s kept would leave less than the %s of the largest decoding so far in the %s memory budget (its decoding share is %s): %w",
			FormatBytes(n), FormatBytes(k), FormatBytes(b.mostDecode.Load()), FormatBytes(b.size), FormatBytes(b.decCap), ErrOverBudget)
	}
	if err := b.dec.Acquire(ctx, n); err != nil {
		return nil, err
	}
	b.kept.Add(n)
	b.held(n)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			b.unheld(n)
			b.kept.Add(-n)
			b.dec.Release(n)
		}
	}, nil
}

// Kept is the number of bytes held by Keep now.
func (b *Budget) Kept() int64 {
	if b == nil {
		return 0
	}
	return b.kept.Load()
}

// held records n bytes as in use; unheld gives them back. The caller's
// release calls unheld once (guarded by its own flag, so a hold costs one
// closure and its flag), then gives back its semaphores.
func (b *Budget) held(n int64) {
	now := b.inUse.Add(n)
	for p := b.peak.Load(); now > p && !b.peak.CompareAndSwap(p, now); p = b.peak.Load() {
	}
}

// unheld gives back n bytes recorded by held.
func (b *Budget) unheld(n int64) {
	b.inUse.Add(-n)
	if n >= LargeHold {
		b.freed.Add(n)
	}
}

// collect runs a garbage collection before a large hold of n bytes is
// used when at least LargeHold bytes of large holds were given back since
// the last one: their buffers are garbage by then (a hold is given back
// once its bytes are dropped), and the heap reuses them for this one
// instead of growing by it. The Go collector alone would let the heap
// reach the live bytes plus the new allocation before collecting (a
// single large allocation is made before the collection it triggers).
func (b *Budget) collect(n int64) {
	if n < LargeHold || b.freed.Load() < LargeHold {
		return
	}
	b.freed.Store(0)
	debug.FreeOSMemory()
}

// FormatBytes writes a size of n bytes in the largest binary unit it
// reaches (B, KiB, MiB, GiB, TiB), with one decimal when that unit does
// not divide it: 10240 is "10 KiB", 1572864 "1.5 MiB".
func FormatBytes(n int64) string { return config.FormatSize(n) }

// decodeCost estimates the bytes decoding an image holds at its peak, from
// its header: the decoder's own image and working buffers, our opaque RGB
// copy, the upright copy when an EXIF orientation applies, and what its
// consumer then allocates from the decoded image: with shrink 0, Resize
// (resizeBytes: its window, not the whole resized image); with shrink > 0,
// ShrinkTo(img, shrink) instead (shrinkBytes: a training set with
// augmentation keeps each image shrunk to a shorter side of 2·S, whose
// horizontal pass over every source row costs more than the S×S window).
// It errs on the large side (JPEG as 4:4:4).
func (p Preprocess) decodeCost(hd header, shrink int) int64 {
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
		if cfg.ColorModel == color.CMYKModel {
			// image/jpeg's planes and black plane beside its CMYK image,
			// then decodeJPEG4's subsampled and upsampled planes.
			native = 4 + 4 + 3
		}
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
	w, h := cfg.Width, cfg.Height
	if hd.orient >= 5 {
		w, h = h, w // the consumer gets the upright image: transposed
	}
	cost := px * perPx
	if shrink > 0 {
		cost += shrinkBytes(w, h, shrink)
	} else {
		cost += p.resizeBytes(w, h)
	}
	if format == "tiff" {
		cost += int64(len(hd.data)) // x/image/tiff reads compressed strips whole
	}
	return cost
}
