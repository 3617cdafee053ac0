package stages

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strings"
)

// Where PIL is more lenient than Go's standard decoders, the file is
// rewritten into the form the standard decoder accepts, so the pixels
// still come from a well-kept decoder. Each rewrite is what PIL (9.4)
// effectively reads; what PIL refuses stays refused.

// gifRepair returns the GIF as PIL reads its first frame, in the form
// image/gif accepts: the logical screen enlarged to hold the first frame
// (GifImagePlugin grows the image to the frame's extent; image/gif refuses
// a frame outside the screen), and stray bytes between the blocks before
// it dropped (PIL skips a byte it does not know; image/gif stops with
// "unknown block type"). It returns data itself when nothing needs to
// change or the file is not one it can walk (the standard decoder then
// reports the error).
func gifRepair(data []byte) []byte {
	if len(data) < 13 || !bytes.HasPrefix(data, []byte("GIF8")) {
		return data
	}
	sw, sh := int(binary.LittleEndian.Uint16(data[6:])), int(binary.LittleEndian.Uint16(data[8:]))
	var stray []int // offsets of bytes PIL skips
	i, ok := gifWalkToFrame(data, func(i int) bool {
		stray = append(stray, i)
		return true
	})
	if !ok {
		return data
	}
	d := data[i+1:]
	x1 := int(binary.LittleEndian.Uint16(d[0:])) + int(binary.LittleEndian.Uint16(d[4:]))
	y1 := int(binary.LittleEndian.Uint16(d[2:])) + int(binary.LittleEndian.Uint16(d[6:]))
	// Both fit in 17 bits, not always in the 16 of the header: such a
	// frame stays refused.
	w, h := max(sw, x1), max(sh, y1)
	if w > 0xffff || h > 0xffff || (w == sw && h == sh && stray == nil) {
		return data
	}
	out := make([]byte, 0, len(data)-len(stray))
	from := 0
	for _, o := range stray {
		out = append(out, data[from:o]...)
		from = o + 1
	}
	out = append(out, data[from:]...)
	binary.LittleEndian.PutUint16(out[6:], uint16(w))
	binary.LittleEndian.PutUint16(out[8:], uint16(h))
	return out
}

// gifWalkToFrame walks a GIF (at least its 13-byte header) past its global
// color table and the extensions before its first image descriptor, and
// returns that descriptor's offset, ok when all 10 of its bytes are there.
// A byte that starts no block is passed to stray, which says whether to
// skip it (PIL does) or stop (ok false); the trailer, or data ending
// first, stops the walk too.
func gifWalkToFrame(data []byte, stray func(i int) bool) (at int, ok bool) {
	if len(data) < 13 {
		return 0, false
	}
	i := 13
	if data[10]&0x80 != 0 {
		i += 3 << (data[10]&7 + 1)
	}
	for i < len(data) {
		switch data[i] {
		case '!': // extension: label, then data sub-blocks
			i += 2
			for i < len(data) && data[i] != 0 {
				i += 1 + int(data[i])
			}
			i++
		case ',':
			return i, i+9 < len(data)
		case ';':
			return 0, false
		default:
			if !stray(i) {
				return 0, false
			}
			i++
		}
	}
	return 0, false
}

// pngRepair returns the PNG as PIL reads it, or nil when it reads it as
// the standard decoder does: PIL checks the CRC of the chunks before the
// image data only (not of IDAT, nor of anything after), and stops reading
// after the image data (a missing IEND or a broken chunk after it does not
// matter). The rewrite keeps every chunk up to the last IDAT, with the IDAT
// CRCs recomputed, and ends with IEND.
func pngRepair(data []byte) []byte {
	const sig = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(data, []byte(sig)) {
		return nil
	}
	var fixCRC []int // offsets of IDAT chunks with a wrong CRC
	end := -1        // end of the last IDAT chunk of the first run
	i := len(sig)
	for i+8 <= len(data) {
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if typ != "IDAT" && end >= 0 {
			break // the image data ended: PIL reads no further
		}
		if n+12 > int64(len(data)-i) {
			return nil // truncated: refused by both
		}
		if typ == "IDAT" {
			if crc32.Checksum(data[i+4:i+8+int(n)], crc32.IEEETable) != binary.BigEndian.Uint32(data[i+8+int(n):]) {
				fixCRC = append(fixCRC, i)
			}
			end = i + 12 + int(n)
		}
		i += 12 + int(n)
	}
	if end < 0 {
		return nil
	}
	rest := data[end:]
	iend := []byte{0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82}
	if len(fixCRC) == 0 && bytes.HasPrefix(rest, iend) {
		return nil // already what the standard decoder reads
	}
	out := make([]byte, 0, end+len(iend))
	out = append(out, data[:end]...)
	for _, o := range fixCRC {
		n := int(binary.BigEndian.Uint32(out[o:]))
		binary.BigEndian.PutUint32(out[o+8+n:], crc32.ChecksumIEEE(out[o+4:o+8+n]))
	}
	return append(out, iend...)
}

// decodePNGLenient decodes a PNG the standard decoder refused, as PIL reads
// it: the container repaired (pngRepair), then, if the image data holds
// more than the image needs (PIL stops reading once the image is complete),
// that data cut to its size (pngTrim).
func decodePNGLenient(data []byte) (image.Image, error) {
	if fixed := pngRepair(data); fixed != nil {
		data = fixed
	}
	m, err := png.Decode(bytes.NewReader(data))
	if err != nil && strings.Contains(err.Error(), "too much pixel data") {
		if trimmed, terr := pngTrim(data); terr == nil {
			return png.Decode(bytes.NewReader(trimmed))
		}
	}
	return m, err
}

