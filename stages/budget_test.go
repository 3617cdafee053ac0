package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestBudgetRefusesBombsFromTheHeader: the 38-byte WebP and 35-byte GIF of
// testdata/refused (go run ./stages/testdata/genbombs) and a 1-bit PNG of
// 20 KiB each hold 13000×13000 pixels, under the default pixel limit;
// without a budget they cost 1.35, 0.7 and 1 GB to decode. Under the default budget
// each is refused with ErrOverBudget before any pixel is decoded: nothing
// is ever held.
func TestBudgetRefusesBombsFromTheHeader(t *testing.T) {
	inputs := map[string][]byte{"png": zeroPNG(t, 13000, 13000, 0, 1, false)}
	for _, f := range []string{"bomb-vp8l-13000.webp", "bomb-gif-screen-13000.gif"} {
		b, err := os.ReadFile(filepath.Join("testdata/refused", f))
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = b
	}
	b := NewBudget(0)
	p := Preprocess{Size: 16, Mode: Squash, Budget: b}
	dst := make([]float32, 3*16*16)
	for name, data := range inputs {
		_, _, err := p.TensorContext(context.Background(), dst, data)
		var se *Error
		if !errors.Is(err, ErrOverBudget) || !errors.As(err, &se) || se.Stage != "decode" || !strings.Contains(err.Error(), "13000x13000") {
			t.Errorf("%s: err = %v, want a decode-stage ErrOverBudget naming the size", name, err)
		}
	}
	if b.Peak() != 0 || b.InUse() != 0 {
		t.Errorf("peak %d, in use %d: a refused image must hold nothing", b.Peak(), b.InUse())
	}
	// The same GIF with a 600×400 screen decodes under the default budget
	// and is refused under a budget too small for it: the header decides.
	gif := bytes.Clone(inputs["bomb-gif-screen-13000.gif"])
	binary.LittleEndian.PutUint16(gif[6:], 600)
	binary.LittleEndian.PutUint16(gif[8:], 400)
	if _, _, err := p.TensorContext(context.Background(), dst, gif); err != nil {
		t.Errorf("600x400 GIF screen under the default budget: %v", err)
	}
	tiny := Preprocess{Size: 16, Mode: Squash, Budget: NewBudget(1 << 20)}
	if _, _, err := tiny.TensorContext(context.Background(), dst, gif); !errors.Is(err, ErrOverBudget) {
		t.Errorf("600x400 GIF screen under a 1 MiB budget: err = %v, want ErrOverBudget", err)
	}
}

// TestBudgetBoundsConcurrentDecodes: eight workers share a budget with room
// for about two of these images at a time: what they hold together never
// exceeds it, every tensor equals its unbudgeted result, and everything
// is given back.
func TestBudgetBoundsConcurrentDecodes(t *testing.T) {
	var inputs [][]byte
	for _, f := range []string{"quadrants.png", "rgb16.png", "exif-orientation-6.png", "lossy.webp", "animated.webp", "sub-420.jpg", "frame-larger-than-screen.gif"} {
		b, err := os.ReadFile(filepath.Join("testdata/odd", f))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	free := Preprocess{Size: 16, Mode: CenterCrop}
	want := make([][]float32, len(inputs))
	var most int64
	for i, data := range inputs {
		want[i] = make([]float32, 3*16*16)
		if _, _, err := free.Tensor(want[i], data); err != nil {
			t.Fatal(err)
		}
		hd, err := free.header(data)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, free.decodeCost(hd, 0))
	}
	// Decoding gets three quarters: room for two of the largest.
	b := NewBudget(most * 8 / 3)
	p := free
	p.Budget = b
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]float32, 3*16*16)
			for it := 0; it < 20; it++ {
				i := (g + it) % len(inputs)
				if _, _, err := p.TensorContext(context.Background(), got, inputs[i]); err != nil {
					errs <- err.Error()
					return
				}
				if !slices.Equal(got, want[i]) {
					errs <- "tensor differs under the budget"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if b.Peak() > b.Size() || b.Peak() < most {
		t.Errorf("peak %d, budget %d, largest image %d", b.Peak(), b.Size(), most)
	}
	if b.InUse() != 0 {
		t.Errorf("%d bytes still held", b.InUse())
	}
}

// TestBudgetInput: an input larger than the input share waits until it is
// alone instead of failing, one larger than the whole budget fails, and a
// wait ends with its context.
func TestBudgetInput(t *testing.T) {
	b := NewBudget(4 << 20) // 1 MiB for inputs
	ctx := context.Background()
	small, err := b.AcquireInput(ctx, 512<<10)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := b.AcquireInput(ctx, 3<<20) // larger than the share
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	// It cannot have its share while the small input is held.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.AcquireInput(cctx, 1<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire under a cancelled context: %v", err)
	}
	select {
	case <-got:
		t.Fatal("a larger-than-share input was admitted beside another")
	default:
	}
	small()
	big := <-got
	if b.InUse() != 3<<20 || b.Peak() != 3<<20 {
		t.Errorf("in use %d, peak %d, want the big input's 3 MiB", b.InUse(), b.Peak())
	}
	big()
	big() // releasing twice gives back once
	if b.InUse() != 0 {
		t.Errorf("in use %d after release", b.InUse())
	}
	if _, err := b.AcquireInput(ctx, 5<<20); !errors.Is(err, ErrOverBudget) {
		t.Errorf("an input beyond the whole budget: err = %v, want ErrOverBudget", err)
	}
	var none *Budget // unlimited
	r, err := none.AcquireInput(ctx, 1<<40)
	if err != nil || none.Peak() != 0 {
		t.Fatal(err)
	}
	r()
}

