package sources

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/metadata"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/apache/arrow/go/v17/parquet/schema"
)

// ImageColumns are the names under which Parquet datasets keep their images,
// tried in this order when Options.ImageColumn is empty: Hugging Face
// `datasets` ("image", a struct{bytes, path}), image downloaders such as
// img2dataset ("jpg", "png", "webp" by output format) and others' raw-bytes
// columns. Only a column of a usable type counts (binary, or a struct with
// a binary "bytes" field).
var ImageColumns = []string{"image", "img", "jpg", "jpeg", "png", "webp", "image_bytes", "img_bytes"}

// IDColumns are the id column names tried when Options.IDColumn is empty:
// WebDataset keys ("__key__"), image downloaders ("key"), then "id" and
// "image_id". Only a string or integer column counts; its values must be
// unique across the run (they are the ids).
var IDColumns = []string{"__key__", "key", "id", "image_id"}

// errNoImageColumn: the file has none of the image columns. Found by a walk,
// such a file is a dataset's metadata, not an input.
var errNoImageColumn = errors.New("no image column")

// parquetContainer streams the rows of a Parquet file, ParquetBatch rows at
// a time, reading only the image (and id) columns. It reads the column
// chunks itself (file.RecordReader per leaf), in this goroutine: pqarrow
// decodes struct children in goroutines of its own, where a panic on a
// corrupt page (bad snappy input, a nil page header) cannot be recovered
// and ends the process. A batch that fails costs the rows of its row group
// from there on, each an error row, never the file and never silently.
type parquetContainer struct {
	path string
	rdr  *file.Reader

	img     leaf  // the binary column, or the struct's "bytes"
	inStruc bool  // img is a struct field: the struct itself may be null
	imgPath *leaf // the struct's "path", if any
	id      *leaf // the id column, if any
	idCol   string
	noData  bool // a listing (Options.NoData): only the id column is read
	batch   int  // most rows read at a time (Options.ParquetBatch)
	rows    int  // rows the next batch reads (see batchBytes)

	rg       int      // next row group to open
	rgEnd    int64    // file row after the open row group
	broken   error    // why the open row group stopped early
	ids      *leaf    // the broken row group's id column, read on its own (brokenKey)
	idsRow   int64    // file row of ids' current batch's row 0
	idsN     int      // rows in ids' current batch
	idsErr   error    // why the broken row group's ids cannot be read
	perPage  int64    // a row's pages, compressed and decompressed, in the open row group (footer)
	perValue int64    // a row's image value (the footer's uncompressed size)
	cur      *pqBatch // the current batch's image values
	batchErr error    // why the current batch's rows cannot be kept
	n, i     int      // rows in the current batch, next one
	row      int64    // file row of the batch's row 0
	nextRow  int64    // file row after the last one read or failed

	meter    *allocMeter
	rootDir  string   // where image paths may point (absolute)
	rootSet  bool     // rootDir is Options.ImageRoot, not the file's directory
	root     *os.Root // opened on first use
	realRoot string   // realRootDir's answer, once realDone
	realDone bool
	pool     sync.Pool // the record readers' scratch buffers
}

// leaf is one column chunk being read, and its current batch. It is read
// through a file.RecordReader, which stops at the end of what a corrupt
// page holds (the column chunk reader's ReadBatch can spin for ever on
// definition levels that run out).
type leaf struct {
	col      int   // leaf index in the file schema
	maxDef   int16 // definition level of a present value
	ownDef   int16 // definition level at which the leaf's parent is present
	unsigned bool  // an integer column of an unsigned logical type
	phys     parquet.Type
	rr       file.RecordReader // the open row group's; nil between row groups
	chunks   []arrow.Array     // the current batch's binary values (released on the next)
	bytes    [][]byte          // row → value, aliasing chunks; nil when null
	ints     []int64           // row → value (integer columns)
	present  []bool            // row → the value is not null
	parentOK []bool            // row → the parent (struct) is present
}

// recovered turns a panic inside the Parquet reader (corrupt pages can
// panic it: bad snappy input, a nil page header) into *err: the budget's
// refusal as it is, any other as a crashError in where() (see
// crashError; nil where the callers name the place). where is called only
// after a panic, so that a read that does not fail formats nothing.
// Defer it directly (recover works only there).
func recovered(where func() string, err *error) {
	if p := recover(); p != nil {
		if r, ok := p.(refused); ok { // the budget's answer, not a failure
			*err = r.err
			return
		}
		e := crashError{p: p}
		if where != nil {
			e.where = where()
		}
		*err = e
	}
}

// crashError is the error of a panic of the Parquet reader: what it most
// likely means (corrupt data: a nil or garbled page header, bad snappy
// input), with the panic's own words, in where (the file, row group and
// column: groupAt; "" where the callers name them).
type crashError struct {
	where string
	p     any
}

func (e crashError) Error() string {
	if e.where == "" {
		return fmt.Sprintf("corrupt Parquet data (the reader crashed: %v)", e.p)
	}
	return fmt.Sprintf("corrupt Parquet data in %s (the reader crashed: %v)", e.where, e.p)
}

// refused is the panic of a reader allocation the memory budget refused
// (or whose wait was aborted), out of the Parquet reader's call stack.
type refused struct{ err error }

// openParquetFile opens p and reads its footer, with m seeing the
// reader's allocations; fi is the file as it was opened. The file is
// closed on any failure (file.OpenParquetFile keeps it open when the
// footer is corrupt). A footer whose row counts are absurd is refused,
// since the rows of a row group that cannot be read become one error row
// each: more than 8 rows per byte of file, which no dataset of images has.
// It is the only place a Parquet input's footer is parsed, once per run
// (Reader.footer) unless the file changed meanwhile.
func openParquetFile(p string, m *allocMeter) (rdr *file.Reader, fi os.FileInfo, err error) {
	f, fi, err := openRegular(os.OpenFile, p)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	defer recovered(nil, &err)
	if footerParsed != nil {
		footerParsed(p)
	}
	rdr, err = file.NewParquetReader(f, file.WithReadProps(readProps(m)))
	if err != nil {
		return nil, nil, err
	}
	md := rdr.MetaData()
	most := 8*fi.Size() + 1024
	sum := int64(0)
	for g := 0; g < rdr.NumRowGroups(); g++ {
		n := md.RowGroup(g).NumRows()
		if n < 0 || n > most {
			return nil, nil, fmt.Errorf("footer says row group %d has %d rows: impossible in %d bytes", g, n, fi.Size())
		}
		sum += n
	}
	if sum != rdr.NumRows() || sum > most {
		return nil, nil, fmt.Errorf("footer says %d rows, its row groups %d: corrupt", rdr.NumRows(), sum)
	}
	return rdr, fi, nil
}

