package stages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// ErrCorruptHeader is wrapped by the header check (Decode, Tensor and the
// other decoding functions) when an image's header claims more pixels than
// a file of its size can hold in its format: the data is corrupt, and no
// memory budget would decode it.
var ErrCorruptHeader = errors.New("corrupt header")

// The most that the compressed data of a format can expand to, which bounds
// the pixels a file of N bytes can hold. Each bound is a ceiling the format
// itself sets (never a typical ratio), so that no valid file is refused.
const (
	// deflateMaxRatio: a deflate stream spends at least 2 bits (a length
	// code and a distance code, one bit each at best) on the longest
	// match, 258 bytes: 258·8/2 = 1032 bytes out per byte in.
	deflateMaxRatio = 1032
	// lzwMaxString is the longest string one LZW code of a GIF can stand
	// for (its table holds 4096 entries); a code is at least 3 bits (the
	// minimum code size is 2, plus one).
	lzwMaxString, lzwMinCodeBits = 4096, 3
	// rleMaxRows is the most rows a run-length BMP command skips: a delta
	// escape (4 bytes) moves up to 255 rows down and 255 pixels right.
	rleMaxRows = 255
	// jpegMinBlockBits: a sequential (baseline or extended) Huffman JPEG
	// codes every 8×8 block of a component it scans with a DC code of at
	// least one bit. Its AC codes may cost less than a bit per block: the
	// decoders (image/jpeg, PIL's libjpeg) read end-of-block runs (AC
	// symbols 0x10–0xE0, up to 32767 blocks) in sequential scans too, so
	// one AC code of a few bits can end the AC data of thousands of blocks.
	jpegMinBlockBits = 1
)

// checkClaim refuses a header whose size (cfg's w×h, or a GIF's first
// frame) is more than a file of len(data) bytes in format can hold, with
// ErrCorruptHeader; an uncompressed TIFF, whose strips or tiles the header
// places, is checked against them (tiffRawClaim). Formats whose data has
// no such bound (a progressive JPEG, whose scans may leave whole blocks
// uncoded; WebP, whose lossless codes may take no bits at all; a
// compressed TIFF; the logical screen of a GIF beyond its first frame,
// which the decoder fills as PIL does, so only the memory budget and the
// pixel limit bound it), and headers it cannot read, pass.
func checkClaim(format string, data []byte, w, h int) error {
	var most func(w, h int64) bool // whether w×h fits
	what, kind := "header", format
	n := int64(len(data))
	switch format {
	case "tiff":
		return tiffRawClaim(data, w, h)
	case "png":
		pixBits, interlaced, ok := pngIHDR(data)
		if !ok {
			return nil
		}
		most = func(w, h int64) bool { return pngRawBytes(w, h, pixBits, interlaced) <= mulSat(deflateMaxRatio, n) }
		kind = "PNG"
	case "bmp":
		bpp, comp, ok := bmpLayout(data)
		if !ok {
			return nil
		}
		switch {
		case comp == 0 || comp == 3: // uncompressed: every row stored, padded to 4 bytes
			switch bpp {
			case 1, 2, 4, 8, 16, 24, 32:
			default:
				return nil
			}
			most = func(w, h int64) bool { return mulSat((w*bpp+31)/32*4, h) <= n }
			kind = "uncompressed BMP"
		case comp == 1 && bpp == 8, comp == 2 && bpp == 4:
			// Each command is 2 bytes or more, and none covers more
			// pixels per byte than a delta escape: 4 bytes for up to
			// 255 rows and 255 pixels, 255·(w+1) pixels.
			most = func(w, h int64) bool { return mulSat(w, h) <= mulSat(n/4+1, mulSat(rleMaxRows, w+1)) }
			kind = "run-length BMP"
		default:
			return nil
		}
	case "jpeg":
		cover, ok := jpegBlockCover(data)
		if !ok {
			return nil
		}
		// A block covers cover pixels of the image (a subsampled
		// component's, more); blocks cut by the edge count whole.
		most = func(w, h int64) bool { return mulSat(w, h) <= mulSat(cover, 8*n/jpegMinBlockBits+1) }
		kind = "sequential JPEG"
	case "gif":
		fw, fh, ok := gifFirstFrame(data)
		if !ok {
			return nil
		}
		// The logical screen may be far larger than the frame (the rest is
		// filled): only the frame's pixels are coded.
		w, h, what = fw, fh, "first frame"
		most = func(w, h int64) bool { return w*h <= mulSat(lzwMaxString, 8*n/lzwMinCodeBits+1) }
		kind = "GIF"
	default:
		return nil
	}
	if most(int64(w), int64(h)) {
		return nil
	}
	return fmt.Errorf("%s %s claims %d×%d, more than a %d-byte %s can hold: %w", format, what, w, h, n, kind, ErrCorruptHeader)
}