// TestDecodeCostFollowsTheDecoder: progressive JPEGs keep every coefficient
// until the last scan (Go's decoder holds an int32 per sample), so they
// cost more than baseline ones of the same size; an EXIF rotation adds the
// upright copy.
func TestDecodeCostFollowsTheDecoder(t *testing.T) {
	var p Preprocess
	cost := func(f string) int64 {
		data, err := os.ReadFile(filepath.Join("testdata/odd", f))
		if err != nil {
			t.Fatal(err)
		}
		hd, err := p.header(data)
		if err != nil {
			t.Fatal(err)
		}
		return p.decodeCost(hd, 0)
	}
	base, prog, rot := cost("quadrants.jpg"), cost("progressive.jpg"), cost("exif-orientation-6.jpg")
	px := int64(48 * 32)
	if prog-base != 12*px || rot-base != 4*px {
		t.Errorf("baseline %d, progressive %d (+%d/px), rotated %d (+%d/px); want +12 and +4 per pixel", base, prog, (prog-base)/px, rot, (rot-base)/px)
	}
	// The resize (and a shrink) is of the upright image: 48×32, stored
	// as 32×48.
	p = Preprocess{Size: 16, Mode: Squash}
	rot = (Preprocess{}).decodeCost(mustHeader(t, p, "exif-orientation-6.jpg"), 0)
	if got, want := p.decodeCost(mustHeader(t, p, "exif-orientation-6.jpg"), 0)-rot, p.resizeBytes(48, 32); got != want || want == p.resizeBytes(32, 48) {
		t.Errorf("the resize of the rotated image costs %d, want %d (that of 48x32, not of 32x48: %d)", got, want, p.resizeBytes(32, 48))
	}
	if got, want := p.decodeCost(mustHeader(t, p, "exif-orientation-6.jpg"), 20)-rot, shrinkBytes(48, 32, 20); got != want {
		t.Errorf("the shrink of the rotated image costs %d, want %d", got, want)
	}
}

// mustHeader is the header of testdata/odd/f.
func mustHeader(t *testing.T, p Preprocess, f string) header {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/odd", f))
	if err != nil {
		t.Fatal(err)
	}
	hd, err := p.header(data)
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

// Sizes in messages use the unit that fits: a 10 KiB budget is not "0 MiB".
func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 10240: "10 KiB", 1536: "1.5 KiB",
		3 << 20: "3 MiB", 1572864: "1.5 MiB", 1 << 30: "1 GiB", 5 << 40: "5 TiB", 1 << 50: "1024 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// An input larger than the input share takes the rest of its size from
// the decoding share: the budget's peak stays within its size, an image
// that cannot be decoded beside it is refused at once (waiting could never
// end: it is the only input in flight), and once it is given back the
// whole decoding share is there again.
func TestBudgetLargeInputTakesFromDecoding(t *testing.T) {
	b := NewBudget(4 << 20) // 1 MiB for inputs, 3 MiB for decoding
	ctx := context.Background()
	big, err := b.AcquireInput(ctx, 2560<<10) // 1.5 MiB past the input share
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquireDecode(ctx, 2<<20); !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "leaves 1.5 MiB for decoding") {
		t.Errorf("2 MiB of decoding beside it: err = %v, want ErrOverBudget naming the 1.5 MiB left", err)
	}
	dec, err := b.acquireDecode(ctx, 1536<<10)
	if err != nil {
		t.Fatal(err)
	}
	if b.InUse() != b.Size() || b.Peak() != b.Size() {
		t.Errorf("in use %d, peak %d; want the whole budget, %d", b.InUse(), b.Peak(), b.Size())
	}
	dec()
	big()
	dec, err = b.acquireDecode(ctx, 3<<20)
	if err != nil {
		t.Fatalf("the whole decoding share after the input is given back: %v", err)
	}
	dec()
	if b.InUse() != 0 || b.Peak() > b.Size() {
		t.Errorf("in use %d, peak %d of %d", b.InUse(), b.Peak(), b.Size())
	}
}

