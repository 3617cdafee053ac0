package sinks

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/maeembed/maeembed/stages/imagenet"
)

// PanelGap is the white gap in pixels between the four PNG panels.
const PanelGap = 4

func gridSide(l int) int {
	g := int(math.Round(math.Sqrt(float64(l))))
	if g*g != l {
		return -1
	}
	return g
}

// ReconPNG writes one 4-panel PNG per reconstructed image.
type ReconPNG struct {
	dir  string
	meta ReconMeta
	g, s int
	img  *image.NRGBA
	enc  png.Encoder
	done bool
	// written maps the files this writer published to their ids, so a
	// second row for one of them (an id repeated in the input) is that
	// row's error rather than a silent overwrite.
	written map[string]string
	// metaPending: DIR/maeembed-png.json is still to be written (before
	// the first PNG).
	metaPending bool
	// bw and wc are reused for every file: a row allocates no 64 KiB buffer.
	bw    *bufio.Writer
	wc    withChunk
	chunk []byte // the iTXt chunk of the file being written
}

// pngMetaName is the file in a PNG output directory that records the run
// settings (maeembed.* keys, as an npy set's metadata) its PNGs were made
// with; a run with other settings refuses the directory.
const pngMetaName = "maeembed-png.json"

// NewReconPNG writes one 4-panel PNG per image, like the MAE demo:
// original | masked | reconstruction | reconstruction + visible, separated
// by PanelGap white pixels. Panels are computed as the demo does in
// normalised space (masked = x·(1−mask), so removed patches show the
// ImageNet mean colour, a grey; paste = x·(1−mask) + pred·mask), then
// de-normalised, scaled by 255, clipped to [0,255] and truncated.
// Rows need Image, PredImage and PixelMask. The file is PNGPath(DIR, id): DIR/<id>.png, the id's "/"
// mirrored as directories ("a/b.jpg" → DIR/a/b.jpg.png), with the
// characters that could make two ids share a file or leave DIR escaped and
// over-long names shortened. The id is in the PNG's iTXt chunk "maeembed.id".
// DIR/maeembed-png.json records the run's settings (the maeembed.* keys of
// the other formats' metadata), written before the first PNG: a run into a
// directory made with other settings (e.g. another --seed) is refused, as
// with npy and Parquet, instead of replacing its PNGs; so is one beside a
// live run of its kind (another shard) that recorded other settings
// (LiveRunSettings), before either has written its first PNG.
// Each file is published atomically; one that cannot be written (or
// whose file this writer already published for another row) acks its row
// with an *ItemError and the writer goes on. A failure of the storage
// rather than of one file (no space left, quota, I/O error, read-only
// file system, file size limit: StorageFailure) stops the writer as it
// stops the other formats: Write acks that row and the rest of its batch
// with the error and returns it, leaving no temporary behind; the PNGs
// published before stay, and a resume skips them.
func NewReconPNG(dir string, meta ReconMeta) (*ReconPNG, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	g := gridSide(meta.Patches)
	if g < 0 {
		return nil, fmt.Errorf("sinks: png needs a square patch grid, L=%d", meta.Patches)
	}
	s := g * meta.Patch
	w := &ReconPNG{dir: dir, meta: meta, g: g, s: s, written: map[string]string{}, img: image.NewNRGBA(image.Rect(0, 0, 4*s+3*PanelGap, s))}
	w.enc.BufferPool = &pngPool{}
	w.bw = bufio.NewWriterSize(io.Discard, 64<<10)
	keys, vals := meta.keyValues()
	found, err := checkPNGMeta(dir, keys, vals, nil)
	if err != nil {
		return nil, err
	}
	// Another shard started beside a live one that has written no PNG
	// yet finds no maeembed-png.json: the live runs' recorded settings.
	if err := LiveRunSettings(dir, keys, vals); err != nil {
		return nil, err
	}
	if !found {
		// Every PNG this writer publishes follows maeembed-png.json: a PNG
		// in a directory without it is not one, and a run would replace
		// the one at its id's path.
		if err := foreignPNG(dir); err != nil {
			return nil, err
		}
	}
	w.metaPending = !found
	return w, nil
}

// foreignPNG fails, naming it, when dir (or a directory below it other
// than errors/) holds a PNG file without the "maeembed.id" chunk that
// this writer puts in each of its files. A missing dir holds none.
func foreignPNG(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if path == dir && errors.Is(err, os.ErrNotExist) {
				return filepath.SkipAll
			}
			return err
		}
		if d.IsDir() && path == filepath.Join(dir, errorsDir) {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || filepath.Ext(path) != ".png" {
			return nil
		}
		ours, err := hasIDChunk(path)
		if err != nil {
			return err
		}
		if !ours {
			return fmt.Errorf("png output: %s is not a maeembed output (no maeembed.id chunk) and %s holds no %s: "+
				"this run could replace it. Move it away or use another output directory", path, dir, pngMetaName)
		}
		return nil
	})
	if err != nil && !strings.HasPrefix(err.Error(), "png output: ") {
		err = fmt.Errorf("png output: %w", err)
	}
	return err
}

