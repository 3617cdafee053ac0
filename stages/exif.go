package stages

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"image"
	"io"
	"regexp"
	"strings"
)

// orientation returns the EXIF Orientation (1..8) an encoded image carries,
// or 0, from wherever its container keeps it, as PIL's getexif (9.4) finds
// it for ImageOps.exif_transpose:
//   - JPEG: the first APP1 "Exif" segment;
//   - PNG: the eXIf chunk, else a "Raw profile type exif" text chunk
//     (ImageMagick), else tiff:Orientation in the XMP iTXt chunk;
//   - WebP: the EXIF chunk;
//   - TIFF: tag 274 of the first IFD (PIL's TIFF loader applies it itself).
//
// GIF and BMP carry no orientation.
func orientation(format string, data []byte) int {
	switch format {
	case "jpeg":
		return jpegOrientation(data)
	case "png":
		return pngOrientation(data)
	case "webp":
		return webpOrientation(data)
	case "tiff":
		return tiffOrientation(data)
	}
	return 0
}

// exifOrientation reads an EXIF block as PNG and WebP store it: a TIFF
// structure, optionally behind the JPEG-style "Exif\0\0" header.
func exifOrientation(b []byte) int {
	return tiffOrientation(bytes.TrimPrefix(b, []byte("Exif\x00\x00")))
}

// maxTextChunk bounds the decompressed size of a compressed PNG text chunk
// read for its EXIF profile (a zTXt bomb must not cost memory).
const maxTextChunk = 1 << 20

var xmpOrientation = regexp.MustCompile(`tiff:Orientation(="|>)([0-9])`)

// pngOrientation walks the PNG chunks (all of them: PIL also reads an eXIf
// placed after the image data) without checking CRCs.
func pngOrientation(data []byte) int {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(data) < len(sig) || string(data[:len(sig)]) != sig {
		return 0
	}
	var exif, raw, xmp []byte
	for i := len(sig); i+8 <= len(data); {
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if n > int64(len(data)-i-8) {
			break
		}
		body := data[i+8 : i+8+int(n)]
		switch typ {
		case "eXIf":
			if exif == nil {
				exif = body
			}
		case "tEXt", "zTXt", "iTXt":
			key, text := pngText(typ, body)
			switch {
			case key == "Raw profile type exif" && raw == nil:
				raw = text
			case key == "XML:com.adobe.xmp" && xmp == nil:
				xmp = text
			}
		case "IEND":
			i = len(data)
			continue
		}
		i += 12 + int(n)
	}
	o := 0
	if exif != nil {
		o = exifOrientation(exif)
	} else if raw != nil {
		// "\nexif\n    LEN\nHEX…": PIL joins the lines after the third.
		if lines := strings.Split(string(raw), "\n"); len(lines) > 3 {
			if b, err := hex.DecodeString(strings.Join(lines[3:], "")); err == nil {
				o = exifOrientation(b)
			}
		}
	}
	if o == 0 {
		if m := xmpOrientation.FindSubmatch(xmp); m != nil {
			o = int(m[2][0] - '0')
		}
	}
	if o < 1 || o > 8 {
		return 0
	}
	return o
}

// pngText returns the keyword and (decompressed) text of a tEXt, zTXt or
// iTXt chunk, or empty results when it is malformed.
func pngText(typ string, body []byte) (string, []byte) {
	key, rest, ok := bytes.Cut(body, []byte{0})
	if !ok {
		return "", nil
	}
	compressed := false
	switch typ {
	case "zTXt":
		if len(rest) < 1 {
			return "", nil
		}
		rest, compressed = rest[1:], true
	case "iTXt":
		// compression flag, method, language tag\0, translated keyword\0
		if len(rest) < 2 {
			return "", nil
		}
		compressed = rest[0] == 1
		rest = rest[2:]
		for k := 0; k < 2; k++ {
			if _, rest, ok = bytes.Cut(rest, []byte{0}); !ok {
				return "", nil
			}
		}
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(rest))
		if err != nil {
			return "", nil
		}
		defer zr.Close()
		if rest, err = io.ReadAll(io.LimitReader(zr, maxTextChunk)); err != nil {
			return "", nil
		}
	}
	return string(key), rest
}