// TestDecodeCostCountsTheShrink: a training set with augmentation shrinks
// each decoded image to a shorter side of 2·S (ShrinkTo), whose horizontal
// pass runs over every source row at the shrunk width: more than Resize's
// S×S window. The estimate of such a decode (shrink > 0) counts at least
// what the shrink keeps, instead of the resize, and DecodeShrinkContext
// waits for it: under a budget between the two, it is refused where
// DecodeContext (a resize) is not. An image already small enough costs
// no shrink.
func TestDecodeCostCountsTheShrink(t *testing.T) {
	const W, H, S = 1600, 1200, 224
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, W, H)), nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	p := Preprocess{Size: S, Mode: CenterCrop}
	hd, err := p.header(data)
	if err != nil {
		t.Fatal(err)
	}
	resize, shrink := p.decodeCost(hd, 0), p.decodeCost(hd, 2*S)
	decodeOnly := resize - p.resizeBytes(W, H)

	dec, _, _, err := p.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	nw, nh := shorterSideTo(W, H, 2*S)
	cs := new(coeffScratch)
	out := resample(cs, asNRGBA(dec), nw, nh, image.Rect(0, 0, nw, nh))
	// The tables, the horizontal pass over the source rows the vertical
	// one reads (all of them), and the result.
	first, last := H, 0
	for i := 0; i < nh; i++ {
		first, last = min(first, cs.v.bounds[2*i]), max(last, cs.v.bounds[2*i]+cs.v.bounds[2*i+1])
	}
	kept := int64(cs.bytes()) + int64(4*nw*(last-first)) + int64(len(out.Pix))
	t.Logf("decode %d, resize %d, shrink to %dx%d %d (keeps %d)", decodeOnly, resize-decodeOnly, nw, nh, shrink-decodeOnly, kept)
	if shrink-decodeOnly < kept {
		t.Errorf("the shrink's share of the estimate %d is less than the %d bytes it keeps", shrink-decodeOnly, kept)
	}
	if shrink <= resize {
		t.Errorf("the estimate with the shrink %d is not above the one with the resize %d", shrink, resize)
	}

	// A budget whose decoding share (three quarters) lies between them.
	b := NewBudget((resize + shrink) / 2 * 4 / 3)
	if dc := b.Size() - b.Size()/4; dc < resize || dc >= shrink {
		t.Fatalf("decoding share %d not in [%d, %d)", dc, resize, shrink)
	}
	q := p
	q.Budget = b
	_, _, _, release, err := q.DecodeContext(context.Background(), data)
	if err != nil {
		t.Fatalf("DecodeContext under a budget for the resize: %v", err)
	}
	release()
	if _, _, _, err := q.DecodeShrinkContext(context.Background(), data, 2*S); !errors.Is(err, ErrOverBudget) {
		t.Errorf("DecodeShrinkContext under a budget below its estimate: %v, want ErrOverBudget", err)
	}
	q.Budget = NewBudget(2 * shrink)
	img, w, h, err := q.DecodeShrinkContext(context.Background(), data, 2*S)
	if err != nil || w != W || h != H || img.Rect.Dx() != nw || img.Rect.Dy() != nh {
		t.Fatalf("DecodeShrinkContext: %v, %dx%d decoded to %v; want %dx%d to %dx%d", err, w, h, img.Rect, W, H, nw, nh)
	}
	if q.Budget.Peak() != shrink || q.Budget.InUse() != 0 {
		t.Errorf("DecodeShrinkContext held %d at its peak and %d after; want %d, then 0", q.Budget.Peak(), q.Budget.InUse(), shrink)
	}

	// 48×32: no shrink to 448, nor a resize with Size 0.
	small, err := os.ReadFile("testdata/odd/quadrants.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if hd, err = p.header(small); err != nil {
		t.Fatal(err)
	}
	if got, want := p.decodeCost(hd, 2*S), (Preprocess{}).decodeCost(hd, 0); got != want {
		t.Errorf("a 48x32 image shrunk to %d costs %d, want %d (the decoding alone)", 2*S, got, want)
	}
}