// footerParsed, when set (by tests), is called with the path of each
// Parquet footer about to be parsed.
var footerParsed func(path string)

// readProps are the reader's properties, with m seeing its allocations:
// the column chunks are streamed (unbuffered, the reader loads a whole
// chunk: all its rows' images, or whatever size a corrupt footer claims).
func readProps(m *allocMeter) *parquet.ReaderProperties {
	props := parquet.NewReaderProperties(pageAllocator{memory.DefaultAllocator, m, true})
	props.BufferedStreamEnabled, props.BufferSize = true, 64<<10
	return props
}

// pqFooter is what the footer of a Parquet input says, read once per run
// (Reader.footer): the checks of the columns before the run, the count of
// its rows and its read all take it from here.
type pqFooter struct {
	// err is why the file could not be opened or its footer read, as the
	// read reports it (the rest but size and mod is unset).
	err    error
	schema *arrow.Schema  // the columns, as Arrow's types
	pq     *schema.Schema // the columns, as the footer's leaves
	rows   int64
	// size and mod are the file's when its footer was read (or failed to
	// be; mod is zero when the file could not even be found): a read that
	// finds the file otherwise (rewritten since) parses its footer again.
	size int64
	mod  time.Time
	// md is the footer itself, kept for the read (which takes it: nil
	// after) while the footers kept stay under maxKeptFooters; kept is
	// its estimated bytes (keptBytes), counted while md is kept.
	md   *metadata.FileMetaData
	kept int64
}

// maxKeptFooters bounds the bytes of the parsed footers (keptBytes) a
// Reader keeps between their first read and the read of their files.
// Past it a file's footer is parsed again when the file is read: once
// more per file, rather than memory without bound for runs over many
// thousands of files with large footers.
var maxKeptFooters int64 = 32 << 20

// chunkBytes is about what one column chunk of a row group costs parsed
// (its Thrift structs, statistics and Arrow's wrappers), measured with
// Arrow v17: a footer of 3000 row groups of 2 columns, 449 KB in its
// file, holds 15.8 MB parsed.
const chunkBytes = 2600

// keptBytes estimates the memory md holds parsed: its size in the file
// and, far more for footers of many row groups, each column chunk's.
func keptBytes(md *metadata.FileMetaData) int64 {
	return int64(md.Size()) + int64(len(md.RowGroups))*int64(md.Schema.NumColumns())*chunkBytes
}

// changed tells whether the file p is no longer the one ft was read
// from: its size or time of change differ, or it could not be found then
// or now.
func changed(p string, ft *pqFooter) bool {
	fi, err := os.Stat(p)
	return err != nil || ft.mod.IsZero() || fi.Size() != ft.size || !fi.ModTime().Equal(ft.mod)
}

// readFooter reads the footer of the Parquet file p (pqFooter). Its
// schemas are those of like, when like's are the same (the shards of one
// dataset then share one copy).
func readFooter(p string, like *pqFooter) *pqFooter {
	rdr, fi, err := openParquetFile(p, &allocMeter{})
	if err != nil {
		ft := &pqFooter{err: parquetError(err)}
		if fi, err := os.Stat(p); err == nil {
			ft.size, ft.mod = fi.Size(), fi.ModTime()
		}
		return ft
	}
	defer rdr.Close()
	return footerOf(rdr, fi, like)
}

// parquetError is err of opening a Parquet file or reading its footer,
// said to be about Parquet once.
func parquetError(err error) error {
	if strings.HasPrefix(err.Error(), "parquet: ") {
		return err // Arrow's reader names the format already
	}
	return fmt.Errorf("parquet: %w", err)
}

// footerOf is what the footer of rdr, opened as fi, says (readFooter).
func footerOf(rdr *file.Reader, fi os.FileInfo, like *pqFooter) (ft *pqFooter) {
	var err error
	defer func() {
		if err != nil {
			ft = &pqFooter{err: err, size: fi.Size(), mod: fi.ModTime()}
		}
	}()
	defer recovered(nil, &err)
	md := rdr.MetaData()
	as, err := pqarrow.FromParquet(md.Schema, nil, md.KeyValueMetadata())
	if err != nil {
		err = fmt.Errorf("parquet: %w", err)
		return nil
	}
	ft = &pqFooter{schema: as, pq: md.Schema, rows: rdr.NumRows(), size: fi.Size(), mod: fi.ModTime(), md: md}
	if like != nil && like.err == nil && like.schema.Equal(as) && like.pq.Root().Equals(md.Schema.Root()) {
		ft.schema, ft.pq = like.schema, like.pq
	}
	return ft
}

// footer is the footer of the Parquet input p, read on its first use in
// this Reader.
func (r *Reader) footer(p string) *pqFooter {
	r.footersMu.Lock()
	defer r.footersMu.Unlock()
	return r.footerLocked(p)
}

func (r *Reader) footerLocked(p string) *pqFooter {
	if ft, ok := r.footers[p]; ok {
		return ft
	}
	if r.footers == nil {
		r.footers = map[string]*pqFooter{}
	}
	ft := readFooter(p, r.lastFooter)
	r.keepLocked(ft)
	if ft.err == nil {
		r.lastFooter = ft
	}
	r.footers[p] = ft
	return ft
}

// keepLocked keeps ft's md for the read while the footers kept stay
// under maxKeptFooters, and drops it past them.
func (r *Reader) keepLocked(ft *pqFooter) {
	ft.kept = 0
	if ft.md == nil {
		return
	}
	if n := keptBytes(ft.md); r.footersKept+n <= maxKeptFooters {
		r.footersKept += n
		ft.kept = n
	} else {
		ft.md = nil
	}
}

// refreshFooter makes ft, the footer of p parsed again for its read (the
// file changed), the one the Reader holds: the column checks and choices
// after the read see the file as it is now. The Reader does not keep its
// md (the read has it), and keeps the schemas it had when they are the
// same (shared with other files': a footer past maxKeptFooters is parsed
// again though unchanged).
func (r *Reader) refreshFooter(p string, ft pqFooter) {
	r.footersMu.Lock()
	defer r.footersMu.Unlock()
	if old, ok := r.footers[p]; ok {
		if old.md != nil {
			r.footersKept -= old.kept
		}
		if old.err == nil && ft.err == nil && old.schema.Equal(ft.schema) && old.pq.Root().Equals(ft.pq.Root()) {
			ft.schema, ft.pq = old.schema, old.pq
		}
	}
	ft.md, ft.kept = nil, 0
	r.footers[p] = &ft
}

// takeFooter is footer for the read of p, which takes the footer itself
// (md) from the Reader: the Reader keeps what the column choices and
// counts need.
func (r *Reader) takeFooter(p string) pqFooter {
	r.footersMu.Lock()
	defer r.footersMu.Unlock()
	ft := r.footerLocked(p)
	taken := *ft
	if ft.md != nil {
		r.footersKept -= ft.kept
		ft.md, ft.kept = nil, 0
	}
	return taken
}