// hasIDChunk reports whether the file at path starts as this writer's
// PNGs do: signature, IHDR, then an iTXt chunk whose keyword is
// "maeembed.id" (its CRC is not checked: a damaged file of this writer
// is still its own, and is written again).
func hasIDChunk(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	const key = "iTXtmaeembed.id\x00"
	head := make([]byte, ihdrEnd+4+len(key))
	if _, err := io.ReadFull(f, head); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return false, nil // too short for a PNG of this writer
	} else if err != nil {
		return false, err
	}
	return bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")) && string(head[ihdrEnd+4:]) == key, nil
}

// checkPNGMeta compares DIR/maeembed-png.json, if there is one (found),
// with a run's settings keys/vals.
func checkPNGMeta(dir string, keys, vals, ignore []string) (found bool, err error) {
	path := filepath.Join(dir, pngMetaName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("png output: %w", err)
	}
	var kv map[string]string
	if err := json.Unmarshal(b, &kv); err != nil {
		return true, fmt.Errorf("png output: %s is corrupt: %w", path, err)
	}
	for _, k := range ignore {
		delete(kv, k)
	}
	return true, compatible(path, kv, keys, vals)
}

// writeMeta publishes DIR/maeembed-png.json (see NewReconPNG).
func (w *ReconPNG) writeMeta() error {
	keys, vals := w.meta.keyValues()
	kv := make(map[string]string, len(keys))
	for i, k := range keys {
		kv[k] = vals[i]
	}
	b, err := json.MarshalIndent(kv, "", "  ")
	if err != nil {
		return err
	}
	f, err := createAtomic(filepath.Join(w.dir, pngMetaName))
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", pngMetaName, err)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	w.metaPending = false
	return nil
}

type pngPool struct{ b *png.EncoderBuffer }

func (p *pngPool) Get() *png.EncoderBuffer  { return p.b }
func (p *pngPool) Put(b *png.EncoderBuffer) { p.b = b }

// maxNameBytes bounds each component of a PNG path, leaving room under
// the usual 255-byte NAME_MAX for ".png" and the temporary name's
// decoration (".NAME.123456789.maeembed-tmp").
const maxNameBytes = 200

// PNGPath is where NewReconPNG puts the image of id: DIR, then the id's
// "/"-separated components, the last one with ".png" appended. The mapping
// is injective, so two ids never share a file: in each component "%" is
// written "%25", "\" "%5C" and NUL (which no file name holds; a Parquet
// id or Kafka key may) "%00"; an empty component is "%", "."
// is "%2E" and ".." is "%2E%2E" (so nothing lands outside DIR and "a//b",
// "/a" and "a" stay apart), and a directory component ending in ".png"
// ends in "%2Epng" instead, so no directory takes a file's name. A
// component longer than 200 bytes after that
// is cut at a character boundary and ends in "%~" and 16 hex digits of the
// SHA-256 of the whole component; no unshortened component contains "%~".
// The PNG's "maeembed.id" text chunk keeps the id itself. Case-insensitive
// file systems are not handled: there ids differing only in case share a
// file.
func PNGPath(dir, id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		p = escapeComponent(p)
		if i < len(parts)-1 && strings.HasSuffix(p, ".png") {
			// A directory never looks like a file of this writer ("a" is
			// a.png, so the directory of "a.png/b" is a%2Epng).
			p = strings.TrimSuffix(p, ".png") + "%2Epng"
		}
		parts[i] = shortName(p)
	}
	return filepath.Join(dir, filepath.Join(parts...)+".png")
}

var componentEscaper = strings.NewReplacer("%", "%25", "\\", "%5C", "\x00", "%00")

// escapeComponent makes one id component a file name no other component
// maps to (see PNGPath).
func escapeComponent(p string) string {
	switch p {
	case "":
		return "%"
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return componentEscaper.Replace(p)
}

// shortName returns name, or if it is too long for a file name, a prefix
// of it with a digest of the whole.
func shortName(name string) string {
	if len(name) <= maxNameBytes {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	keep := maxNameBytes - 18
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	return name[:keep] + "%~" + hex.EncodeToString(sum[:8])
}

// ihdrEnd is the length of the PNG signature and IHDR chunk, which the
// standard encoder writes first; metadata chunks go right after it.
const ihdrEnd = 8 + 12 + 13

// appendTextChunk appends an iTXt chunk (UTF-8, uncompressed) holding
// key = value to dst; the writer reuses one buffer for every file.
func appendTextChunk(dst []byte, key, value string) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)+5+len(value)))
	dst = append(dst, "iTXt"...)
	dst = append(dst, key...)
	dst = append(dst, 0, 0, 0, 0, 0) // end of keyword, no compression, empty language and translated keyword
	dst = append(dst, value...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start+4:]))
}

