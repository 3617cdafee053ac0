package stages

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/tiff"
)

// zeroPNG is a valid PNG of w×h pixels that are all zero (color type ct,
// depth bits, Adam7 when interlaced), its image data compressed by the
// standard library at its best compression: as small as a deflate
// encoder makes such a file. The rows are streamed, never held.
func zeroPNG(t testing.TB, w, h int, ct, depth byte, interlaced bool) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, body []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(body)))
		b.WriteString(typ)
		b.Write(body)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), body...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = depth, ct
	if interlaced {
		ihdr[12] = 1
	}
	chunk("IHDR", ihdr)
	bits, _, ok := pngIHDR(b.Bytes())
	if !ok {
		t.Fatalf("color type %d depth %d", ct, depth)
	}
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	// Filter byte 0 and zero samples: every raw byte is zero.
	zeros := make([]byte, 1<<20)
	for n := pngRawBytes(int64(w), int64(h), bits, interlaced); n > 0; n -= int64(len(zeros)) {
		if _, err := zw.Write(zeros[:min(n, int64(len(zeros)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return b.Bytes()
}

// withIHDRSize is the PNG data with its IHDR claiming w×h (CRC fixed).
func withIHDRSize(data []byte, w, h int) []byte {
	out := bytes.Clone(data)
	binary.BigEndian.PutUint32(out[16:], uint32(w))
	binary.BigEndian.PutUint32(out[20:], uint32(h))
	binary.BigEndian.PutUint32(out[29:], crc32.ChecksumIEEE(out[12:29]))
	return out
}

// bmpFile is a BMP (BITMAPINFOHEADER, 256-entry gray palette for 8 and 4
// bits) of w×h with compression comp and the pixel data px.
func bmpFile(w, h int, bpp uint16, comp uint32, px []byte) []byte {
	pal := 0
	if bpp <= 8 {
		pal = 4 << bpp
	}
	off := 14 + 40 + pal
	b := make([]byte, off, off+len(px))
	copy(b, "BM")
	le := binary.LittleEndian
	le.PutUint32(b[2:], uint32(off+len(px)))
	le.PutUint32(b[10:], uint32(off))
	le.PutUint32(b[14:], 40)
	le.PutUint32(b[18:], uint32(w))
	le.PutUint32(b[22:], uint32(h))
	le.PutUint16(b[26:], 1)
	le.PutUint16(b[28:], bpp)
	le.PutUint32(b[30:], comp)
	le.PutUint32(b[34:], uint32(len(px)))
	for i := 0; i < pal/4; i++ {
		b[54+4*i], b[55+4*i], b[56+4*i] = byte(i), byte(i), byte(i)
	}
	return append(b, px...)
}

// A header that claims more pixels than its file can hold in its format
// (a 300-byte PNG that says 13000×13000, under the pixel limit, or
// 60000×60000, over it) is corrupt data: a decode-stage error that says
// so, naming the claim and the file's size, neither ErrOverBudget nor
// ErrTooLarge, with no advice to raise --memory-budget, which could never
// decode it. Uncompressed and run-length BMPs, a GIF's frame and a
// baseline JPEG alike.
func TestHeaderClaimingMoreThanTheFileHoldsIsCorrupt(t *testing.T) {
	small := zeroPNG(t, 16, 16, 0, 8, false)
	small = append(small, make([]byte, 300-len(small))...) // trailing bytes: 300 in all
	rle := bmpFile(64, 64, 8, 1, bytes.Repeat([]byte{0, 2, 255, 255}, 20))
	var g bytes.Buffer
	if err := gif.Encode(&g, image.NewPaletted(image.Rect(0, 0, 8, 8), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	gifFrame := func(w, h int) []byte {
		// The screen and the frame, whose descriptor follows the global
		// color table and any extensions.
		out := bytes.Clone(g.Bytes())
		binary.LittleEndian.PutUint16(out[6:], uint16(w))
		binary.LittleEndian.PutUint16(out[8:], uint16(h))
		i := 13 + 3<<(out[10]&7+1)
		for out[i] == '!' {
			for i += 2; out[i] != 0; i += 1 + int(out[i]) {
			}
			i++
		}
		if out[i] != ',' {
			t.Fatalf("no image descriptor at %d", i)
		}
		binary.LittleEndian.PutUint16(out[i+5:], uint16(w))
		binary.LittleEndian.PutUint16(out[i+7:], uint16(h))
		return out
	}
	var j bytes.Buffer
	if err := jpeg.Encode(&j, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	baseline := j.Bytes()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"png under the pixel limit", withIHDRSize(small, 13000, 13000), "png header claims 13000×13000, more than a 300-byte PNG can hold"},
		{"png over the pixel limit", withIHDRSize(small, 60000, 60000), "png header claims 60000×60000, more than a 300-byte PNG can hold"},
		{"uncompressed bmp", bmpFile(13000, 13000, 24, 0, make([]byte, 300)), "bmp header claims 13000×13000, more than a 354-byte uncompressed BMP can hold"},
		// Its delta escapes skip up to 255 rows per 4 bytes: 1158 bytes
		// may hold 13000×13000, not 1000 rows a million times.
		{"run-length bmp", func() []byte {
			b := bytes.Clone(rle)
			binary.LittleEndian.PutUint32(b[18:], 1000)
			binary.LittleEndian.PutUint32(b[22:], 1000000)
			return b
		}(), fmt.Sprintf("bmp header claims 1000×1000000, more than a %d-byte run-length BMP can hold", len(rle))},
		{"gif frame", gifFrame(13000, 13000), fmt.Sprintf("gif first frame claims 13000×13000, more than a %d-byte GIF can hold", g.Len())},
		{"baseline jpeg", func() []byte {
			b := bytes.Clone(baseline)
			sof := bytes.Index(b, []byte{0xff, 0xc0})
			binary.BigEndian.PutUint16(b[sof+5:], 13000)
			binary.BigEndian.PutUint16(b[sof+7:], 13000)
			return b
		}(), fmt.Sprintf("jpeg header claims 13000×13000, more than a %d-byte sequential JPEG can hold", len(baseline))},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Preprocess{Size: 16, Mode: Squash, Budget: NewBudget(0)}
			_, _, err := p.TensorContext(context.Background(), make([]float32, 3*16*16), c.data)
			var se *Error
			if !errors.Is(err, ErrCorruptHeader) || !errors.As(err, &se) || se.Stage != "decode" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a decode-stage ErrCorruptHeader saying %q", err, c.want)
			}
			if errors.Is(err, ErrOverBudget) || errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "--memory-budget") {
				t.Errorf("err = %v: blames the budget or the pixel limit", err)
			}
			// A larger pixel limit and budget change nothing.
			big := Preprocess{Size: 16, Mode: Squash, MaxPixels: 1 << 40, Budget: NewBudget(1 << 40)}
			if _, _, err := big.TensorContext(context.Background(), make([]float32, 3*16*16), c.data); !errors.Is(err, ErrCorruptHeader) {
				t.Errorf("with a larger limit and budget: err = %v, want ErrCorruptHeader", err)
			}
		})
	}
}

// A bound must never refuse a valid file: the smallest files the standard
// library's encoders make of all-zero images (the most compressible data)
// pass the check, though they hold far more pixels than bytes: PNGs of
// every bit depth, interlaced too, a run-length BMP of delta escapes alone
// (the densest it has), an uncompressed BMP exactly as large as its rows,
// a GIF and baseline JPEGs. Each decodes (the smaller ones whole, the larger ones through
// the header); only a claim larger than the file can hold is refused.
func TestMostCompressedFilesPassTheClaimCheck(t *testing.T) {
	loose := Preprocess{MaxPixels: 1 << 40}
	type file struct {
		name   string
		data   []byte
		decode bool // small enough to decode whole here
	}
	files := []file{
		{"png 1-bit gray 40000×40000", zeroPNG(t, 40000, 40000, 0, 1, false), false},
		{"png 1-bit gray 3000×3000", zeroPNG(t, 3000, 3000, 0, 1, false), true},
		{"png 1-bit gray 3000×3000 interlaced", zeroPNG(t, 3000, 3000, 0, 1, true), true},
		{"png 8-bit gray 8000×8000", zeroPNG(t, 8000, 8000, 0, 8, false), false},
		{"png 16-bit RGBA 2000×2000", zeroPNG(t, 2000, 2000, 6, 16, false), false},
		{"png 8-bit palette 2000×2000 interlaced", zeroPNGWithPalette(t, 2000, 2000), true},
	}
	// RLE8 of delta escapes: each skips 255 rows and 255 pixels, the most
	// 4 bytes can cover; 20 of them cover 1000×5100 pixels.
	files = append(files, file{"rle8 bmp of delta escapes", bmpFile(1000, 5100, 8, 1, bytes.Repeat([]byte{0, 2, 255, 255}, 20)), true})
	// An uncompressed 1-bit BMP with exactly its rows.
	files = append(files, file{"1-bit bmp", bmpFile(1000, 1000, 1, 0, make([]byte, 128*1000)), true})
	var g bytes.Buffer
	if err := gif.Encode(&g, image.NewPaletted(image.Rect(0, 0, 4000, 4000), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	files = append(files, file{"gif 4000×4000", g.Bytes(), true})
	// Baseline JPEGs of one-bit codes: for a DC difference of 0 and for
	// the end of block, 2 bits per 8×8 block; and the densest there is,
	// whose AC code is a run of 16384 ends of block (symbol 0xE0, its 14
	// extra bits 0), which image/jpeg and PIL read in sequential scans
	// too: about 1 bit per block, the DC code's.
	files = append(files, file{"jpeg of one-bit codes 4000×4000", densestJPEG(4000, 4000, 0x00), true})
	files = append(files, file{"jpeg of end-of-block runs 4000×8000", densestJPEG(4000, 8000, 0xE0), true})
	// Uniform JPEGs at the lowest quality: every block a DC code and an
	// end of block. Gray (one 8×8 block per 64 pixels) and 4:2:0 color
	// (a chroma block per 256).
	for _, m := range []image.Image{image.NewGray(image.Rect(0, 0, 4000, 4000)), image.NewYCbCr(image.Rect(0, 0, 4000, 4000), image.YCbCrSubsampleRatio420)} {
		var j bytes.Buffer
		if err := jpeg.Encode(&j, m, &jpeg.Options{Quality: 1}); err != nil {
			t.Fatal(err)
		}
		files = append(files, file{fmt.Sprintf("jpeg %T 4000×4000", m), j.Bytes(), true})
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			hd, err := loose.header(f.data)
			if err != nil {
				t.Fatalf("%d bytes: %v", len(f.data), err)
			}
			t.Logf("%d bytes hold %d×%d pixels", len(f.data), hd.cfg.Width, hd.cfg.Height)
			if f.decode {
				if _, w, h, err := hd.decode(); err != nil || w != hd.cfg.Width || h != hd.cfg.Height {
					t.Fatalf("decode: %dx%d, %v", w, h, err)
				}
			}
			if strings.HasPrefix(f.name, "jpeg of end-of-block runs") {
				// At the bound: twice the rows are more than it holds.
				more := bytes.Clone(f.data)
				sof := bytes.Index(more, []byte{0xff, 0xc0})
				binary.BigEndian.PutUint16(more[sof+5:], uint16(2*hd.cfg.Height))
				if _, err := loose.header(more); !errors.Is(err, ErrCorruptHeader) {
					t.Errorf("claiming twice the rows: err = %v, want ErrCorruptHeader", err)
				}
			}
			if !strings.HasPrefix(f.name, "png") {
				return
			}
			// The same data claiming 32 times the pixels is more than
			// any deflate stream of its size holds.
			more := withIHDRSize(f.data, hd.cfg.Width*4, hd.cfg.Height*8)
			if _, err := loose.header(more); !errors.Is(err, ErrCorruptHeader) {
				t.Errorf("claiming %dx%d: err = %v, want ErrCorruptHeader", hd.cfg.Width*4, hd.cfg.Height*8, err)
			}
		})
	}
	// A row more than an uncompressed BMP holds is refused.
	b := bmpFile(1000, 1001, 1, 0, make([]byte, 128*1000))
	if _, err := loose.header(b); !errors.Is(err, ErrCorruptHeader) {
		t.Errorf("1-bit BMP claiming a row more than it holds: err = %v, want ErrCorruptHeader", err)
	}
}

// densestJPEG is a baseline gray JPEG of w×h (multiples of 16) whose
// Huffman tables give the DC difference 0 and the AC symbol ac one bit
// each, and whose scan is all zero bits. With ac 0x00 (the end of block)
// every block takes 2 bits; with 0xE0 (a run of 2^14 ends of block, then
// 14 extra bits) a block takes its DC bit and every 16384th block 15
// more: about 1 bit per block, the least a sequential JPEG spends.
func densestJPEG(w, h int, ac byte) []byte {
	var b bytes.Buffer
	seg := func(marker byte, body ...byte) {
		b.Write([]byte{0xff, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)})
		b.Write(body)
	}
	b.Write([]byte{0xff, 0xd8})
	seg(0xdb, append([]byte{0}, bytes.Repeat([]byte{1}, 64)...)...)
	seg(0xc0, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 1, 1, 0x11, 0)
	oneCode := func(class byte, symbol byte) []byte {
		t := append([]byte{class, 1}, make([]byte, 15)...)
		return append(t, symbol)
	}
	seg(0xc4, oneCode(0x00, 0)...) // DC: category 0
	seg(0xc4, oneCode(0x10, ac)...)
	seg(0xda, 1, 1, 0x00, 0, 63, 0)
	blocks := w * h / 64
	scanBits := 2 * blocks // each block: "0" "0"
	if ac == 0xE0 {
		// Each block "0"; each run's first block "0" and 14 extra bits.
		scanBits = blocks + (blocks+16383)/16384*15
	}
	b.Write(make([]byte, (scanBits+7)/8))
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// zeroPNGWithPalette is zeroPNG for an interlaced 8-bit palette image: a
// PLTE chunk before the data, as the decoder requires.
func zeroPNGWithPalette(t testing.TB, w, h int) []byte {
	t.Helper()
	data := zeroPNG(t, w, h, 3, 8, true)
	body := []byte{0, 0, 0, 255, 255, 255}
	var c bytes.Buffer
	binary.Write(&c, binary.BigEndian, uint32(len(body)))
	c.WriteString("PLTE")
	c.Write(body)
	binary.Write(&c, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("PLTE"), body...)))
	out := append(bytes.Clone(data[:33]), c.Bytes()...)
	return append(out, data[33:]...)
}