// webpOrientation reads the EXIF chunk of an extended (VP8X) WebP.
func webpOrientation(data []byte) int {
	for _, c := range riffChunks(data) {
		if c.id == "EXIF" {
			return exifOrientation(c.body)
		}
	}
	return 0
}

// jpegOrientation returns the EXIF Orientation tag (1..8) of a JPEG, or 0
// when absent or unreadable. Only the markers before the scan are read, and
// only the first Exif segment counts, as in PIL.
func jpegOrientation(data []byte) int {
	o := 0
	jpegSegments(data, func(marker byte, seg []byte) bool {
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			o = tiffOrientation(seg[6:])
			return false
		}
		return true
	})
	return o
}

// jpegProgressive tells a progressive JPEG (SOF2/SOF6/SOF10/SOF14), whose
// decoder keeps every DCT coefficient until the last scan.
func jpegProgressive(data []byte) bool {
	prog := false
	jpegSegments(data, func(marker byte, _ []byte) bool {
		switch marker {
		case 0xC2, 0xC6, 0xCA, 0xCE:
			prog = true
			return false
		case 0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF:
			return false
		}
		return true
	})
	return prog
}

// jpegSegments calls fn with each marker segment of a JPEG before its first
// scan, until fn returns false.
func jpegSegments(data []byte, fn func(marker byte, seg []byte) bool) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return
	}
	i := 2
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan / end of image
			return
		}
		if marker >= 0xD0 && marker <= 0xD7 || marker == 0x01 { // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return
		}
		if !fn(marker, data[i+4:i+2+n]) {
			return
		}
		i += 2 + n
	}
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF-structured EXIF block
// (or of a TIFF file itself).
func tiffOrientation(t []byte) int {
	if o, ok := tiffTag(t, 0x0112); ok && o >= 1 && o <= 8 {
		return int(o)
	}
	return 0
}

// tiffByteOrder is the byte order a TIFF structure declares in its first
// two bytes ("II" little-endian, "MM" big-endian); ok is false for
// anything else or fewer than the 8 bytes of a TIFF header.
func tiffByteOrder(t []byte) (bo interface {
	binary.ByteOrder
	binary.AppendByteOrder
}, ok bool) {
	if len(t) < 8 {
		return nil, false
	}
	switch string(t[:2]) {
	case "II":
		return binary.LittleEndian, true
	case "MM":
		return binary.BigEndian, true
	}
	return nil, false
}

// tiffTag reads a single SHORT or LONG value of tag from IFD0 of a TIFF
// structure (orientation is a SHORT by the standard, but some writers use a
// LONG and PIL takes the value all the same).
func tiffTag(t []byte, tag uint16) (uint32, bool) {
	bo, ok := tiffByteOrder(t)
	if !ok || bo.Uint16(t[2:]) != 42 {
		return 0, false
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 0, false
	}
	n := int(bo.Uint16(t[ifd:]))
	for k := 0; k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 0, false
		}
		if bo.Uint16(t[e:]) != tag {
			continue
		}
		switch bo.Uint16(t[e+2:]) {
		case 3: // SHORT
			return uint32(bo.Uint16(t[e+8:])), true
		case 4: // LONG
			return bo.Uint32(t[e+8:]), true
		}
		return 0, false
	}
	return 0, false
}

// orient applies an EXIF orientation (2..8) so the image is upright, as
// PIL's ImageOps.exif_transpose does.
func orient(src *image.NRGBA, o int) *image.NRGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	dst := decodedPool.get(ow, oh)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch o {
			case 2: // mirror horizontal
				sx, sy = w-1-x, y
			case 3: // rotate 180
				sx, sy = w-1-x, h-1-y
			case 4: // mirror vertical
				sx, sy = x, h-1-y
			case 5: // transpose
				sx, sy = y, x
			case 6: // rotate 90° clockwise
				sx, sy = y, h-1-x
			case 7: // transverse
				sx, sy = w-1-y, h-1-x
			case 8: // rotate 90° counter-clockwise
				sx, sy = w-1-y, x
			default:
				sx, sy = x, y
			}
			copy(dst.Pix[y*dst.Stride+4*x:y*dst.Stride+4*x+4], src.Pix[sy*src.Stride+4*sx:])
		}
	}
	return dst
}