// openRows opens p to read its rows with ft, its footer read earlier in
// the run; it parses the footer again (and *ft becomes the new one, again
// reports true) when ft no longer holds it (maxKeptFooters) or the file
// changed since (its size or time of change differ). m sees the reader's
// allocations.
func openRows(p string, ft *pqFooter, m *allocMeter) (rdr *file.Reader, again bool, err error) {
	if ft.md != nil {
		f, fi, err := openRegular(os.OpenFile, p)
		if err != nil {
			return nil, false, parquetError(err)
		}
		if fi.Size() == ft.size && fi.ModTime().Equal(ft.mod) {
			rdr, err := file.NewParquetReader(f, file.WithReadProps(readProps(m)), file.WithMetadata(ft.md))
			if err != nil {
				f.Close()
				return nil, false, parquetError(err)
			}
			return rdr, false, nil
		}
		f.Close()
	}
	rdr, fi, err := openParquetFile(p, m)
	if err != nil {
		*ft = pqFooter{err: parquetError(err)}
		if fi, serr := os.Stat(p); serr == nil {
			ft.size, ft.mod = fi.Size(), fi.ModTime()
		}
		return nil, true, ft.err
	}
	if *ft = *footerOf(rdr, fi, nil); ft.err != nil {
		rdr.Close()
		return nil, true, ft.err
	}
	return rdr, true, nil
}

// pageAllocator refuses a buffer larger than any page of images within the
// member size limit could need: a corrupt page header can claim gigabytes.
// The panic is recovered into an error for the rows of that page. It shows
// each allocation to the meter first.
type pageAllocator struct {
	memory.Allocator
	m    *allocMeter
	page bool // the page reader's (the file's allocator), not the values'
}

// allocMeter sees the reader's allocations before they are made, so that
// reading waits for the memory a page really takes (or is refused it),
// which the footer's average cannot tell: writers put many rows of large
// images into one page, and a row is read with its whole page.
type allocMeter struct {
	grow    func() // nil when not reading under a budget
	pageMax int64  // the largest page buffer of the open column readers
	values  int64  // what the values' buffers grew by in this batch
}

// live estimates what the reader holds: the values, and the largest page
// with its compressed copy (a page's buffers go with the next page).
func (m *allocMeter) live() int64 { return 2*m.pageMax + m.values }

func (a pageAllocator) see(n int) {
	if a.m == nil {
		return
	}
	if a.page {
		a.m.pageMax = max(a.m.pageMax, int64(n))
	} else {
		a.m.values += int64(n)
	}
	if a.m.grow != nil {
		a.m.grow()
	}
}

// pageLimit: a row holds at most maxMemberBytes (a larger one is an error
// row), and a batch of smaller rows about batchBytes; the reader's buffers
// double as they grow.
func pageLimit() int { return 2*maxMemberBytes + 2*batchBytes }

func (a pageAllocator) Allocate(n int) []byte {
	if n > pageLimit() {
		panic(fmt.Sprintf("a page buffer of %d bytes, limit %d", n, pageLimit()))
	}
	a.see(n)
	return a.Allocator.Allocate(n)
}

func (a pageAllocator) Reallocate(n int, b []byte) []byte {
	if n > pageLimit() {
		panic(fmt.Sprintf("a page buffer of %d bytes, limit %d", n, pageLimit()))
	}
	if n > cap(b) {
		a.see(n - cap(b))
	}
	return a.Allocator.Reallocate(n, b)
}

// openParquet opens the Parquet file p to read its rows, with its footer
// from the start of the run (Reader.takeFooter), or as it is now if the
// file changed since: its error when the footer could not be read, or that
// of the columns it has (chooseColumns).
func (r *Reader) openParquet(p string) (c container, err error) {
	ft := r.takeFooter(p)
	var rdr *file.Reader
	defer func() {
		if err != nil && rdr != nil {
			rdr.Close()
		}
	}()
	defer recovered(nil, &err) // runs first: a panic closes rdr too
	if ft.err != nil && !changed(p, &ft) {
		return nil, ft.err
	}
	meter := &allocMeter{}
	var again bool
	rdr, again, err = openRows(p, &ft, meter)
	if again {
		r.refreshFooter(p, ft)
	}
	if err != nil {
		return nil, err
	}
	pc, err := chooseColumns(p, &ft, r.opts)
	if err != nil {
		return nil, err
	}
	pc.rdr, pc.meter = rdr, meter
	pc.pool.New = func() any { return memory.NewResizableBuffer(pageAllocator{memory.DefaultAllocator, meter, false}) }
	return pc, nil
}

// chooseColumns is the container of the Parquet file p whose footer is ft,
// before it is opened: the image (and id) columns it reads, as opts
// choose them, or the error of a file without them (errNoImageColumn when
// no column can be the image, a column opts name that it lacks or that is
// of another type).
func chooseColumns(p string, ft *pqFooter, opts Options) (pc *parquetContainer, err error) {
	as := ft.schema
	img, err := pickColumn(as, opts.ImageColumn, ImageColumns, isImageType, "image", "--image-column")
	if err != nil {
		return nil, err
	}
	id := ""
	if opts.IDColumn != "-" {
		if id, err = pickColumn(as, opts.IDColumn, IDColumns, isIDType, "id", "--id-column"); err != nil && opts.IDColumn != "" {
			return nil, err
		} else if wrong := mistyped(as, IDColumns, isIDType, "id"); err != nil && len(wrong) > 0 {
			// No id column, but one named like the ids whose type is not
			// one (a float, a list): the rows get their numbers, as
			// without any such column, but not silently.
			slog.Warn("parquet: ids are row numbers (FILE/ROW): "+strings.Join(wrong, "; ")+" (strings or integers); --id-column - takes row numbers without this warning", "file", p)
		}
	}
	pc = &parquetContainer{path: p, idCol: id, noData: opts.NoData, batch: opts.ParquetBatch}
	field := func(name string) arrow.Field { f, _ := as.FieldsByName(name); return f[0] }
	find := func(path string, t arrow.DataType) (*leaf, error) {
		i := ft.pq.ColumnIndexByName(path)
		if i < 0 {
			return nil, fmt.Errorf("parquet: no leaf column %q", path)
		}
		d := ft.pq.Column(i)
		if d.MaxRepetitionLevel() > 0 {
			return nil, fmt.Errorf("parquet: column %q is repeated", path)
		}
		l := &leaf{col: i, maxDef: d.MaxDefinitionLevel(), ownDef: d.MaxDefinitionLevel(), phys: d.PhysicalType()}
		if d.SchemaNode().RepetitionType() == parquet.Repetitions.Optional {
			l.ownDef--
		}
		switch t.ID() {
		case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
			l.unsigned = true
		}
		return l, nil
	}
	if st, ok := field(img).Type.(*arrow.StructType); ok {
		bf, _ := st.FieldByName("bytes")
		l, err := find(img+".bytes", bf.Type)
		if err != nil {
			return nil, err
		}
		pc.img, pc.inStruc = *l, true
		if pf, ok := st.FieldByName("path"); ok && pf.Type.ID() == arrow.STRING {
			if pc.imgPath, err = find(img+".path", pf.Type); err != nil {
				return nil, err
			}
		}
	} else {
		l, err := find(img, field(img).Type)
		if err != nil {
			return nil, err
		}
		pc.img = *l
	}
	if id != "" {
		if pc.id, err = find(id, field(id).Type); err != nil {
			return nil, err
		}
	}
	rootDir := opts.ImageRoot
	if rootDir == "" {
		rootDir = filepath.Dir(p)
	}
	pc.rootSet = opts.ImageRoot != ""
	if pc.rootDir, err = filepath.Abs(rootDir); err != nil {
		return nil, fmt.Errorf("image root: %w", err)
	}
	return pc, nil
}

