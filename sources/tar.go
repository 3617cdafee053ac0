package sources

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
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

type tarContainer struct {
	f  *os.File
	gz *gzip.Reader
	tr *tar.Reader
}

func openTar(p string) (container, error) {
	if err := checkRegular(p); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	c := &tarContainer{f: f}
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if l := strings.ToLower(p); strings.HasSuffix(l, ".gz") || strings.HasSuffix(l, ".tgz") {
		if c.gz, err = gzip.NewReader(r); err != nil {
			f.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = c.gz
	}
	c.tr = tar.NewReader(r)
	return c, nil
}

func (c *tarContainer) next(want func(member string, row int64, key string) bool, readData bool) (string, int64, []byte, error) {
	for {
		h, err := c.tr.Next()
		if err == io.EOF {
			return "", -1, nil, io.EOF
		}
		if err != nil {
			return "", -1, nil, fmt.Errorf("tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !imageExt[strings.ToLower(path.Ext(h.Name))] {
			continue
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if !want(name, -1, "") {
			continue // the tar reader skips the unread body
		}
		if !readData {
			return name, -1, nil, nil
		}
		if h.Size > int64(maxMemberBytes) {
			// Skippable: report it for this member and keep going.
			return name, -1, nil, &memberError{fmt.Errorf("member is %d bytes, limit %d", h.Size, maxMemberBytes)}
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(c.tr, data); err != nil {
			return name, -1, nil, fmt.Errorf("tar member %s: %w", name, err)
		}
		return name, -1, data, nil
	}
}

func (c *tarContainer) close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	return c.f.Close()
}

// tarMembers counts the image members of an uncompressed tar; the tar
// reader seeks over member data because *os.File is an io.Seeker.
func tarMembers(p string) (int64, error) {
	if l := strings.ToLower(p); strings.HasSuffix(l, ".gz") || strings.HasSuffix(l, ".tgz") {
		return 0, fmt.Errorf("compressed: not counted")
	}
	if err := checkRegular(p); err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var n int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if h.Typeflag == tar.TypeReg && imageExt[strings.ToLower(path.Ext(h.Name))] {
			n++
		}
	}
}