// Where the format bounds nothing (a progressive JPEG, whose scans may
// leave whole blocks uncoded, and a GIF's logical screen, which a tiny
// first frame leaves to be filled), a header larger than the budget is
// still ErrOverBudget, and the advice to raise the budget says that the
// header may be corrupt.
func TestOverBudgetAdviceMentionsACorruptHeader(t *testing.T) {
	prog, err := os.ReadFile("testdata/odd/progressive.jpg")
	if err != nil {
		t.Fatal(err)
	}
	sof := bytes.Index(prog, []byte{0xff, 0xc2})
	binary.BigEndian.PutUint16(prog[sof+5:], 13000)
	binary.BigEndian.PutUint16(prog[sof+7:], 13000)
	screen, err := os.ReadFile("testdata/refused/bomb-gif-screen-13000.gif")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"progressive jpeg": prog, "gif screen": screen} {
		p := Preprocess{Size: 16, Mode: Squash, Budget: NewBudget(0)}
		_, _, err := p.TensorContext(context.Background(), make([]float32, 3*16*16), data)
		if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "raise --memory-budget to decode this image; if it cannot be that large, its header is corrupt") {
			t.Errorf("%s: err = %v, want ErrOverBudget whose advice mentions a corrupt header", name, err)
		}
		if errors.Is(err, ErrCorruptHeader) {
			t.Errorf("%s: err = %v: its size is not bounded by its file", name, err)
		}
	}
}