// pickColumn is the column named by want, or else the first of known the
// schema has with a type ok accepts; "" (and an error) when there is none.
func pickColumn(s *arrow.Schema, want string, known []string, ok func(arrow.DataType) bool, what, flag string) (string, error) {
	var names []string
	for _, f := range s.Fields() {
		names = append(names, f.Name)
	}
	if want != "" {
		fs, found := s.FieldsByName(want)
		if !found {
			return "", fmt.Errorf("parquet: no column %q (columns: %s; set %s)", want, strings.Join(names, ", "), flag)
		}
		if !ok(fs[0].Type) {
			return "", fmt.Errorf("parquet: %s column %q is %s, which cannot hold the %s", what, want, fs[0].Type, what)
		}
		return want, nil
	}
	for _, k := range known {
		if fs, found := s.FieldsByName(k); found && ok(fs[0].Type) {
			return k, nil
		}
	}
	var wrong string
	for _, w := range mistyped(s, known, ok, what) {
		wrong += "; " + w
	}
	return "", fmt.Errorf("parquet: %w: none of %s among the columns %s (set %s)%s",
		errNoImageColumn, strings.Join(known, ", "), strings.Join(names, ", "), flag, wrong)
}

// mistyped describes the columns of s named as known whose type ok
// refuses: "column %q is TYPE, which cannot hold the WHAT".
func mistyped(s *arrow.Schema, known []string, ok func(arrow.DataType) bool, what string) []string {
	var out []string
	for _, k := range known {
		if fs, found := s.FieldsByName(k); found && !ok(fs[0].Type) {
			out = append(out, fmt.Sprintf("column %q is %s, which cannot hold the %s", k, fs[0].Type, what))
		}
	}
	return out
}

func isBinary(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW:
		return true
	}
	return false
}

// isImageType: binary, or a struct with a binary "bytes" field.
func isImageType(t arrow.DataType) bool {
	if isBinary(t) {
		return true
	}
	st, ok := t.(*arrow.StructType)
	if !ok {
		return false
	}
	f, ok := st.FieldByName("bytes")
	return ok && isBinary(f.Type)
}

func isIDType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW,
		arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

// leaves are the columns read: the image (and its path) and the id, or
// for a listing only the id (none when ids are row numbers).
func (c *parquetContainer) leaves() []*leaf {
	if c.noData {
		if c.id == nil {
			return nil
		}
		return []*leaf{c.id}
	}
	ls := []*leaf{&c.img}
	if c.imgPath != nil {
		ls = append(ls, c.imgPath)
	}
	if c.id != nil {
		ls = append(ls, c.id)
	}
	return ls
}

func (c *parquetContainer) next(want func(member string, row int64, key string) bool, readData bool, h hold) (string, int64, []byte, func(), error) {
	for {
		switch {
		case c.i < c.n:
			// A row of the current batch.
		case c.broken != nil && c.nextRow < c.rgEnd:
			// The rest of a row group that could not be read: one error row
			// each, under its key read from the id column alone (small,
			// and often intact when the images are not: a page over the
			// budget, a damaged image page), else under the row id.
			row := c.nextRow
			c.nextRow++
			if want("", row, c.brokenKey(row)) {
				return "", row, nil, nil, &memberError{fmt.Errorf("row %d: %w", row, c.broken)}
			}
			continue
		case c.nextRow < c.rgEnd:
			if err := c.readBatch(h); err != nil {
				// A read stopped part-way (a corrupt page, the budget's
				// refusal) leaves the column readers in no known state:
				// the next row group gets new ones.
				c.broken = err
				c.dropReaders()
			}
			continue
		case c.rg < c.rdr.NumRowGroups():
			if err := c.openGroup(); err != nil {
				c.broken = err
			}
			continue
		default:
			return "", -1, nil, nil, errEOF
		}
		i := c.i
		c.i++
		row := c.row + int64(i)
		key := ""
		if c.id != nil {
			s, err := c.keyAt(c.id, i)
			if err != nil {
				return "", row, nil, nil, &memberError{fmt.Errorf("row %d: %w", row, err)}
			}
			key = s
		}
		if !want("", row, key) {
			continue
		}
		if !readData {
			return "", row, nil, nil, nil
		}
		if c.batchErr != nil {
			return "", row, nil, nil, &memberError{fmt.Errorf("row %d: %w", row, c.batchErr)}
		}
		data, release, err := c.imageAt(i, h)
		if err != nil {
			return "", row, nil, nil, &memberError{fmt.Errorf("row %d: %w", row, err)}
		}
		return "", row, data, release, nil
	}
}

