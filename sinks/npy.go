package sinks

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

const npyMagic = "\x93NUMPY"

// npyHeader renders a v1.0 header for a C-order float32 array, padded with
// spaces to exactly size bytes (a multiple of 64, ending in '\n').
func npyHeader(shape []int, size int) ([]byte, error) {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': " + tuple + ", }"
	pre := len(npyMagic) + 2 + 2 // magic, version, uint16 header length
	if size == 0 {
		size = (pre + len(dict) + 1 + 63) / 64 * 64
	}
	if pre+len(dict)+1 > size || size-pre > math.MaxUint16 {
		return nil, fmt.Errorf("npy header for shape %v does not fit in %d bytes", shape, size)
	}
	h := make([]byte, size)
	copy(h, npyMagic)
	h[6], h[7] = 1, 0
	binary.LittleEndian.PutUint16(h[8:], uint16(size-pre))
	n := copy(h[pre:], dict)
	for i := pre + n; i < size-1; i++ {
		h[i] = ' '
	}
	h[size-1] = '\n'
	return h, nil
}

// npyFile streams float32 rows of a fixed inner shape into a hidden temp
// file. The leading dimension is unknown until the end, so the header space
// is reserved for the largest possible count and patched by finish.
type npyFile struct {
	af      *atomicfile.File
	bw      *bufio.Writer
	inner   []int // shape after the leading N
	rowLen  int
	n       int
	hdrSize int
	scratch []byte
}

func createNpy(path string, inner []int) (*npyFile, error) {
	rowLen := 1
	for _, d := range inner {
		rowLen *= d
	}
	// Reserve room for the widest possible N so the patch never moves data.
	hdr, err := npyHeader(append([]int{math.MaxInt64}, inner...), 0)
	if err != nil {
		return nil, err
	}
	af, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	f := &npyFile{af: af, bw: bufio.NewWriterSize(af, 1<<20), inner: inner, rowLen: rowLen, hdrSize: len(hdr)}
	if _, err := f.bw.Write(make([]byte, len(hdr))); err != nil {
		af.Abort()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return f, nil
}

// appendRow writes one row of rowLen values.
func (f *npyFile) appendRow(v []float32) error {
	if len(v) != f.rowLen {
		return fmt.Errorf("%s: row has %d values, want %d", f.af.Final(), len(v), f.rowLen)
	}
	if cap(f.scratch) < 4*len(v) {
		f.scratch = make([]byte, 4*len(v))
	}
	b := f.scratch[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if _, err := f.bw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", f.af.Final(), err)
	}
	f.n++
	return nil
}

// appendRaw copies n rows of already little-endian float32 bytes.
func (f *npyFile) appendRaw(r io.Reader, n int) error {
	want := int64(n) * int64(f.rowLen) * 4
	got, err := io.CopyN(f.bw, r, want)
	if err != nil {
		return fmt.Errorf("copy into %s: %d of %d bytes: %w", f.af.Final(), got, want, err)
	}
	f.n += n
	return nil
}

// finish flushes the data and writes the real header; publish is separate
// so several files can be completed before any becomes visible.
func (f *npyFile) finish() error {
	if err := f.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", f.af.Final(), err)
	}
	hdr, err := npyHeader(append([]int{f.n}, f.inner...), f.hdrSize)
	if err != nil {
		return err
	}
	if _, err := f.af.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("write header of %s: %w", f.af.Final(), err)
	}
	return nil
}

// publish renames the file into place; its writer synced it (npySet.publish).
func (f *npyFile) publish() error { return f.af.CommitSynced() }
func (f *npyFile) abort() error   { return f.af.Abort() }

