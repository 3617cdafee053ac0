package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"slices"
)

// JPEG-compressed TIFF (Compression 7, "new-style" JPEG, TIFF Technical
// Note #2), as scanners, GDAL and ImageMagick write it and PIL (libtiff)
// decodes it; golang.org/x/image/tiff refuses it. Each strip or tile is
// an abbreviated JPEG stream whose tables are in the JPEGTables tag:
// tables and strip together make a complete JPEG that image/jpeg decodes.
// The strips' colours are RGB, YCbCr or grey as the photometric tag says;
// EXIF orientation (tag 274) is applied by the caller like for any TIFF.
// Old-style JPEG (Compression 6) and anything but 8-bit chunky grey
// (BlackIsZero), RGB or YCbCr are refused, with the tags that say so.

const (
	tiffCompressionOldJPEG = 6
	tiffCompressionJPEG    = 7
)

// tiffIFD is the first IFD of a TIFF file: its entries by tag.
type tiffIFD struct {
	data    []byte
	bo      binary.ByteOrder
	entries map[uint16][]byte // the 12-byte entries
}

// parseTIFFIFD reads the first IFD; ok is false when data is not a TIFF.
func parseTIFFIFD(data []byte) (tiffIFD, bool) {
	bo, ok := tiffByteOrder(data)
	if !ok || bo.Uint16(data[2:]) != 42 {
		return tiffIFD{}, false
	}
	off := int64(bo.Uint32(data[4:]))
	if off < 8 || off+2 > int64(len(data)) {
		return tiffIFD{}, false
	}
	n := int64(bo.Uint16(data[off:]))
	if off+2+12*n > int64(len(data)) {
		return tiffIFD{}, false
	}
	ifd := tiffIFD{data: data, bo: bo, entries: make(map[uint16][]byte, n)}
	for k := int64(0); k < n; k++ {
		e := data[off+2+12*k : off+14+12*k]
		ifd.entries[bo.Uint16(e)] = e
	}
	return ifd, true
}

// values is the tag's SHORT or LONG values; ok is false when the tag is
// absent, of another type or points outside the file.
func (d tiffIFD) values(tag uint16) (v []uint32, ok bool) {
	e := d.entries[tag]
	if e == nil {
		return nil, false
	}
	typ, n := d.bo.Uint16(e[2:]), int64(d.bo.Uint32(e[4:]))
	size := int64(0)
	switch typ {
	case 3: // SHORT
		size = 2
	case 4: // LONG
		size = 4
	default:
		return nil, false
	}
	raw, ok := d.payload(e, size*n)
	if !ok {
		return nil, false
	}
	v = make([]uint32, n)
	for i := range v {
		if size == 2 {
			v[i] = uint32(d.bo.Uint16(raw[2*i:]))
		} else {
			v[i] = d.bo.Uint32(raw[4*i:])
		}
	}
	return v, true
}

// value is the tag's first SHORT or LONG value, or def when absent.
func (d tiffIFD) value(tag uint16, def uint32) (uint32, error) {
	v, ok := d.values(tag)
	switch {
	case d.entries[tag] == nil:
		return def, nil
	case !ok || len(v) == 0:
		return 0, fmt.Errorf("tag %d is unreadable", tag)
	}
	return v[0], nil
}

// payload is an entry's n bytes of values: inline when they fit in 4.
func (d tiffIFD) payload(e []byte, n int64) ([]byte, bool) {
	if n <= 4 {
		return e[8 : 8+n], true
	}
	off := int64(d.bo.Uint32(e[8:]))
	if n > int64(len(d.data)) || off+n > int64(len(d.data)) {
		return nil, false
	}
	return d.data[off : off+n], true
}

// tiffCompression is the Compression tag of a TIFF file (0: not a TIFF or
// no tag).
func tiffCompression(data []byte) uint32 {
	c, _ := tiffTag(data, 259)
	return c
}