// pngIHDR reads a PNG's bits per pixel and interlace method from its IHDR
// chunk (the first, as the decoder requires).
func pngIHDR(data []byte) (pixBits int64, interlaced, ok bool) {
	if len(data) < 29 || string(data[12:16]) != "IHDR" {
		return 0, false, false
	}
	pixBits = pngPixelBits(data[25], data[24])
	return pixBits, data[28] == 1, pixBits > 0
}

// pngPixelBits is the bits per pixel of a PNG of colorType whose samples
// are depth bits each, or 0 for a color type PNG does not define.
func pngPixelBits(colorType, depth byte) int64 {
	var channels int64
	if colorType < 7 {
		channels = [7]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	}
	return channels * int64(depth)
}

// pngRawBytes is the size of a PNG's decompressed image data, w×h pixels
// of pixBits bits: each row of each pass (Adam7 when interlaced) with its
// filter byte; sizes beyond an eighth of math.MaxInt64 are that.
func pngRawBytes(w, h, pixBits int64, interlaced bool) int64 {
	size := func(pw, ph int64) int64 {
		if pw <= 0 || ph <= 0 {
			return 0
		}
		return min(mulSat(ph, 1+(pw*pixBits+7)/8), math.MaxInt64/8)
	}
	if !interlaced {
		return size(w, h)
	}
	var n int64
	for _, p := range [7][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
		n += size((w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3])
	}
	return n
}