// pngTrim rewrites a PNG whose zlib stream decompresses to more bytes than
// the image needs (or that has data after the stream's end): the first
// bytes it needs are recompressed into one IDAT. A stream with too few
// bytes stays an error, as in PIL.
func pngTrim(data []byte) ([]byte, error) {
	var ihdr, idat []byte
	var head []byte // the chunks before the first IDAT
	i := 8
	for i+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n < 0 || n > len(data)-i-12 {
			return nil, errors.New("png: truncated chunk")
		}
		typ, body := string(data[i+4:i+8]), data[i+8:i+8+n]
		switch typ {
		case "IHDR":
			ihdr = body
		case "IDAT":
			if head == nil {
				head = data[:i]
			}
			idat = append(idat, body...)
		}
		i += 12 + n
	}
	if len(ihdr) != 13 || head == nil {
		return nil, errors.New("png: no IHDR or IDAT")
	}
	w, h := int(binary.BigEndian.Uint32(ihdr)), int(binary.BigEndian.Uint32(ihdr[4:]))
	bits := pngPixelBits(ihdr[9], ihdr[8])
	if bits == 0 {
		return nil, errors.New("png: unknown color type")
	}
	need := pngRawBytes(int64(w), int64(h), bits, ihdr[12] == 1)
	zr, err := zlib.NewReader(bytes.NewReader(idat))
	if err != nil {
		return nil, err
	}
	raw := make([]byte, need)
	if _, err := io.ReadFull(zr, raw); err != nil {
		return nil, err
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	zw.Write(raw)
	zw.Close()
	out := append(bytes.Clone(head), binary.BigEndian.AppendUint32(nil, uint32(z.Len()))...)
	out = append(out, "IDAT"...)
	out = append(out, z.Bytes()...)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte("IDAT"), z.Bytes()...)))
	return append(out, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82), nil
}

// tiffCMYKAsRGBA rewrites a CMYK TIFF (PhotometricInterpretation 5, four
// 8-bit samples), which golang.org/x/image/tiff refuses, as one it reads:
// a copy of the first IFD, appended to the file, says RGB with an extra
// unassociated-alpha sample, so the decoder (with every compression and
// predictor it knows) returns C, M, Y, K as R, G, B, A of an NRGBA, and
// cmykToRGB converts them as PIL does. ok is false for any other file.
func tiffCMYKAsRGBA(data []byte) (out []byte, ok bool) {
	bo, ok := tiffByteOrder(data)
	if !ok {
		return nil, false
	}
	if p, _ := tiffTag(data, 262); p != 5 {
		return nil, false
	}
	if s, _ := tiffTag(data, 277); s != 4 {
		return nil, false
	}
	if ink, ok := tiffTag(data, 332); ok && ink != 1 { // InkSet: 1 = CMYK
		return nil, false
	}
	ifd := int(bo.Uint32(data[4:]))
	if ifd < 8 || ifd+2 > len(data) {
		return nil, false
	}
	n := int(bo.Uint16(data[ifd:]))
	if ifd+2+12*n > len(data) {
		return nil, false
	}
	entries := make([][]byte, 0, n+1)
	extra := make([]byte, 12) // ExtraSamples = 2 (unassociated alpha)
	bo.PutUint16(extra, 338)
	bo.PutUint16(extra[2:], 3)
	bo.PutUint32(extra[4:], 1)
	bo.PutUint16(extra[8:], 2)
	for k := 0; k < n; k++ {
		e := bytes.Clone(data[ifd+2+12*k : ifd+14+12*k])
		tag := bo.Uint16(e)
		if extra != nil && tag >= 338 {
			entries = append(entries, extra)
			extra = nil
			if tag == 338 {
				continue // replaced
			}
		}
		if tag == 262 {
			bo.PutUint16(e[8:], 2) // RGB
			bo.PutUint16(e[10:], 0)
		}
		entries = append(entries, e)
	}
	if extra != nil {
		entries = append(entries, extra)
	}
	out = append(bytes.Clone(data), make([]byte, len(data)&1)...) // IFDs start on a word boundary
	at := len(out)
	out = bo.AppendUint16(out, uint16(len(entries)))
	for _, e := range entries {
		out = append(out, e...)
	}
	out = bo.AppendUint32(out, 0) // no next IFD
	bo.PutUint32(out[4:], uint32(at))
	return out, true
}

// cmykToRGB converts 8-bit C, M, Y, K (held in R, G, B, A of m) to opaque
// RGB in place, as PIL's cmyk2rgb does: each of C, M, Y scaled by 1-K and
// subtracted from 1-K.
func cmykToRGB(m *image.NRGBA) {
	muldiv255 := func(a, b int) int { t := a*b + 128; return ((t >> 8) + t) >> 8 }
	for i := 0; i < len(m.Pix); i += 4 {
		nk := 255 - int(m.Pix[i+3])
		for c := 0; c < 3; c++ {
			m.Pix[i+c] = uint8(max(0, min(255, nk-muldiv255(int(m.Pix[i+c]), nk))))
		}
		m.Pix[i+3] = 255
	}
}
