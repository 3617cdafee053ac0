package sources

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
)

// maxMemberBytes bounds the bytes read for one archive member or row: a
// larger "image" is refused (as an error item) rather than exhausting memory.
// A variable so tests can lower it.
var maxMemberBytes = 512 << 20

// imageExt lists the member extensions treated as images in tar shards;
// other WebDataset members (.json, .txt, .cls…) are metadata and skipped.
var imageExt = map[string]bool{
	".jpg": true, ".jpeg": true, ".jfif": true, ".png": true, ".webp": true,
	".gif": true, ".bmp": true, ".tif": true, ".tiff": true,
}

// isTarImage: a member that is an input (an image, or a link or special
// file named like one, which becomes an error row); directories and
// metadata members are not.
func isTarImage(h *tar.Header) bool {
	return h.Typeflag != tar.TypeDir && imageExt[strings.ToLower(path.Ext(h.Name))]
}

func isTarRegular(h *tar.Header) bool {
	// (archive/tar already turns the old '\x00' flag into TypeReg.)
	return h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeGNUSparse
}

func tarType(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeSymlink:
		return "a symlink to " + strconv.Quote(h.Linkname)
	case tar.TypeLink:
		return "a hard link to " + strconv.Quote(h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return "a device"
	case tar.TypeFifo:
		return "a FIFO"
	}
	return fmt.Sprintf("of type %q", h.Typeflag)
}

type tarContainer struct {
	f  *os.File
	gz *gzip.Reader
	tr *tar.Reader
	// ignored counts the members that are not inputs (!isTarImage and
	// isTarIgnored), as the files of a directory that are not images are
	// counted.
	ignored *atomic.Int64
}

// isTarIgnored: of the members that are not inputs (!isTarImage: a
// WebDataset's .json, .cls, .txt), those counted as ignored: all but a
// directory or a global header (structure, as a directory entry is in a
// walk). The caller has tested isTarImage already, so the name's
// extension is not lowered a second time per member.
func isTarIgnored(h *tar.Header) bool {
	return h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeXGlobalHeader
}

// gzipMagic starts every gzip stream (RFC 1952: ID1, ID2).
var gzipMagic = []byte{0x1f, 0x8b}

// compression names the compression of a stream from its magic number,
// read at offset 0 without moving r's offset: "gzip", which maeembed
// reads; "bzip2", "xz" or "zstd", which it does not (without the name
// such a tar failed as "invalid tar header", which does not say why); ""
// for anything else. A plain tar starts with its first member's name,
// which does not start with the control byte 0x1f followed by a lone
// UTF-8 continuation byte.
func compression(r io.ReaderAt) string {
	b := make([]byte, 6)
	n, _ := r.ReadAt(b, 0)
	b = b[:n]
	switch {
	case bytes.HasPrefix(b, gzipMagic):
		return "gzip"
	case bytes.HasPrefix(b, []byte("BZh")) && n >= 4 && b[3] >= '1' && b[3] <= '9':
		return "bzip2"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	}
	return ""
}

// gunzip starts reading the gzip stream r; its error names gzip once
// (gzip.ErrHeader says it already).
func gunzip(r io.Reader) (*gzip.Reader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil && !strings.HasPrefix(err.Error(), "gzip: ") {
		err = fmt.Errorf("gzip: %w", err)
	}
	return gz, err
}

// openTar opens the tar at p, gzip-compressed or not: that is decided by
// the content (the gzip magic), not the name, so a gzipped tar named
// .tar and a plain one named .tgz or .tar.gz both read; one compressed
// otherwise (bzip2, xz, zstd: compression) is an error naming it. The
// members that are not inputs are added to ignored.
func openTar(p string, ignored *atomic.Int64) (container, error) {
	f, _, err := openRegular(os.OpenFile, p)
	if err != nil {
		return nil, err
	}
	z := compression(f)
	if z != "" && z != "gzip" {
		f.Close()
		return nil, fmt.Errorf("tar: compressed with %s, which maeembed does not read: decompress it, or recompress it with gzip", z)
	}
	c := &tarContainer{f: f, ignored: ignored}
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if z == "gzip" {
		if c.gz, err = gunzip(br); err != nil {
			f.Close()
			return nil, err
		}
		r = c.gz
	}
	c.tr = tar.NewReader(r)
	return c, nil
}

