// Command genbombs writes the decompression bombs and oversized Parquet rows
// that the memory budget is measured on (docs/batch.md, "Bounded memory"):
//
//	go run ./stages/testdata/genbombs OUTDIR [onepage]
//
// bomb-vp8l-13000.webp (38 bytes) and bomb-gif-screen-13000.gif (35 bytes)
// are also committed in stages/testdata/odd; the 16-bit PNG (1.3 MB) and the
// Parquet file of four 200 MB rows are only generated. With "onepage",
// rows-4x200mb-onepage.parquet holds the same rows written as one record:
// one page, as writers put several large rows together.
package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 || len(os.Args) == 3 && os.Args[2] != "onepage" {
		fmt.Fprintln(os.Stderr, "usage: genbombs OUTDIR [onepage]")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			fail(err)
		}
	}
	write("bomb-vp8l-13000.webp", VP8LBomb(13000, 13000))
	write("bomb-gif-screen-13000.gif", GIFScreenBomb(13000, 13000))
	f, err := os.Create(filepath.Join(dir, "bomb-png16-13000.png"))
	if err != nil {
		fail(err)
	}
	if err := PNG16Bomb(f, 13000, 13000); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	if err := bigRows(filepath.Join(dir, "rows-4x200mb.parquet"), 4, 200<<20, false); err != nil {
		fail(err)
	}
	if len(os.Args) == 3 {
		if err := bigRows(filepath.Join(dir, "rows-4x200mb-onepage.parquet"), 4, 200<<20, true); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genbombs:", err)
	os.Exit(1)
}

// bitWriter writes the LSB-first bit stream of VP8L.
type bitWriter struct {
	b   []byte
	n   uint
	acc uint64
}

func (w *bitWriter) put(v uint64, bits uint) {
	w.acc |= v << w.n
	w.n += bits
	for w.n >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	return w.b
}

// VP8LBomb is a lossless WebP of w×h opaque black pixels in a few bytes:
// every prefix code has a single symbol, so each pixel costs zero bits.
func VP8LBomb(w, h int) []byte {
	var bw bitWriter
	bw.put(0x2f, 8)
	bw.put(uint64(w-1), 14)
	bw.put(uint64(h-1), 14)
	bw.put(0, 1)                                 // alpha hint
	bw.put(0, 3)                                 // version
	bw.put(0, 1)                                 // no transform
	bw.put(0, 1)                                 // no colour cache
	bw.put(0, 1)                                 // no meta prefix codes
	for _, sym := range []int{0, 0, 0, 255, 0} { // green, red, blue, alpha, distance
		bw.put(1, 1) // simple code
		bw.put(0, 1) // one symbol
		if sym < 2 {
			bw.put(0, 1)
			bw.put(uint64(sym), 1)
		} else {
			bw.put(1, 1)
			bw.put(uint64(sym), 8)
		}
	}
	data := bw.bytes()
	data = append(data, make([]byte, 8)...) // slack for the reader's look-ahead
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(data)+len(data)&1))
	b.WriteString("WEBPVP8L")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	if len(data)&1 == 1 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// GIFScreenBomb is a GIF with a w×h logical screen and a 1×1 frame: the
// screen, not the frame, sizes the decoded image.
func GIFScreenBomb(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	binary.Write(&b, binary.LittleEndian, [2]uint16{uint16(w), uint16(h)})
	b.Write([]byte{0x80, 0, 0})             // global table of 2 colours
	b.Write([]byte{0, 0, 0, 255, 255, 255}) // black, white
	b.WriteByte(',')
	binary.Write(&b, binary.LittleEndian, [4]uint16{0, 0, 1, 1})
	b.WriteByte(0)
	b.Write([]byte{2, 2, 0x44, 0x01, 0}) // LZW min size 2: clear, 0, end
	b.WriteByte(';')
	return b.Bytes()
}

func pngChunk(w io.Writer, typ string, body []byte) {
	binary.Write(w, binary.BigEndian, uint32(len(body)))
	io.WriteString(w, typ)
	w.Write(body)
	binary.Write(w, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), body...)))
}

// PNG16Bomb writes a valid 16-bit RGBA PNG of w×h zero pixels: 8 bytes per
// pixel once decoded, about a thousandth of that on disk.
func PNG16Bomb(out io.Writer, w, h int) error {
	out.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 16, 6
	pngChunk(out, "IHDR", ihdr)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+8*w)
	for y := 0; y < h; y++ {
		if _, err := zw.Write(row); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	for b := z.Bytes(); len(b) > 0; {
		n := min(len(b), 1<<20)
		pngChunk(out, "IDAT", b[:n])
		b = b[n:]
	}
	pngChunk(out, "IEND", nil)
	return nil
}

// bigRows writes a Parquet file whose "image" column holds n BMPs of about
// size bytes each (24-bit, black).
// bigRows writes n rows of one BMP of about size bytes: a row group each,
// or with onePage one record (row group and page) of them all.
func bigRows(path string, n, size int, onePage bool) error {
	wpx := 8192
	hpx := size / (3 * wpx)
	bmp := make([]byte, 54+3*wpx*hpx)
	copy(bmp, "BM")
	binary.LittleEndian.PutUint32(bmp[2:], uint32(len(bmp)))
	binary.LittleEndian.PutUint32(bmp[10:], 54)
	binary.LittleEndian.PutUint32(bmp[14:], 40)
	binary.LittleEndian.PutUint32(bmp[18:], uint32(wpx))
	binary.LittleEndian.PutUint32(bmp[22:], uint32(hpx))
	binary.LittleEndian.PutUint16(bmp[26:], 1)
	binary.LittleEndian.PutUint16(bmp[28:], 24)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "image", Type: arrow.BinaryTypes.Binary}}, nil)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(schema, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	per := 1 // rows per record: a row group each
	if onePage {
		per = n
	}
	for i := 0; i < n; i += per {
		ids := array.NewStringBuilder(memory.DefaultAllocator)
		imgs := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
		for j := i; j < i+per; j++ {
			ids.Append(fmt.Sprintf("row-%d.bmp", j))
			imgs.Append(bmp)
		}
		rec := array.NewRecord(schema, []arrow.Array{ids.NewArray(), imgs.NewArray()}, int64(per))
		if err := w.Write(rec); err != nil {
			return err
		}
		rec.Release()
	}
	return w.Close()
}
