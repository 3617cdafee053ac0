package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Reader reads the items of a batch run in deterministic order: entries
// sorted by path; tar members in archive order; Parquet rows in file order.
// It is not safe for concurrent use; one goroutine feeds the pipeline.
type Reader struct {
	opts    Options
	entries []entry
	next    int       // next entry to open
	cur     container // open tar/Parquet, or nil
	curE    entry
	index   int64 // global ordinal of the next item
	emitted int64
	skipped int64
	acks    ackCounter
}

// container iterates the members of a tar or the rows of a Parquet file.
// next calls want for each member in order (want assigns the global index
// and decides shard/resume) and returns the first wanted one, with its bytes
// when readData. An error with member "" and row < 0 concerns the container
// itself (e.g. a corrupt archive header).
type container interface {
	next(want func(member string, row int64, key string) bool, readData bool) (member string, row int64, data []byte, err error)
	close() error
}

// errEOF ends a container.
var errEOF = io.EOF

// memberError is a failure of one wanted member that leaves the container
// readable (oversized member, null Parquet image…).
type memberError struct{ err error }

func (e *memberError) Error() string { return e.err.Error() }
func (e *memberError) Unwrap() error { return e.err }

// Open expands inputs (files, directories, globs, list files, "-" for a
// list on standard input) and returns a Reader over them.
func Open(inputs []string, opts Options) (*Reader, error) {
	return OpenWith(inputs, os.Stdin, opts)
}

// OpenWith is Open with an explicit standard input.
func OpenWith(inputs []string, stdin io.Reader, opts Options) (*Reader, error) {
	if opts.Shard.Count > 1 && (opts.Shard.Index < 0 || opts.Shard.Index >= opts.Shard.Count) {
		return nil, fmt.Errorf("shard %d/%d out of range", opts.Shard.Index, opts.Shard.Count)
	}
	if opts.ImageColumn == "" {
		opts.ImageColumn = "image"
	}
	if opts.ParquetBatch <= 0 {
		opts.ParquetBatch = 32
	}
	entries, err := expand(inputs, stdin, opts.Extensions)
	if err != nil {
		return nil, err
	}
	return &Reader{opts: opts, entries: entries}, nil
}

// Files is the number of entries found (images, tars and Parquet files) and
// whether that is exactly the number of items of the unsharded run (no
// containers), for progress bars.
func (r *Reader) Files() (n int, exact bool) {
	exact = true
	for _, e := range r.entries {
		if e.kind != kindFile {
			exact = false
		}
	}
	return len(r.entries), exact
}

// Total counts the items of this shard (before resume skips) for a progress
// bar: files count one, Parquet files their row count from the footer,
// uncompressed tars their image members (headers only, data is seeked
// over). exact is false when a compressed or unreadable container could not
// be counted cheaply.
func (r *Reader) Total() (n int64, exact bool) {
	exact = true
	for _, e := range r.entries {
		switch e.kind {
		case kindFile:
			n++
		case kindParquet:
			rows, err := parquetRows(e.path)
			if err != nil {
				exact = false
				continue
			}
			n += rows
		case kindTar:
			m, err := tarMembers(e.path)
			if err != nil {
				exact = false
				continue
			}
			n += m
		}
	}
	if s := r.opts.Shard; s.Count > 1 {
		n = (n - int64(s.Index) + int64(s.Count) - 1) / int64(s.Count)
		if n < 0 {
			n = 0
		}
	}
	return n, exact
}

// Stats returns counters so far.
func (r *Reader) Stats() Stats {
	r.acks.mu.Lock()
	defer r.acks.mu.Unlock()
	return Stats{Seen: r.index, Emitted: r.emitted, Skipped: r.skipped, Acked: r.acks.acked, Failed: r.acks.failed}
}

// ReadError is set as Item.Err when a listed item exists in the sequence
// but its bytes could not be read; it should become an error row
// (stage "read") like a decode failure.
type ReadError struct {
	Path string
	Err  error
}

