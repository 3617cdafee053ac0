package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// pngHeader is a 16-bit RGBA PNG that claims w×h pixels and holds none:
// the header alone must decide.
func pngHeader(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 16, 6
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

// TestBudgetRefusesBombsFromTheHeader: the 38-byte WebP and 35-byte GIF of
// testdata/refused (go run ./stages/testdata/genbombs) and a 16-bit PNG
// each claim 13000×13000 pixels, under the default pixel limit; without a
// budget they cost 1.35, 0.7 and 2 GB to decode. Under the default budget
// each is refused with ErrOverBudget before any pixel is decoded: nothing
// is ever held.
func TestBudgetRefusesBombsFromTheHeader(t *testing.T) {
	inputs := map[string][]byte{"png16": pngHeader(13000, 13000)}
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
		most = max(most, free.decodeCost(hd))
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
		return p.decodeCost(hd)
	}
	base, prog, rot := cost("quadrants.jpg"), cost("progressive.jpg"), cost("exif-orientation-6.jpg")
	px := int64(48 * 32)
	if prog-base != 12*px || rot-base != 4*px {
		t.Errorf("baseline %d, progressive %d (+%d/px), rotated %d (+%d/px); want +12 and +4 per pixel", base, prog, (prog-base)/px, rot, (rot-base)/px)
	}
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