// decodeTIFFJPEG decodes a JPEG-compressed TIFF (Compression 7) of w×h
// pixels into an opaque NRGBA.
func decodeTIFFJPEG(data []byte, w, h int) (*image.NRGBA, error) {
	d, ok := parseTIFFIFD(data)
	if !ok {
		return nil, errors.New("not a TIFF")
	}
	comp, err := d.value(259, 1)
	if err != nil {
		return nil, err
	}
	if comp == tiffCompressionOldJPEG {
		return nil, errors.New("old-style JPEG compression (6) is not supported")
	}
	photo, err := d.value(262, math.MaxUint32)
	if err != nil {
		return nil, err
	}
	spp, err := d.value(277, 1)
	if err != nil {
		return nil, err
	}
	planar, err := d.value(284, 1)
	if err != nil {
		return nil, err
	}
	bits, _ := d.values(258)
	for _, b := range bits {
		if b != 8 {
			return nil, fmt.Errorf("JPEG with %d bits per sample", b)
		}
	}
	switch {
	case planar != 1:
		return nil, fmt.Errorf("JPEG with planar configuration %d", planar)
	case photo == 1 && spp == 1, (photo == 2 || photo == 6) && spp == 3:
	default:
		return nil, fmt.Errorf("JPEG with photometric interpretation %d and %d samples per pixel", photo, spp)
	}
	tables := []byte(nil)
	if e := d.entries[347]; e != nil {
		n := int64(d.bo.Uint32(e[4:]))
		t, ok := d.payload(e, n)
		if !ok || n < 4 || !bytes.HasPrefix(t, []byte{0xff, 0xd8}) || !bytes.HasSuffix(t, []byte{0xff, 0xd9}) {
			return nil, errors.New("JPEGTables is not a JPEG tables stream")
		}
		tables = t[:len(t)-2] // SOI and tables; each strip's stream goes on after its SOI
	}

	// Strips are full rows (RowsPerStrip), tiles TileWidth×TileLength
	// blocks in raster order, cropped at the right and bottom edges.
	tw, th := w, 0
	offsets, ok1 := d.values(273)
	counts, ok2 := d.values(279)
	if d.entries[322] != nil {
		tw32, err := d.value(322, 0)
		if err != nil {
			return nil, err
		}
		th32, err := d.value(323, 0)
		if err != nil {
			return nil, err
		}
		tw, th = int(tw32), int(th32)
		offsets, ok1 = d.values(324)
		counts, ok2 = d.values(325)
	} else {
		rps, err := d.value(278, math.MaxUint32)
		if err != nil {
			return nil, err
		}
		th = int(min(rps, uint32(h)))
	}
	// A tile may pass the image's edges, not be a bomb of its own.
	if tw <= 0 || th <= 0 || int64(tw)*int64(th) > int64(w)*int64(h)+1<<20 {
		return nil, fmt.Errorf("JPEG tiles of %dx%d for a %dx%d image", tw, th, w, h)
	}
	across, down := (w+tw-1)/tw, (h+th-1)/th
	if !ok1 || !ok2 || len(offsets) != len(counts) || len(offsets) != across*down {
		return nil, fmt.Errorf("%d strip or tile offsets and %d byte counts for %d of %dx%d", len(offsets), len(counts), across*down, tw, th)
	}
	dst := decodedPool.get(w, h)
	var buf []byte
	for k := range offsets {
		off, n := int64(offsets[k]), int64(counts[k])
		if n < 2 || off+n > int64(len(data)) {
			decodedPool.put(dst)
			return nil, fmt.Errorf("strip or tile %d: %d bytes at %d, past the end of the file", k, n, off)
		}
		chunk := data[off : off+n]
		if tables != nil {
			if !bytes.HasPrefix(chunk, []byte{0xff, 0xd8}) {
				decodedPool.put(dst)
				return nil, fmt.Errorf("strip or tile %d does not start a JPEG stream", k)
			}
			buf = append(append(buf[:0], tables...), chunk[2:]...)
			chunk = buf
		}
		x0, y0 := k%across*tw, k/across*th
		// A strip holds its rows (the last may be short), a tile always
		// its whole block.
		cw, ch := tw, th
		if d.entries[322] == nil {
			ch = min(th, h-y0)
		}
		if err := decodeTIFFJPEGChunk(dst, chunk, x0, y0, cw, ch, photo); err != nil {
			decodedPool.put(dst)
			return nil, fmt.Errorf("strip or tile %d: %w", k, err)
		}
	}
	return dst, nil
}

// decodeTIFFJPEGChunk decodes one strip or tile's JPEG, which must be
// cw×ch, into dst at (x0, y0), cropped to dst.
func decodeTIFFJPEGChunk(dst *image.NRGBA, chunk []byte, x0, y0, cw, ch int, photo uint32) error {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(chunk))
	if err != nil {
		return err
	}
	if cfg.Width != cw || cfg.Height != ch {
		return fmt.Errorf("JPEG of %dx%d, want %dx%d", cfg.Width, cfg.Height, cw, ch)
	}
	src, err := jpeg.Decode(bytes.NewReader(chunk))
	if err != nil {
		return err
	}
	var rgb *image.NRGBA
	if m, ok := src.(*image.YCbCr); ok && photo == 2 {
		// Photometric RGB: the samples are R, G, B as they are; a decoder
		// that took them for YCbCr (no Adobe marker, no RGB component ids)
		// is read back raw.
		if m.SubsampleRatio != image.YCbCrSubsampleRatio444 {
			return fmt.Errorf("photometric RGB with subsampled JPEG components (%v)", m.SubsampleRatio)
		}
		rgb = decodedPool.get(cw, ch)
		for y := 0; y < ch; y++ {
			row := rgb.Pix[y*rgb.Stride:]
			for x := 0; x < cw; x++ {
				i := m.YOffset(x+m.Rect.Min.X, y+m.Rect.Min.Y)
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = m.Y[i], m.Cb[i], m.Cr[i], 255
			}
		}
	} else {
		rgb = toRGB(src, cw, ch)
	}
	defer decodedPool.put(rgb)
	r := image.Rect(x0, y0, x0+cw, y0+ch).Intersect(dst.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(dst.Pix[dst.PixOffset(r.Min.X, y):dst.PixOffset(r.Max.X, y)], rgb.Pix[rgb.PixOffset(r.Min.X-x0, y-y0):])
	}
	return nil
}

// tiffJPEGConfig is the header of a JPEG-compressed TIFF (its size, and
// grey or RGB), which golang.org/x/image/tiff refuses for YCbCr.
func tiffJPEGConfig(data []byte) (image.Config, error) {
	d, ok := parseTIFFIFD(data)
	if !ok {
		return image.Config{}, errors.New("tiff: no IFD")
	}
	w, err := d.value(256, 0)
	if err != nil {
		return image.Config{}, err
	}
	h, err := d.value(257, 0)
	if err != nil {
		return image.Config{}, err
	}
	if w == 0 || h == 0 || w > 1<<30 || h > 1<<30 {
		return image.Config{}, fmt.Errorf("tiff: size %dx%d", w, h)
	}
	m := color.Model(color.RGBAModel)
	if spp, _ := d.value(277, 1); spp == 1 {
		m = color.GrayModel
	}
	return image.Config{ColorModel: m, Width: int(w), Height: int(h)}, nil
}

// isTIFFJPEG tells a JPEG-compressed TIFF.
func isTIFFJPEG(data []byte) bool {
	return slices.Contains([]uint32{tiffCompressionOldJPEG, tiffCompressionJPEG}, tiffCompression(data))
}