func (c *tarContainer) next(want func(member string, row int64, key string) bool, readData bool, hd hold) (string, int64, []byte, func(), error) {
	for {
		h, err := c.tr.Next()
		if err == io.EOF {
			return "", -1, nil, nil, io.EOF
		}
		if err != nil {
			return "", -1, nil, nil, fmt.Errorf("tar: %w", err)
		}
		if !isTarImage(h) {
			if isTarIgnored(h) {
				c.ignored.Add(1)
			}
			continue
		}
		// The name as stored, as WebDataset keys are: not cleaned, so
		// "a//b.jpg" and "a/b.jpg" stay two ids and "../x.jpg" or "/x.jpg"
		// keep their form (outputs map every id inside their directory).
		// Only the "./" that tar puts before every member of an archived
		// "." is dropped.
		name := strings.TrimPrefix(h.Name, "./")
		if !want(name, -1, "") {
			// Skip the body here rather than in the next tr.Next, through
			// the same read as a wanted member: a body cut short is this
			// member's error whether it is read or skipped, so a rerun that
			// skips a member done (as an error) meets the end of a
			// truncated archive under the id the first run gave it.
			if err := c.body(name, h.Size, io.Discard); err != nil {
				return name, -1, nil, nil, err
			}
			continue
		}
		if !isTarRegular(h) {
			// A link or special file named like an image: one error row,
			// never a silent gap (links are not followed: their target may
			// be anywhere in the archive, or outside it).
			return name, -1, nil, nil, &memberError{fmt.Errorf("member is %s, not a regular file (links are not followed)", tarType(h))}
		}
		if !readData {
			// A listing (a dry run) reads past the body too, so it meets
			// a cut-short archive under the id the run would.
			if err := c.body(name, h.Size, io.Discard); err != nil {
				return name, -1, nil, nil, err
			}
			return name, -1, nil, nil, nil
		}
		if h.Size > int64(maxMemberBytes) {
			// Skippable: report it for this member and keep going.
			return name, -1, nil, nil, &memberError{fmt.Errorf("member is %w", overLimit(h.Size))}
		}
		// Its size from the budget before a byte is read; one larger than
		// the whole budget is its error item (the tar reader skips it).
		release, err := hd.take(h.Size)
		if err != nil {
			return name, -1, nil, nil, &memberError{err}
		}
		// Grow with what actually arrives: a header may claim a size the
		// archive does not hold.
		var b bytes.Buffer
		b.Grow(int(min(h.Size, 1<<20)) + bytes.MinRead)
		if err := c.body(name, h.Size, &b); err != nil {
			release()
			return name, -1, nil, nil, err
		}
		return name, -1, b.Bytes(), release, nil
	}
}

// body copies the size bytes of member name's body to w: the one read of
// a member's data, taken or skipped. An archive that ends inside the body
// is that member's error (the container cannot go on).
func (c *tarContainer) body(name string, size int64, w io.Writer) error {
	n, err := io.Copy(w, io.LimitReader(c.tr, size))
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("tar member %s: %w", name, err)
	}
	return nil
}

func (c *tarContainer) close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	return c.f.Close()
}

// tarMembers counts the image members of an uncompressed tar (whatever
// its name: openTar); the tar reader seeks over member data because
// *os.File is an io.Seeker. A compressed one is not counted, unless
// decompress: then a gzip stream is read through (bzip2, xz and zstd are
// an error naming the compression, as in openTar).
func tarMembers(p string, decompress bool) (int64, error) {
	f, _, err := openRegular(os.OpenFile, p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	switch z := compression(f); z {
	case "":
	case "gzip":
		if !decompress {
			return 0, fmt.Errorf("compressed: not counted")
		}
		gz, err := gunzip(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return 0, err
		}
		defer gz.Close()
		r = gz
	default:
		return 0, fmt.Errorf("tar: compressed with %s, which maeembed does not read", z)
	}
	tr := tar.NewReader(r)
	var n int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("tar: %w", err)
		}
		if isTarImage(h) {
			n++
		}
	}
}