// mulSat is a·b for a, b ≥ 0, or math.MaxInt64 when that overflows.
func mulSat(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// bmpLayout reads a BMP's bits per pixel and compression from its
// BITMAPINFOHEADER (or a later, longer header).
func bmpLayout(data []byte) (bpp int64, comp uint32, ok bool) {
	if len(data) < 34 || string(data[:2]) != "BM" || binary.LittleEndian.Uint32(data[14:]) < 40 {
		return 0, 0, false
	}
	return int64(binary.LittleEndian.Uint16(data[28:])), binary.LittleEndian.Uint32(data[30:]), true
}

// jpegBlockCover is the most pixels of the image that one 8×8 block of a
// sequential Huffman JPEG (SOF0, SOF1: what the decoder reads besides
// progressive ones) covers: 64 times the largest ratio of the largest
// sampling factors to a component's. ok is false for any other JPEG.
func jpegBlockCover(data []byte) (cover int64, ok bool) {
	jpegSegments(data, func(marker byte, seg []byte) bool {
		switch marker {
		case 0xC0, 0xC1:
		case 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return false // progressive, lossless, hierarchical or arithmetic
		default:
			return true
		}
		if len(seg) < 6 || len(seg) < 6+3*int(seg[5]) || seg[5] == 0 {
			return false
		}
		var hmax, vmax int64
		comps := seg[6 : 6+3*int(seg[5])]
		for i := 0; i < len(comps); i += 3 {
			h, v := int64(comps[i+1]>>4), int64(comps[i+1]&15)
			if h == 0 || v == 0 {
				return false
			}
			hmax, vmax = max(hmax, h), max(vmax, v)
		}
		for i := 0; i < len(comps); i += 3 {
			h, v := int64(comps[i+1]>>4), int64(comps[i+1]&15)
			cover = max(cover, 64*((hmax+h-1)/h)*((vmax+v-1)/v))
		}
		ok = true
		return false
	})
	return cover, ok
}

// gifFirstFrame reads the size of a GIF's first image descriptor, past the
// extensions before it (data as gifRepair left it: a stray byte stops it).
func gifFirstFrame(data []byte) (w, h int, ok bool) {
	i, ok := gifWalkToFrame(data, func(int) bool { return false })
	if !ok {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint16(data[i+5:])), int(binary.LittleEndian.Uint16(data[i+7:])), true
}

// tiffRawClaim refuses, with ErrCorruptHeader, an uncompressed TIFF whose
// w×h its strips or tiles cannot hold: one whose pixels would lie past the
// end of the file, or one whose byte count is less than its pixels need.
// golang.org/x/image/tiff fails on either only after it has allocated the
// whole image (`decode tiff: EOF`, `not enough pixel data`): refused here,
// from the header, the budget is never asked for it. Each block needs
// what that decoder reads of it at the least: every row of its width (a
// tile's, padding included) but the last, and the last up to the image's
// edge. Blocks may share their bytes, so the file's size alone bounds
// nothing. Compressed TIFFs, and anything the IFD does not say plainly
// (the decoder then reports it), pass.
func tiffRawClaim(data []byte, w, h int) error {
	d, ok := parseTIFFIFD(data)
	if !ok {
		return nil
	}
	// The decoder reads a TIFF without the tag as uncompressed too.
	if c, err := d.value(259, 1); err != nil || c > 1 {
		return nil
	}
	bits := []uint32{1}
	if d.entries[258] != nil {
		if bits, ok = d.values(258); !ok || len(bits) == 0 {
			return nil
		}
	}
	pixBits := int64(len(bits)) * int64(bits[0]) // what the decoder reads: every sample of the first's depth
	W, H := int64(w), int64(h)
	bw, bh := W, H
	kind, offTag, countTag := "strip", uint16(273), uint16(279)
	if tw, err := d.value(322, 0); err != nil {
		return nil
	} else if tw != 0 {
		th, err := d.value(323, 0)
		if err != nil || th == 0 {
			return nil
		}
		bw, bh = int64(tw), int64(th)
		kind, offTag, countTag = "tile", 324, 325
	} else if rps, err := d.value(278, 0); err != nil {
		return nil
	} else if rps > 0 && int64(rps) < H {
		bh = int64(rps)
	}
	if pixBits <= 0 || bw <= 0 || bh <= 0 {
		return nil
	}
	across, down := (W+bw-1)/bw, (H+bh-1)/bh
	offsets, ok1 := d.values(offTag)
	counts, ok2 := d.values(countTag)
	if !ok1 || !ok2 || int64(len(offsets)) < across*down || int64(len(counts)) < across*down {
		return nil
	}
	rowBytes := (mulSat(bw, pixBits) + 7) / 8
	n := int64(len(data))
	for j := int64(0); j < down; j++ {
		for i := int64(0); i < across; i++ {
			k := j*across + i
			rows, cols := min(bh, H-j*bh), min(bw, W-i*bw)
			need := mulSat(rows-1, rowBytes) + (cols*pixBits+7)/8
			off, count := int64(offsets[k]), int64(counts[k])
			switch {
			case need > n-off:
				return fmt.Errorf("tiff header claims %d×%d, more than a %d-byte uncompressed TIFF can hold: its %s %d of %d needs %d bytes from offset %d: %w",
					w, h, n, kind, k+1, across*down, need, off, ErrCorruptHeader)
			case count < need:
				return fmt.Errorf("tiff header claims %d×%d, more than its uncompressed data holds: its %s %d of %d holds %d bytes, its pixels need %d: %w",
					w, h, kind, k+1, across*down, count, need, ErrCorruptHeader)
			}
		}
	}
	return nil
}