var (
	npyDescrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	npyFortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	npyShapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// npyInfo is a parsed .npy header.
type npyInfo struct {
	descr   string
	shape   []int
	dataOff int64
}

func (h npyInfo) count() int {
	n := 1
	for _, d := range h.shape {
		n *= d
	}
	return n
}

func readNpyHeader(path string, r io.Reader) (npyInfo, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		return npyInfo{}, fmt.Errorf("%s: not an npy file: %w", path, err)
	}
	if string(pre[:6]) != npyMagic {
		return npyInfo{}, fmt.Errorf("%s: not an npy file (bad magic)", path)
	}
	var hlen, off int
	switch pre[6] {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return npyInfo{}, fmt.Errorf("%s: truncated npy header: %w", path, err)
		}
		hlen, off = int(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return npyInfo{}, fmt.Errorf("%s: truncated npy header: %w", path, err)
		}
		hlen, off = int(binary.LittleEndian.Uint32(l[:])), 12
	default:
		return npyInfo{}, fmt.Errorf("%s: unsupported npy version %d.%d", path, pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return npyInfo{}, fmt.Errorf("%s: npy header of %d bytes is implausible", path, hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return npyInfo{}, fmt.Errorf("%s: truncated npy header: %w", path, err)
	}
	h := string(hb)
	info := npyInfo{dataOff: int64(off + hlen)}
	m := npyDescrRe.FindStringSubmatch(h)
	if m == nil {
		return info, fmt.Errorf("%s: npy header has no descr: %q", path, h)
	}
	info.descr = m[1]
	if m := npyFortranRe.FindStringSubmatch(h); m == nil {
		return info, fmt.Errorf("%s: npy header has no fortran_order: %q", path, h)
	} else if m[1] == "True" {
		return info, fmt.Errorf("%s: Fortran-order arrays are not supported; save it C-ordered (np.ascontiguousarray)", path)
	}
	m = npyShapeRe.FindStringSubmatch(h)
	if m == nil {
		return info, fmt.Errorf("%s: npy header has no shape: %q", path, h)
	}
	for _, s := range strings.Split(m[1], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 {
			return info, fmt.Errorf("%s: bad npy shape %q", path, m[1])
		}
		info.shape = append(info.shape, d)
	}
	return info, nil
}

// ReadNpyFloat32 reads a C-ordered .npy array of little-endian float32
// ('<f4') or float64 ('<f8', converted) values. Any other dtype, byte order
// or Fortran order is an error naming the file.
func ReadNpyFloat32(path string) (shape []int, data []float32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	h, err := readNpyHeader(path, br)
	if err != nil {
		return nil, nil, err
	}
	var size int
	switch h.descr {
	case "<f4":
		size = 4
	case "<f8":
		size = 8
	default:
		return nil, nil, fmt.Errorf("%s: dtype %q not supported; want float32 '<f4' or float64 '<f8' (little-endian)", path, h.descr)
	}
	n := h.count()
	if st, err := f.Stat(); err == nil && st.Size() < h.dataOff+int64(n*size) {
		return nil, nil, fmt.Errorf("%s: truncated: shape %v needs %d data bytes, file has %d", path, h.shape, n*size, st.Size()-h.dataOff)
	}
	data = make([]float32, n)
	buf := make([]byte, 1<<16)
	for i := 0; i < n; {
		k := min(len(buf)/size, n-i)
		if _, err := io.ReadFull(br, buf[:k*size]); err != nil {
			return nil, nil, fmt.Errorf("%s: read data: %w", path, err)
		}
		for j := 0; j < k; j++ {
			if size == 4 {
				data[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			} else {
				data[i+j] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*j:])))
			}
		}
		i += k
	}
	if h.shape == nil {
		h.shape = []int{}
	}
	return h.shape, data, nil
}

// openNpyFloat32 opens an npy file for raw row copying; the reader is
// positioned at the first data byte.
func openNpyFloat32(path string) (*os.File, npyInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, npyInfo{}, err
	}
	h, err := readNpyHeader(path, f)
	if err == nil && h.descr != "<f4" {
		err = fmt.Errorf("%s: dtype %q, want '<f4'", path, h.descr)
	}
	if err == nil {
		_, err = f.Seek(h.dataOff, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, npyInfo{}, err
	}
	return f, h, nil
}