// openGroup starts reading row group c.rg.
func (c *parquetContainer) openGroup() (err error) {
	g := c.rg
	c.rg++
	c.broken, c.n, c.i = nil, 0, 0
	c.dropIDs()
	c.rgEnd = c.nextRow
	defer func() {
		if _, crashed := err.(crashError); err != nil && !crashed { // a crash names the row group
			err = fmt.Errorf("parquet row group %d: %w", g, err)
		}
	}()
	defer recovered(func() string { return c.groupAt(g, "") }, &err)
	md := c.rdr.MetaData().RowGroup(g)
	c.rgEnd = c.nextRow + md.NumRows()
	// The footer's sizes of the column read (the images, or the ids of a
	// listing), shared out over the rows: the estimates the budget is
	// asked for before a batch is read.
	sized := &c.img
	if c.noData {
		sized = c.id
	}
	c.perPage, c.perValue = 0, 0
	if n := md.NumRows(); n > 0 && sized != nil {
		cc, err := md.ColumnChunk(sized.col)
		if err != nil {
			return err
		}
		unc := max(cc.TotalUncompressedSize(), 0)
		c.perPage = (max(cc.TotalCompressedSize(), 0) + unc + n - 1) / n
		c.perValue = (unc + n - 1) / n
	}
	rg := c.rdr.RowGroup(g)
	for _, l := range c.leaves() {
		pr, err := rg.GetColumnPageReader(l.col)
		if err != nil {
			return err
		}
		if l.rr == nil {
			d := c.rdr.MetaData().Schema.Column(l.col)
			var t arrow.DataType = arrow.PrimitiveTypes.Int64
			if d.PhysicalType() == parquet.Types.ByteArray {
				t = arrow.BinaryTypes.Binary
			}
			l.rr = file.NewRecordReader(d, file.LevelInfo{DefLevel: l.maxDef}, t, pageAllocator{memory.DefaultAllocator, c.meter, false}, &c.pool)
		}
		l.rr.SetPageReader(pr)
	}
	return nil
}

// readBatch reads the next rows of the open row group from every leaf.
// batchBytes bounds the image bytes of a batch: batches start at one row
// and double up to ParquetBatch while they stay under it, and halve when
// they pass it, so 32 rows of 200 MB are never read at once.
//
// With a budget (h), reading a batch first waits for the footer's estimate
// of what it will hold (batchCost); once read, the hold is set to what it
// does hold: the image values' buffers, and the page buffers the column
// reader keeps. The batch keeps it until the container and every item of
// the batch let go (pqBatch). Rows whose reading alone would take more
// than the whole budget are not read: the rest of the row group becomes
// error rows (rows cannot be skipped one by one).
var batchBytes = 64 << 20

// batchCost estimates, from the footer, what reading n rows of the open
// row group holds: their values (in a buffer that grows by doubling), and
// a page's compressed bytes and its decompressed copy, kept by the column
// reader (a page is one row of large images, or about 1 MiB of small ones).
func (c *parquetContainer) batchCost(n int) (pages, values int64) {
	for v := int64(n) * c.perValue; values < v; values = max(1, 2*values) {
	}
	return min(int64(n)*c.perPage, max(c.perPage, 2<<20)), values
}

func (c *parquetContainer) readBatch(h hold) (err error) {
	defer recovered(func() string { return c.groupAt(c.rg-1, "") }, &err)
	c.dropBatch()
	c.n, c.i, c.batchErr = 0, 0, nil
	c.rows = max(1, min(c.rows, c.batch))
	n := int(min(int64(c.rows), c.rgEnd-c.nextRow))
	pages, values := c.batchCost(n)
	reading, err := h.take(pages + values)
	for err != nil && n > 1 && !aborted(err) {
		n /= 2 // a smaller batch may fit
		c.rows = n
		pages, values = c.batchCost(n)
		reading, err = h.take(pages + values)
	}
	if err != nil {
		return fmt.Errorf("reading a row needs about %d MiB (the row group's average): %w", (pages+values+1<<20-1)>>20, err)
	}
	done := false
	defer func() {
		if !done {
			reading()
		}
	}()
	if h.b != nil {
		// Past the estimate, each allocation of the reader waits for its
		// memory first (the estimate is exchanged for a larger hold: only
		// this goroutine takes input memory); one the whole budget cannot
		// hold stops the read, and the rest of the row group is error rows.
		holding := pages + values
		// The page buffers stay with the column readers from batch to
		// batch (reused, not allocated again): only the values are new.
		c.meter.values = 0
		c.meter.grow = func() {
			used := c.meter.live()
			if used <= holding {
				return
			}
			reading()
			reading = func() {}
			r, err := h.take(used)
			if err != nil {
				panic(refused{fmt.Errorf("reading its row group from here on needs at least %d MiB (a page and its decompressed copy): %w", (used+1<<20-1)>>20, err)})
			}
			reading, holding = r, used
		}
		defer func() { c.meter.grow = nil }()
	}
	for _, l := range c.leaves() {
		if err := c.readLeaf(l, n); err != nil {
			return err
		}
	}
	c.n, c.row = n, c.nextRow
	c.nextRow += int64(n)
	size, held := 0, int64(0)
	for _, b := range c.img.bytes {
		size += len(b)
	}
	for _, a := range c.img.chunks {
		for _, buf := range a.Data().Buffers() {
			if buf != nil {
				held += int64(buf.Cap())
			}
		}
	}
	if c.nextRow == c.rgEnd {
		// The column readers keep the last page and its compressed copy:
		// let them go with the row group (as large as a row of big images).
		c.dropReaders()
		pages = 0
	} else if h.b != nil {
		pages = 2 * c.meter.pageMax // what they keep, measured
	}
	// The estimate's hold becomes the measured one: only this goroutine
	// takes input memory, so the exchange cannot be overtaken.
	done = true
	reading()
	keep, err := h.take(pages + held)
	if err != nil && n > 1 && !aborted(err) {
		c.rows = 1 // rows the footer's average misjudged: one at a time from now on
	}
	if err != nil {
		keep, c.batchErr = func() {}, err // the rows' error rows; aborted: the Reader sees ctx
	}
	c.cur = newBatch(c.img.chunks, keep)
	c.img.chunks = nil // c.cur releases them
	switch {
	case size > batchBytes:
		c.rows /= 2
	case 2*size <= batchBytes && n == c.rows:
		c.rows *= 2
	}
	return nil
}

// readLeaf reads the next n rows of l, its error naming the row group
// and column (and, for a crash of the reader, the file: corrupt data).
func (c *parquetContainer) readLeaf(l *leaf, n int) (err error) {
	col := func() string { return c.rdr.MetaData().Schema.Column(l.col).Path() }
	where := func() string { return c.groupAt(c.rg-1, col()) }
	defer recovered(where, &err)
	if err := l.read(n); err != nil {
		if errors.As(err, new(shortChunk)) {
			return fmt.Errorf("corrupt Parquet data in %s: %w", where(), err)
		}
		return fmt.Errorf("parquet row group %d, column %s: %w", c.rg-1, col(), err)
	}
	return nil
}

// shortChunk is a column chunk whose pages hold fewer rows than its row
// group (the footer) says: a damaged page header, or pages cut short.
type shortChunk struct{ got, want int }

func (e shortChunk) Error() string {
	return fmt.Sprintf("its pages end after %d of the %d rows read (a damaged page header, or pages cut short)", e.got, e.want)
}

// groupAt names column col (a dotted path, "" for every column) of row
// group g of the file, for a crashError.
func (c *parquetContainer) groupAt(g int, col string) string {
	where := fmt.Sprintf("%s row group %d", c.path, g)
	if col != "" {
		where += " column " + col
	}
	return where
}