func (e *ReadError) Error() string { return "read " + e.Path + ": " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// wanted decides, for the item with the next global index, whether this
// shard emits it; it advances the index either way.
func (r *Reader) wanted(id string) bool {
	i := r.index
	r.index++
	if !r.opts.Shard.has(i) {
		return false
	}
	if r.opts.Done != nil && r.opts.Done(id) {
		r.skipped++
		return false
	}
	return true
}

// Next returns the next item of this shard that is not done yet, or io.EOF.
// An item whose bytes could not be read has Err set (*ReadError) and nil Data.
func (r *Reader) Next(ctx context.Context) (Item, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Item{}, err
		}
		if r.cur != nil {
			it, ok, err := r.nextMember()
			if err != nil || ok {
				return it, err
			}
			continue
		}
		if r.next >= len(r.entries) {
			return Item{}, io.EOF
		}
		e := r.entries[r.next]
		r.next++
		switch e.kind {
		case kindFile:
			idx := r.index
			if !r.wanted(e.id) {
				continue
			}
			it := Item{ID: e.id, Pos: Position{Index: idx, Path: e.path, Row: -1}}
			if !r.opts.NoData {
				data, err := readRegular(e.path)
				if err != nil {
					it.Err = &ReadError{Path: e.path, Err: err}
				}
				it.Data = data
			}
			return r.emit(it), nil
		case kindTar, kindParquet:
			var c container
			var err error
			if e.kind == kindTar {
				c, err = openTar(e.path)
			} else {
				c, err = openParquet(e.path, r.opts)
			}
			if err != nil {
				// An unreadable container is one error item under its own id.
				if it, ok := r.containerError(e, err); ok {
					return it, nil
				}
				continue
			}
			r.cur, r.curE = c, e
		}
	}
}

// nextMember advances the open container. ok is false when it is exhausted.
func (r *Reader) nextMember() (it Item, ok bool, err error) {
	e := r.curE
	var idx int64
	var id string
	want := func(member string, row int64, key string) bool {
		idx = r.index
		id = memberID(e, member, row, key)
		return r.wanted(id)
	}
	member, row, data, err := r.cur.next(want, !r.opts.NoData)
	if err == io.EOF {
		cerr := r.cur.close()
		r.cur = nil
		if cerr != nil {
			return Item{}, false, fmt.Errorf("close %s: %w", e.path, cerr)
		}
		return Item{}, false, nil
	}
	var me *memberError
	if errors.As(err, &me) {
		pos := Position{Index: idx, Path: e.path, Member: member, Row: row}
		if id == "" { // failed before want: a row whose id could not be read
			idx = r.index
			if !r.wanted(memberID(e, member, row, "")) {
				return Item{}, false, nil // not ours: keep reading
			}
			id, pos.Index = memberID(e, member, row, ""), idx
		}
		return r.emit(Item{ID: id, Pos: pos, Err: &ReadError{Path: pos.String(), Err: me.err}}), true, nil
	}
	if err != nil {
		// A corrupt archive ends that archive.
		r.cur.close()
		r.cur = nil
		if member == "" && row < 0 {
			// Not attributable to a member: one error item for the container.
			it, ok := r.containerError(e, err)
			return it, ok, nil
		}
		pos := Position{Index: idx, Path: e.path, Member: member, Row: row}
		return r.emit(Item{ID: id, Pos: pos, Err: &ReadError{Path: pos.String(), Err: err}}), true, nil
	}
	return r.emit(Item{ID: id, Pos: Position{Index: idx, Path: e.path, Member: member, Row: row}, Data: data}), true, nil
}

// containerError is the error item of a tar or Parquet file that could not
// be opened or read, under the file's own id; ok is false when this shard
// (or resume) does not take it.
func (r *Reader) containerError(e entry, err error) (Item, bool) {
	idx := r.index
	if !r.wanted(e.id) {
		return Item{}, false
	}
	return r.emit(Item{ID: e.id, Pos: Position{Index: idx, Path: e.path, Row: -1}, Err: &ReadError{Path: e.path, Err: err}}), true
}

func memberID(e entry, member string, row int64, key string) string {
	if key != "" {
		return key
	}
	if member != "" {
		return e.id + "/" + member
	}
	return e.id + "/" + fmt.Sprint(row)
}

func (r *Reader) emit(it Item) Item {
	r.emitted++
	return r.acks.withAck(it, r.opts.OnAck)
}

// Close closes any open container.
func (r *Reader) Close() error {
	if r.cur != nil {
		err := r.cur.close()
		r.cur = nil
		return err
	}
	return nil
}

// errNotRegular refuses a FIFO, device or socket named as an input: reading
// one may block for ever (a FIFO without writer) or never end (/dev/zero),
// and no drain or signal could end the run.
var errNotRegular = errors.New("not a regular file (a FIFO, device or socket): refused as an input")

// checkRegular fails unless p is a regular file (symlinks followed).
func checkRegular(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w", p, errNotRegular)
	}
	return nil
}

// readRegular reads the regular file p. It opens without blocking and
// checks the opened file itself, so a FIFO swapped in after a check is
// refused too.
func readRegular(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", p, errNotRegular)
	}
	// Sized from the file, as os.ReadFile does: io.ReadAll would grow its
	// buffer from 512 bytes, copying a large image a dozen times.
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return data, err
		}
		if len(data) == cap(data) { // the file grew meanwhile
			data = append(data, 0)[:len(data)]
		}
	}
}
