package sources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/internal/filekind"
)

// readRegular reads a whole regular file of at most maxMemberBytes through
// open (os.OpenFile, or an os.Root's, which keeps the path inside a
// directory), taking its size from h first. Anything else
// is refused with an error naming what it is: a FIFO would block forever,
// /dev/zero never ends, /proc and /sys files lie about their size (and
// tell secrets). The file is opened non-blocking so that a FIFO is seen,
// not waited on. release gives the hold back (nil on error).
func readRegular(open func(name string, flag int, perm fs.FileMode) (*os.File, error), name string, h hold) (data []byte, release func(), err error) {
	f, fi, err := openRegular(open, name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi.Size() > int64(maxMemberBytes) {
		return nil, nil, overLimit(fi.Size())
	}
	if release, err = h.take(fi.Size()); err != nil {
		return nil, nil, err
	}
	// The size is a hint (the file may grow): read at most one byte more
	// than the limit to tell.
	var b bytes.Buffer
	b.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(f, int64(maxMemberBytes)+1)); err != nil {
		release()
		return nil, nil, err
	}
	data = b.Bytes()
	if len(data) > maxMemberBytes {
		release()
		return nil, nil, fmt.Errorf("more than the %s limit on one image (%s)", config.FormatSize(int64(maxMemberBytes)), fixedLimit)
	}
	return data, release, nil
}

// fixedLimit says that no option raises maxMemberBytes.
const fixedLimit = "a fixed limit, not an option"

// overLimit is the error of an image of n bytes, over maxMemberBytes,
// with both sizes in binary units (and n exact when the unit rounds it:
// 512.0 MiB over 512 MiB would read as no excess). The caller names the
// file, member or row.
func overLimit(n int64) error {
	size := config.FormatSize(n)
	if v, err := config.ParseSize(size); err != nil || v != n {
		size += fmt.Sprintf(" (%d bytes)", n)
	}
	return fmt.Errorf("%s, over the %s limit on one image (%s)", size, config.FormatSize(int64(maxMemberBytes)), fixedLimit)
}

// errNotRegular refuses a FIFO, device or socket named as an input: reading
// one may block for ever (a FIFO without writer) or never end (/dev/zero),
// and no drain or signal could end the run.
var errNotRegular = errors.New("not a regular file")

// errKernelFile refuses a /proc or /sys file named as an input.
var errKernelFile = errors.New("a kernel file (/proc, /sys), not an image")

// openRegular opens name for reading if it is a regular file (see
// readRegular), without blocking on a FIFO.
func openRegular(open func(name string, flag int, perm fs.FileMode) (*os.File, error), name string) (*os.File, os.FileInfo, error) {
	f, err := open(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w but %s", errNotRegular, filekind.Of(fi.Mode()))}
	case pseudoFS(f):
		err = &fs.PathError{Op: "open", Path: name, Err: errKernelFile}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