// aborted: a budget's wait ended with the run, not a refusal of a size.
func aborted(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// pqBatch is the image values of one batch. Items alias them (no copy),
// so they stay until the container has moved on and every item of the
// batch released them; the last release frees them and gives their memory
// back to the budget.
type pqBatch struct {
	refs    atomic.Int64
	chunks  []arrow.Array
	release func()
}

func newBatch(chunks []arrow.Array, release func()) *pqBatch {
	b := &pqBatch{chunks: chunks, release: release}
	b.refs.Store(1) // the container's
	return b
}

// ref is one more holder's release, safe to call more than once.
func (b *pqBatch) ref() func() {
	b.refs.Add(1)
	var once sync.Once
	return func() { once.Do(b.unref) }
}

func (b *pqBatch) unref() {
	if b.refs.Add(-1) == 0 {
		for _, a := range b.chunks {
			a.Release()
		}
		b.release()
		b.chunks = nil // a release closure kept somewhere must not pin them
	}
}

// dropReaders releases the column readers of the open row group (openGroup
// makes new ones).
func (c *parquetContainer) dropReaders() {
	c.meter.pageMax = 0 // their page buffers go with them
	for _, l := range c.leaves() {
		if l.rr != nil {
			func() {
				defer func() { recover() }() // a reader left in a bad state
				l.rr.Release()
			}()
			l.rr = nil
		}
	}
}

// dropBatch lets go of the current batch (the container's reference).
func (c *parquetContainer) dropBatch() {
	if c.cur != nil {
		c.cur.unref()
		c.cur = nil
	}
}

// read reads the next n rows of l; byte values alias l.chunks until the
// next read.
func (l *leaf) read(n int) error {
	for _, a := range l.chunks {
		a.Release()
	}
	l.chunks = nil
	// The last batch's values belong to its items now (pqBatch): an alias
	// kept here would keep a large row alive through the next read,
	// outside the budget that no longer counts it.
	clear(l.bytes)
	l.bytes = l.bytes[:0]
	l.rr.Reset()
	if err := l.rr.Reserve(int64(n)); err != nil {
		return err
	}
	got := 0
	for got < n && l.rr.HasMore() {
		k, err := l.rr.ReadRecords(int64(n - got))
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		got += int(k)
	}
	if got != n {
		return shortChunk{got, n}
	}
	l.present = slices.Grow(l.present[:0], n)[:n]
	l.parentOK = slices.Grow(l.parentOK[:0], n)[:n]
	if l.maxDef == 0 {
		for i := range n {
			l.present[i], l.parentOK[i] = true, true
		}
	} else {
		defs := l.rr.DefLevels()[:l.rr.LevelsPos()]
		if len(defs) != n {
			return fmt.Errorf("%d definition levels for %d rows", len(defs), n)
		}
		for i, d := range defs {
			l.present[i], l.parentOK[i] = d == l.maxDef, d >= l.ownDef
		}
	}
	if br, ok := l.rr.(file.BinaryRecordReader); ok {
		l.chunks = br.GetBuilderChunks()
		l.bytes = slices.Grow(l.bytes[:0], n)[:0]
		for _, a := range l.chunks {
			b, ok := a.(*array.Binary)
			if !ok {
				return fmt.Errorf("read as %s, want binary", a.DataType())
			}
			for i := 0; i < b.Len(); i++ {
				l.bytes = append(l.bytes, b.Value(i))
			}
		}
		if len(l.bytes) != n {
			return fmt.Errorf("%d values for %d rows", len(l.bytes), n)
		}
		return nil
	}
	if l.rr.ValuesWritten() != n {
		return fmt.Errorf("%d values for %d rows", l.rr.ValuesWritten(), n)
	}
	raw := l.rr.Values()
	l.ints = slices.Grow(l.ints[:0], n)[:n]
	switch l.rr.Type() {
	case parquet.Types.Int64:
		if len(raw) < 8*n {
			return fmt.Errorf("%d bytes of values for %d rows", len(raw), n)
		}
		for i := range n {
			l.ints[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case parquet.Types.Int32:
		if len(raw) < 4*n {
			return fmt.Errorf("%d bytes of values for %d rows", len(raw), n)
		}
		for i := range n {
			v := binary.LittleEndian.Uint32(raw[4*i:])
			if l.unsigned {
				l.ints[i] = int64(v)
			} else {
				l.ints[i] = int64(int32(v))
			}
		}
	default:
		return fmt.Errorf("unsupported physical type %s", l.rr.Type())
	}
	return nil
}

// keyAt is the id value of row i of l's batch (c.id or c.ids).
func (c *parquetContainer) keyAt(l *leaf, i int) (string, error) {
	switch {
	case !l.present[i]:
		return "", fmt.Errorf("id column %q is null", c.idCol)
	case l.phys == parquet.Types.ByteArray:
		return string(l.bytes[i]), nil
	case l.unsigned:
		return strconv.FormatUint(uint64(l.ints[i]), 10), nil
	}
	return strconv.FormatInt(l.ints[i], 10), nil
}

// brokenKey is the key of row of the broken row group (c.broken), read
// from the id column alone with a reader of its own, in batches of up to
// 1024 ids from the row group's first row (a page of ids cannot be
// entered part-way): "" when there is no id column, or its value for the
// row cannot be read (a corrupt id page, a null), which leaves the row its
// row id (FILE/ROW). The ids are read outside the budget: a few bytes a
// row, where the images that broke the row group may be hundreds of MiB.
// A listing reads the id column alone, so it was the ids that broke the
// row group: they are not read again, outside the budget.
func (c *parquetContainer) brokenKey(row int64) (key string) {
	if c.id == nil || c.idsErr != nil || c.noData {
		return ""
	}
	var crash error
	defer func() {
		if crash != nil {
			c.dropIDs() // clears idsErr: set it after
			c.idsErr, key = crash, ""
		}
	}()
	defer recovered(func() string { return c.groupAt(c.rg-1, c.idCol) }, &crash)
	if c.ids == nil {
		g := c.rg - 1
		pr, err := c.rdr.RowGroup(g).GetColumnPageReader(c.id.col)
		if err != nil {
			c.idsErr = err
			return ""
		}
		d := c.rdr.MetaData().Schema.Column(c.id.col)
		var t arrow.DataType = arrow.PrimitiveTypes.Int64
		if d.PhysicalType() == parquet.Types.ByteArray {
			t = arrow.BinaryTypes.Binary
		}
		l := &leaf{col: c.id.col, maxDef: c.id.maxDef, ownDef: c.id.ownDef, unsigned: c.id.unsigned, phys: c.id.phys}
		l.rr = file.NewRecordReader(d, file.LevelInfo{DefLevel: l.maxDef}, t, pageAllocator{memory.DefaultAllocator, nil, false}, &c.pool)
		l.rr.SetPageReader(pr)
		c.ids, c.idsRow, c.idsN = l, c.rgEnd-c.rdr.MetaData().RowGroup(g).NumRows(), 0
	}
	for row >= c.idsRow+int64(c.idsN) {
		c.idsRow += int64(c.idsN)
		n := int(min(1024, c.rgEnd-c.idsRow))
		if n <= 0 {
			return ""
		}
		c.idsN = 0
		if err := readIDs(c.ids, n); err != nil {
			c.dropIDs() // clears idsErr: set it after
			c.idsErr = err
			return ""
		}
		c.idsN = n
	}
	if row < c.idsRow {
		return "" // before the ids read (rows are asked for in order)
	}
	k, err := c.keyAt(c.ids, int(row-c.idsRow))
	if err != nil {
		return ""
	}
	return k
}

// readIDs reads the next n ids of the broken row group (brokenKey); tests
// replace it to count the reads or make them fail.
var readIDs = (*leaf).read

// dropIDs releases the broken row group's id reader (brokenKey).
func (c *parquetContainer) dropIDs() {
	c.idsErr = nil
	if c.ids == nil {
		return
	}
	l := c.ids
	c.ids = nil
	// The meter's largest page may be one of its pages: it ran when the
	// row group's column readers held none (dropped after a failed read,
	// or not read yet after a failed open), and this runs before a new
	// row group's readers read any.
	c.meter.pageMax = 0
	defer func() { recover() }() // a reader left in a bad state
	for _, a := range l.chunks {
		a.Release()
	}
	if l.rr != nil {
		l.rr.Release()
	}
}

// imageAt is the image bytes of row i and their release: a binary column
// (aliasing the batch, see pqBatch), or the Hugging Face struct {bytes,
// path} where a null bytes with a path means the image is a file next to
// the dataset (read under h).
func (c *parquetContainer) imageAt(i int, h hold) ([]byte, func(), error) {
	l := &c.img
	if !c.inStruc && !l.present[i] || c.inStruc && !l.parentOK[i] {
		return nil, nil, fmt.Errorf("image is null")
	}
	if l.present[i] {
		b, err := imageValue(l.bytes[i])
		if err != nil {
			return nil, nil, err
		}
		return b, c.cur.ref(), nil
	}
	if c.imgPath != nil {
		if c.imgPath.present[i] && len(c.imgPath.bytes[i]) > 0 {
			p := string(c.imgPath.bytes[i])
			b, release, err := c.readPath(p, h)
			if err != nil {
				return nil, nil, fmt.Errorf("image bytes null, path %q: %w", p, err)
			}
			return b, release, nil
		}
	}
	return nil, nil, fmt.Errorf("image struct has neither bytes nor path")
}

// readPath reads the file an image struct's path names. The path comes from
// the file, which may be untrusted: it must resolve inside c.rootDir (the
// Parquet file's directory unless Options.ImageRoot says otherwise, or
// that directory by its real path), through no symlink leading out of it
// (os.Root; openInRoot for absolute ones), and name a regular file within
// the size limit — never /etc/shadow, ../../etc/passwd, /proc or /dev/zero.
func (c *parquetContainer) readPath(p string, h hold) ([]byte, func(), error) {
	target := filepath.FromSlash(p)
	if !filepath.IsAbs(target) {
		dir, err := filepath.Abs(filepath.Dir(c.path))
		if err != nil {
			return nil, nil, err
		}
		target = filepath.Join(dir, target)
	}
	rel, ok := relInside(c.rootDir, target)
	if !ok {
		if rel, ok = relInside(c.realRootDir(), target); !ok {
			if c.rootSet {
				return nil, nil, fmt.Errorf("outside the image root %s (--image-root)", c.rootDir)
			}
			return nil, nil, fmt.Errorf("outside the dataset directory %s (--image-root allows another)", c.rootDir)
		}
	}
	if c.root == nil {
		var err error
		if c.root, err = os.OpenRoot(c.rootDir); err != nil {
			return nil, nil, err
		}
	}
	return readRegular(c.openInRoot, rel, h)
}

// relInside is path relative to dir, when it is inside (both absolute and
// clean); ok is false when it is not, or dir is "".
func relInside(dir, path string) (rel string, ok bool) {
	if dir == "" {
		return "", false
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// realRootDir is c.rootDir with its symlinks resolved when that differs
// (the name the kernel gives it, which absolute paths and symlinks may
// use), else "". Resolved once per file.
func (c *parquetContainer) realRootDir() string {
	if !c.realDone {
		c.realDone = true
		if real, err := filepath.EvalSymlinks(c.rootDir); err == nil && real != c.rootDir {
			c.realRoot = real
		}
	}
	return c.realRoot
}

// maxSymlinks is how many symlinks resolving one path may follow, as
// Linux's limit (ELOOP beyond).
const maxSymlinks = 40

// openInRoot opens name, relative to c.root. os.Root refuses every
// absolute symlink ("path escapes from parent"), even one pointing inside
// the root; when the plain open fails, the path's symlinks are resolved
// here (resolveInRoot), and one whose target stays inside is opened
// through c.root again, which still refuses anything that would leave it
// (a link changed in between included).
func (c *parquetContainer) openInRoot(name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := c.root.OpenFile(name, flag, perm)
	if err == nil {
		return f, nil
	}
	resolved, rerr := c.resolveInRoot(name)
	if rerr != nil {
		return nil, rerr
	}
	if resolved == "" {
		return nil, err
	}
	return c.root.OpenFile(resolved, flag, perm)
}

// resolveInRoot resolves the symlinks of rel (clean, relative to c.root)
// one component at a time, as the kernel would: the path it names with
// no symlink left, relative to c.root. A symlink whose target leaves the
// root (absolute, or with more ".." than components above it) is an error
// naming the link; more than maxSymlinks links is ELOOP. "" with no error
// when a component cannot be read: the open's own error says why.
func (c *parquetContainer) resolveInRoot(rel string) (string, error) {
	var done []string       // components resolved, none a symlink
	var link, target string // the last symlink followed
	rest := splitPath(rel)
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		if name == ".." {
			// Only a link's target brings one. Its own components are
			// checked when it is taken in, but a link among them may
			// stand for fewer (one to the root itself): a ".." above
			// the root leaves it.
			if len(done) == 0 {
				return "", c.linkOutside(link, target)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := filepath.Join(append(done, name)...)
		fi, err := c.root.Lstat(cur)
		if err != nil {
			return "", nil
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, name)
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", &fs.PathError{Op: "open", Path: rel, Err: syscall.ELOOP}
		}
		link = cur
		if target, err = c.root.Readlink(cur); err != nil {
			return "", nil
		}
		t := splitPath(target)
		if filepath.IsAbs(target) {
			var ok bool
			if t, ok = c.underRoot(t); !ok {
				return "", c.linkOutside(cur, target)
			}
			done = done[:0]
		}
		depth := len(done)
		for _, n := range t {
			if n == ".." {
				depth--
			} else {
				depth++
			}
			if depth < 0 {
				return "", c.linkOutside(cur, target)
			}
		}
		rest = append(t, rest...)
	}
	if len(done) == 0 {
		return ".", nil // the root itself (a link to it)
	}
	return filepath.Join(done...), nil
}

// underRoot is what is left of the absolute path whose components are
// abs once c.rootDir (or its real path) is taken off its front; ok is
// false when it starts with neither. The components are compared as
// written, as the kernel reads them: a ".." before the root's end (which
// may climb out of a symlink) does not count as inside.
func (c *parquetContainer) underRoot(abs []string) (rest []string, ok bool) {
	for _, root := range []string{c.rootDir, c.realRootDir()} {
		r := splitPath(root)
		if root != "" && len(abs) >= len(r) && slices.Equal(abs[:len(r)], r) {
			return abs[len(r):], true
		}
	}
	return nil, false
}

// splitPath is p's components, without the empty and "." ones, which name
// nothing; ".." is kept.
func splitPath(p string) []string {
	var out []string
	for _, n := range strings.Split(p, string(filepath.Separator)) {
		if n != "" && n != "." {
			out = append(out, n)
		}
	}
	return out
}

// linkOutside is the error of the symlink link (relative to c.rootDir)
// whose target leads out of c.rootDir.
func (c *parquetContainer) linkOutside(link, target string) error {
	if c.rootSet {
		return fmt.Errorf("symlink %s -> %s points outside the image root %s (--image-root)", link, target, c.rootDir)
	}
	return fmt.Errorf("symlink %s -> %s points outside the dataset directory %s (--image-root allows another)", link, target, c.rootDir)
}

// imageValue is a value of the batch's image buffers (which belong to the
// batch, never reused while it is referenced), capped so that an append
// cannot write into the next row; one over the member limit is refused
// like a tar member.
func imageValue(v []byte) ([]byte, error) {
	if len(v) > maxMemberBytes {
		return nil, fmt.Errorf("image is %w", overLimit(int64(len(v))))
	}
	// Never nil, even empty: an empty image is data (the decoder says what
	// is wrong with it), nil is no data.
	if v == nil {
		return []byte{}, nil
	}
	return v[:len(v):len(v)], nil
}

func (c *parquetContainer) close() error {
	c.dropBatch()
	c.dropIDs()
	for _, l := range c.leaves() {
		func() {
			defer func() { recover() }() // a reader left in a bad state
			for _, a := range l.chunks {
				a.Release()
			}
			if l.rr != nil {
				l.rr.Release()
			}
		}()
	}
	if c.root != nil {
		c.root.Close()
	}
	return c.rdr.Close()
}

// parquetRows is the row count of the Parquet input e, from ft, its
// footer: 0 for a file a walk found that has no image column (Reader.Next
// skips it).
func parquetRows(e entry, ft *pqFooter, opts Options) (n int64, err error) {
	defer recovered(nil, &err)
	if ft.err != nil {
		return 0, ft.err
	}
	// The count needs no ids: the read warns about a mistyped id column,
	// once per file, and fails on a missing --id-column.
	opts.IDColumn = "-"
	_, err = chooseColumns(e.path, ft, opts)
	if errors.Is(err, errNoImageColumn) && !e.named {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return ft.rows, nil
}

// CheckColumns refuses, before anything is read, a Parquet input without
// a column named by Options.ImageColumn or Options.IDColumn, or with it in
// a type that cannot serve. A column named on the command line is a
// statement about every Parquet input: a typo found only when the file's
// turn came would fail the file alone, and leave an output whose recorded
// columns refuse the corrected rerun. It reads each Parquet input's footer
// (metadata only; once per run, Reader.footer); a file that cannot be
// opened is left to the run, which records its error.
func (r *Reader) CheckColumns() error {
	img, id := r.opts.ImageColumn, r.opts.IDColumn
	if id == "-" {
		id = ""
	}
	if img == "" && id == "" {
		return nil
	}
	for _, e := range r.entries {
		if e.kind != kindParquet || e.err != nil {
			continue
		}
		if err := checkParquetColumns(r.footer(e.path), img, id); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
	}
	return nil
}

// AutoColumns is what automatic choice (Options.IDColumn and ImageColumn
// empty) takes in the Parquet inputs, whatever the options say: the id
// column and the image column that every Parquet input would take, id "-"
// when none has an id column (row numbers), and "" when the inputs would
// take different ones or no Parquet input could be read. The outputs
// record it beside the settings, so that a resume naming the column an
// automatic choice took (or choosing automatically the column a run named)
// is not taken for a change. It reads each Parquet input's footer
// (metadata only; once per run, Reader.footer), and is safe to call while
// another goroutine reads; a file that cannot be opened, or that has no image
// column (a walk skips it; a named one fails whole), takes nothing.
func (r *Reader) AutoColumns() (id, image string) {
	ids, images := map[string]bool{}, map[string]bool{}
	for _, e := range r.entries {
		if e.kind != kindParquet || e.err != nil {
			continue
		}
		fid, fimg, ok := autoParquetColumns(r.footer(e.path))
		if ok {
			ids[fid], images[fimg] = true, true
		}
	}
	one := func(m map[string]bool) string {
		if len(m) != 1 {
			return ""
		}
		for k := range m {
			return k
		}
		return ""
	}
	return one(ids), one(images)
}

// autoParquetColumns is what automatic choice takes in the Parquet file
// whose footer is ft (AutoColumns); ok is false when it could not be read
// or has no image column.
func autoParquetColumns(ft *pqFooter) (id, image string, ok bool) {
	if ft.err != nil {
		return "", "", false
	}
	image, err := pickColumn(ft.schema, "", ImageColumns, isImageType, "image", "--image-column")
	if err != nil {
		return "", "", false
	}
	if id, err = pickColumn(ft.schema, "", IDColumns, isIDType, "id", "--id-column"); err != nil {
		id = "-" // row numbers
	}
	return id, image, true
}

// checkParquetColumns is CheckColumns for the file whose footer is ft:
// nil when it could not be read (the run reports that).
func checkParquetColumns(ft *pqFooter, img, id string) error {
	if ft.err != nil {
		return nil
	}
	as := ft.schema
	if img != "" {
		if _, err := pickColumn(as, img, ImageColumns, isImageType, "image", "--image-column"); err != nil {
			return err
		}
	}
	if id != "" {
		if _, err := pickColumn(as, id, IDColumns, isIDType, "id", "--id-column"); err != nil {
			return err
		}
	}
	return nil
}