// tiffFile is a little-endian TIFF: the 8-byte header, one IFD of tags
// (every value a LONG; more than one stored after the IFD), then pix, at
// the end of the file. The strip and tile offsets (tags 273, 324) are
// given relative to pix. Tags must be given in ascending order, as the
// decoder requires.
func tiffFile(pix []byte, tags ...[]uint32) []byte {
	ifd := 8
	extra := ifd + 2 + 12*len(tags) + 4
	base := extra
	for _, t := range tags {
		if len(t) > 2 {
			base += 4 * (len(t) - 1)
		}
	}
	var b, more bytes.Buffer
	b.WriteString("II*\x00")
	binary.Write(&b, binary.LittleEndian, uint32(ifd))
	binary.Write(&b, binary.LittleEndian, uint16(len(tags)))
	for _, t := range tags {
		vals := slices.Clone(t[1:])
		if t[0] == 273 || t[0] == 324 {
			for i := range vals {
				vals[i] += uint32(base)
			}
		}
		binary.Write(&b, binary.LittleEndian, []uint16{uint16(t[0]), 4})
		binary.Write(&b, binary.LittleEndian, uint32(len(vals)))
		if len(vals) == 1 {
			binary.Write(&b, binary.LittleEndian, vals[0])
			continue
		}
		binary.Write(&b, binary.LittleEndian, uint32(extra+more.Len()))
		binary.Write(&more, binary.LittleEndian, vals)
	}
	binary.Write(&b, binary.LittleEndian, uint32(0)) // no next IFD
	b.Write(more.Bytes())
	b.Write(pix)
	return b.Bytes()
}