// withChunk inserts chunk after the IHDR of the PNG written through it.
type withChunk struct {
	w     io.Writer
	n     int
	chunk []byte
}

func (c *withChunk) Write(b []byte) (int, error) {
	total := len(b)
	if c.chunk != nil && c.n+len(b) >= ihdrEnd {
		k := ihdrEnd - c.n
		if _, err := c.w.Write(b[:k]); err != nil {
			return 0, err
		}
		if _, err := c.w.Write(c.chunk); err != nil {
			return 0, err
		}
		c.chunk, c.n, b = nil, ihdrEnd, b[k:]
	}
	n, err := c.w.Write(b)
	c.n += n
	if err != nil {
		return total - len(b) + n, err
	}
	return total, nil
}

func (w *ReconPNG) render(r *ReconRow) {
	s := w.s
	pix, stride := w.img.Pix, w.img.Stride
	for i := range pix {
		pix[i] = 255 // white gaps, opaque
	}
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			m := r.PixelMask[y*s+x] // 1 = removed
			for c := 0; c < 3; c++ {
				orig := r.Image[(c*s+y)*s+x]
				pred := r.PredImage[(c*s+y)*s+x]
				vis := orig * (1 - m)
				vals := [4]float32{orig, vis, pred, vis + pred*m}
				for panel, v := range vals {
					pix[y*stride+(panel*(s+PanelGap)+x)*4+c] = imagenet.ToByte(v, c)
				}
			}
		}
	}
}

func (w *ReconPNG) Write(rows []ReconRow) error {
	if w.done {
		return failRows(rows, reconAck, errWriteAfterClose)
	}
	if err := checkRecon(rows, w.meta, true); err != nil {
		return failRows(rows, reconAck, err)
	}
	if w.metaPending {
		if err := w.writeMeta(); err != nil {
			return failRows(rows, reconAck, err)
		}
	}
	var unacked []error
	for i := range rows {
		err := w.writeOne(&rows[i])
		if err != nil && StorageFailure(err) {
			// The storage, not this file, failed: every row after it
			// would fail alike, and none of them is a bad input.
			w.done = true
			return failRows(rows[i:], reconAck, err)
		}
		if err != nil {
			// One file the file system refuses (name, permissions) is that
			// row's failure, not the run's: its ack says so.
			err = &ItemError{ID: rows[i].ID, Err: err}
		}
		switch a := rows[i].Ack; {
		case a != nil:
			a(err) // each file is durable on its own
		case err != nil:
			unacked = append(unacked, err) // nobody else would hear of it
		}
	}
	return errors.Join(unacked...)
}

func (w *ReconPNG) writeOne(r *ReconRow) error {
	path := PNGPath(w.dir, r.ID)
	if prev, ok := w.written[path]; ok {
		return fmt.Errorf("write %s: this run already wrote that file for id %q", path, prev)
	}
	// A file of another's at this path (one the resume did not take as
	// done): that row's error, never an overwrite.
	if ours, err := hasIDChunk(path); err == nil && !ours {
		return fmt.Errorf("write %s: the file exists and is not a maeembed output (no maeembed.id chunk): not replacing it", path)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w.render(r)
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	w.bw.Reset(f)
	w.chunk = appendTextChunk(w.chunk[:0], "maeembed.id", r.ID)
	w.wc = withChunk{w: w.bw, chunk: w.chunk}
	err = w.enc.Encode(&w.wc, w.img)
	if err == nil {
		err = w.bw.Flush()
	}
	if err != nil {
		f.Abort()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	w.written[path] = r.ID
	return nil
}

// storageErrnos are the errors of a file system, rather than of one file
// in it (StorageFailure).
var storageErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EFBIG}

// StorageFailure reports whether err (from writing an output file) is a
// failure of the storage rather than of that one file: no space left
// (ENOSPC), a quota reached (EDQUOT), an I/O error (EIO), a read-only file
// system (EROFS) or the file size limit (EFBIG). Every later file would
// fail alike, so a writer that goes on past one file's error (ReconPNG)
// stops on these instead.
func StorageFailure(err error) bool {
	for _, e := range storageErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Flush and Close have nothing pending: each PNG is published by Write.
func (w *ReconPNG) Flush() error { return nil }
func (w *ReconPNG) Close() error { w.done = true; return nil }
func (w *ReconPNG) Abort() error { w.done = true; return nil }