// rawGrayTIFF is an uncompressed 8-bit gray TIFF of w×h in strips of rps
// rows, strip k at offset k·stride of pix, holding all its rows' bytes
// less short.
func rawGrayTIFF(w, h, rps, stride, short int, pix []byte) []byte {
	offs, counts := []uint32{273}, []uint32{279}
	for k := 0; k*rps < h; k++ {
		offs = append(offs, uint32(k*stride))
		counts = append(counts, uint32(min(rps, h-k*rps)*w-short))
	}
	return tiffFile(pix, []uint32{256, uint32(w)}, []uint32{257, uint32(h)}, []uint32{258, 8}, []uint32{259, 1},
		[]uint32{262, 1}, offs, []uint32{277, 1}, []uint32{278, uint32(rps)}, counts)
}

// An uncompressed TIFF's header places its pixels: strips or tiles of
// known offsets, byte counts and rows. One whose pixels would lie past
// the end of the file (a 4×4 image's header patched to claim 8000×8000:
// a few hundred bytes, like the one a user found), or whose strip holds
// fewer bytes than its rows need, is a decode-stage ErrCorruptHeader from
// the header alone, under any budget: nothing is held for it (the
// decoder would allocate the whole image, then fail with EOF).
func TestUncompressedTIFFClaimingMoreThanItsStripsHoldIsCorrupt(t *testing.T) {
	var enc bytes.Buffer
	if err := tiff.Encode(&enc, image.NewNRGBA(image.Rect(0, 0, 4, 4)), nil); err != nil {
		t.Fatal(err)
	}
	claim := func(data []byte, w, h uint32) []byte {
		out := bytes.Clone(data)
		d, ok := parseTIFFIFD(out)
		if !ok {
			t.Fatal("not a TIFF")
		}
		for tag, v := range map[uint16]uint32{256: w, 257: h, 278: h} {
			e := d.entries[tag]
			if d.bo.Uint16(e[2:]) == 3 {
				d.bo.PutUint16(e[8:], uint16(v))
			} else {
				d.bo.PutUint32(e[8:], v)
			}
		}
		return out
	}
	gray := make([]byte, 100*100)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"encoded 4×4 claiming 8000×8000", claim(enc.Bytes(), 8000, 8000),
			fmt.Sprintf("tiff header claims 8000×8000, more than a %d-byte uncompressed TIFF can hold: its strip 1 of 1 needs 256000000 bytes from offset 8", enc.Len())},
		// All in one strip, a row more than the file holds.
		{"a row more than the file holds", rawGrayTIFF(100, 101, 101, 0, 0, gray),
			"tiff header claims 100×101, more than a 10122-byte uncompressed TIFF can hold: its strip 1 of 1 needs 10100 bytes from offset 122"},
		{"its last strip past the end", rawGrayTIFF(100, 100, 10, 1000, 0, gray[:9500]),
			"its strip 10 of 10 needs 1000 bytes from offset 9202"},
		{"a strip count short of its rows", rawGrayTIFF(100, 100, 10, 1000, 1, gray),
			"tiff header claims 100×100, more than its uncompressed data holds: its strip 1 of 10 holds 999 bytes, its pixels need 1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, budget := range []int64{0, 1 << 40} {
				b := NewBudget(budget)
				p := Preprocess{Size: 16, Mode: Squash, MaxPixels: 1 << 40, Budget: b}
				_, _, err := p.TensorContext(context.Background(), make([]float32, 3*16*16), c.data)
				var se *Error
				if !errors.Is(err, ErrCorruptHeader) || !errors.As(err, &se) || se.Stage != "decode" || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("%d bytes: err = %v, want a decode-stage ErrCorruptHeader saying %q", len(c.data), err, c.want)
				}
				if errors.Is(err, ErrOverBudget) || strings.Contains(err.Error(), "--memory-budget") {
					t.Errorf("err = %v: blames the budget", err)
				}
				if b.Peak() != 0 {
					t.Errorf("budget %d: %d bytes held for a corrupt header", budget, b.Peak())
				}
			}
			// The decoder alone refuses it too: the check only comes first.
			if _, _, err := image.Decode(bytes.NewReader(c.data)); err == nil {
				t.Errorf("image/tiff decodes it")
			}
		})
	}
}

// Uncompressed TIFFs that the decoder reads pass the check, however many
// pixels their bytes stand for: what tiff.Encode writes (one strip), strips
// that share one row's bytes (1000×1000 from 1000 bytes and the offset
// arrays), a 1-bit image whose rows end mid-byte, and tiles padded past
// the image whose last ones hold only what the decoder reads of them.
func TestUncompressedTIFFsThatDecodePassTheClaimCheck(t *testing.T) {
	var files []struct {
		name string
		data []byte
	}
	add := func(name string, data []byte) {
		files = append(files, struct {
			name string
			data []byte
		}{name, data})
	}
	for _, m := range []image.Image{image.NewGray(image.Rect(0, 0, 37, 23)), image.NewNRGBA(image.Rect(0, 0, 37, 23)),
		image.NewRGBA64(image.Rect(0, 0, 37, 23)), image.NewPaletted(image.Rect(0, 0, 37, 23), color.Palette{color.Black, color.White})} {
		var b bytes.Buffer
		if err := tiff.Encode(&b, m, nil); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("tiff.Encode %T", m), b.Bytes())
	}
	add("1000 strips sharing one row", rawGrayTIFF(1000, 1000, 1, 0, 0, make([]byte, 1000)))
	add("a shorter last strip", rawGrayTIFF(100, 95, 10, 1000, 0, make([]byte, 9500)))
	// 1-bit, 13 pixels a row: 2 bytes a row, the last row 2 bytes too.
	add("1-bit gray", tiffFile(make([]byte, 2*7), []uint32{256, 13}, []uint32{257, 7}, []uint32{258, 1}, []uint32{259, 1},
		[]uint32{262, 1}, []uint32{273, 0}, []uint32{277, 1}, []uint32{278, 7}, []uint32{279, 14}))
	// 40×40 RGB in 16×16 tiles: 3×3 of them, the last row and column
	// padded to 48; the last tile's data ends at the image's corner
	// (7 full rows of 48 bytes, then 8 pixels), where the file ends.
	const tile = 16 * 16 * 3
	last := 7*16*3 + 8*3
	offs, counts := []uint32{324}, []uint32{325}
	for k := 0; k < 9; k++ {
		offs = append(offs, uint32(k*tile))
		counts = append(counts, tile)
	}
	counts[9] = uint32(last)
	tiled := func(pix []byte) []byte {
		return tiffFile(pix, []uint32{256, 40}, []uint32{257, 40}, []uint32{258, 8, 8, 8}, []uint32{259, 1},
			[]uint32{262, 2}, []uint32{277, 3}, []uint32{322, 16}, []uint32{323, 16}, offs, counts)
	}
	add("tiles, the last one cut at the corner", tiled(make([]byte, 8*tile+last)))
	loose := Preprocess{MaxPixels: 1 << 40}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			hd, err := loose.header(f.data)
			if err != nil {
				t.Fatalf("%d bytes: %v", len(f.data), err)
			}
			if _, w, h, err := hd.decode(); err != nil || w != hd.cfg.Width || h != hd.cfg.Height {
				t.Fatalf("decode: %dx%d, %v", w, h, err)
			}
		})
	}
	// One byte less of that last tile, in its count or in the file, is
	// refused, by the check and by the decoder alike.
	counts[9]--
	for _, short := range [][]byte{tiled(make([]byte, 8*tile+last)), func() []byte {
		counts[9]++
		return tiled(make([]byte, 8*tile+last-1))
	}()} {
		if _, err := loose.header(short); !errors.Is(err, ErrCorruptHeader) {
			t.Errorf("a tile a byte short: err = %v, want ErrCorruptHeader", err)
		}
		if _, _, err := image.Decode(bytes.NewReader(short)); err == nil {
			t.Errorf("image/tiff decodes a tile a byte short")
		}
	}
}
