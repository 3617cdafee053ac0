package sinks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/internal/atomicfile"
)

// ParquetOptions tunes rolling part files (Parquet and Arrow IPC).
// Zero values take the defaults. The yaml keys are those of the commands'
// config files (package config).
type ParquetOptions struct {
	// A part file is published and a new one started once it holds at
	// least MaxFileRows rows or MaxFileBytes bytes of uncompressed values
	// (checked after each Write, so a file overshoots by at most one batch:
	// a part holds about MaxFileRows rows, up to MaxFileRows+batch−1).
	MaxFileRows  int         `yaml:"max_file_rows"`  // default 100_000
	MaxFileBytes config.Size `yaml:"max_file_bytes"` // default 512 MiB; in a config file also "512MiB"
	// RowGroupBytes bounds the uncompressed values per Parquet row group;
	// a row group is buffered in memory until complete. Default 64 MiB.
	RowGroupBytes int64 `yaml:"-"`
	// OnPublish, if set, is called after each part file is durable with
	// its path and row count (after the acks of its rows).
	OnPublish func(path string, rows int) `yaml:"-"`
	// WorkerID, if set, names the writer in its part files:
	// part-NNNNN-WORKERID.EXT instead of part-NNNNN.EXT (letters, digits,
	// '_' and '-'). Writers that share a directory with distinct ids
	// (stream workers) can never pick the same name, even where the
	// no-clobber publish must fall back to a rename (file systems without
	// hard links, such as mounted buckets). Readers take both forms.
	WorkerID string `yaml:"worker_id"`
}

// Validate refuses negative sizes (0 means the default) and a WorkerID
// that cannot be part of a part name. The error is an *OptionError naming
// the field's config key.
func (o ParquetOptions) Validate() error {
	switch {
	case o.MaxFileRows < 0:
		return &OptionError{"max_file_rows", fmt.Errorf("%d: want 0 (the default, 100000) or more", o.MaxFileRows)}
	case o.MaxFileBytes < 0:
		return &OptionError{"max_file_bytes", fmt.Errorf("%d: want 0 (the default, 512 MiB) or more", o.MaxFileBytes)}
	case o.RowGroupBytes < 0:
		// No flag or config key sets it (only a program can): its field.
		return &OptionError{"", fmt.Errorf("RowGroupBytes %d: want 0 (the default, 64 MiB) or more", o.RowGroupBytes)}
	case o.WorkerID != "" && !workerIDRe.MatchString(o.WorkerID):
		return &OptionError{"worker_id", fmt.Errorf("%q: want 1 to 64 letters, digits, '_' or '-'", o.WorkerID)}
	}
	return nil
}

// OptionError is a refused option value.
type OptionError struct {
	// Key is the option's config-file key ("max_file_rows"; "" for one
	// that has none); the commands' flag is the key with '-' for '_'.
	Key string
	// Err is the value refused and what the option takes ("-5: want 0
	// (the default, 100000) or more"), with the option's name when Key
	// is "".
	Err error
}

// Error names the option by its key: "max_file_rows -5: want ...".
func (e *OptionError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + " " + e.Err.Error()
}

func (e *OptionError) Unwrap() error { return e.Err }

// Flag is the command-line flag of the option ("--max-file-rows"), or ""
// when it has none.
func (e *OptionError) Flag() string {
	if e.Key == "" {
		return ""
	}
	return "--" + strings.ReplaceAll(e.Key, "_", "-")
}

// FlagError is the error as a command reports it, naming the flag
// ("--max-file-rows -5: want ..."); without a flag, e itself.
func (e *OptionError) FlagError() error {
	if e.Key == "" {
		return e
	}
	return fmt.Errorf("%s %w", e.Flag(), e.Err)
}

// withDefaults validates o and fills in the defaults.
func (o ParquetOptions) withDefaults() (ParquetOptions, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	if o.MaxFileRows <= 0 {
		o.MaxFileRows = 100_000
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 512 << 20
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 64 << 20
	}
	return o, nil
}

// recordFile is one output file being filled with Arrow records.
type recordFile interface {
	writeRecord(rec arrow.Record, rawBytes int64) error
	// finish completes the format and flushes; the file is not yet visible.
	finish() error
	atomic() *atomicfile.File
	abort() error
}

// pqFile writes one Parquet file through pqarrow into a hidden temp file.
type pqFile struct {
	af            *atomicfile.File
	bw            *bufio.Writer
	fw            *pqarrow.FileWriter
	rgBytes       int64
	rowGroupBytes int64
}

// noCloseWriter hides Close from the parquet writer, which would otherwise
// close our file before it is synced.
type noCloseWriter struct{ io.Writer }

func createParquet(path string, schema *arrow.Schema, rowGroupBytes int64) (*pqFile, error) {
	af, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(af, 1<<20)
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		// ids are unique and floats do not repeat: dictionaries only cost.
		parquet.WithDictionaryDefault(false),
		// Row groups are cut by bytes in writeRecord, not by this count.
		parquet.WithMaxRowGroupLength(1<<40),
	)
	// Storing the Arrow schema lets Arrow readers restore fixed_size_list
	// (Parquet itself only has LIST).
	fw, err := pqarrow.NewFileWriter(schema, noCloseWriter{bw}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		af.Abort()
		return nil, fmt.Errorf("parquet writer for %s: %w", path, err)
	}
	return &pqFile{af: af, bw: bw, fw: fw, rowGroupBytes: rowGroupBytes}, nil
}

func (p *pqFile) writeRecord(rec arrow.Record, rawBytes int64) error {
	if p.rgBytes > 0 && p.rgBytes+rawBytes > p.rowGroupBytes {
		p.fw.NewBufferedRowGroup()
		p.rgBytes = 0
	}
	if err := p.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s: %w", p.af.Final(), err)
	}
	p.rgBytes += rawBytes
	return nil
}

// finish writes the footer and flushes without publishing.
func (p *pqFile) finish() error {
	if err := p.fw.Close(); err != nil {
		return fmt.Errorf("close parquet %s: %w", p.af.Final(), err)
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", p.af.Final(), err)
	}
	return nil
}

func (p *pqFile) atomic() *atomicfile.File { return p.af }

func (p *pqFile) abort() error { return p.af.Abort() }

// parts rolls part-NNNNN.EXT files in a directory.
type parts struct {
	dir, ext string
	next     int
	// lazyDir: dir is created with the first part, not by newParts.
	lazyDir bool
	open    func(path string) (recordFile, error)
	opts    ParquetOptions

	cur      recordFile
	curRows  int
	curBytes int64
	held     pending // acks of the rows in cur
}

// partRe matches a published part name: part-NNNNN.EXT, or
// part-NNNNN-WORKERID.EXT (ParquetOptions.WorkerID). Submatches: the
// number, the worker id ("" if none), the extension.
var (
	partRe     = regexp.MustCompile(`^part-(\d+)(?:-([A-Za-z0-9_-]{1,64}))?\.([a-z]+)$`)
	workerIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// newParts rolls parts in dir. A resumed directory's last part must have
// been written with schema's metadata, or pass resume if set (which
// returns the next part number, as resumeParts does). With lazyDir, a
// missing dir is created with the first part only (error parts: a run
// without errors, or refused, leaves no empty errors/).
func newParts(dir, ext string, schema *arrow.Schema, opts ParquetOptions, lazyDir bool, resume func(dir string) (int, error), open func(string) (recordFile, error)) (*parts, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if lazyDir {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return &parts{dir: dir, ext: ext, open: open, opts: opts, lazyDir: true}, nil
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	// Continue numbering after existing parts so a resumed run never
	// replaces published files, and only resume the same kind of run.
	md := schema.Metadata()
	outputs := resume == nil // the run's own parts, not errors/
	if outputs {
		resume = func(dir string) (int, error) { return resumeParts(dir, ext, md.Keys(), md.Values(), nil) }
	}
	next, err := resume(dir)
	if err != nil {
		return nil, err
	}
	if outputs {
		// and the live runs sharing dir have written nothing yet.
		if err := LiveRunSettings(dir, md.Keys(), md.Values()); err != nil {
			return nil, err
		}
	}
	return &parts{dir: dir, ext: ext, next: next, open: open, opts: opts}, nil
}

// resumeParts returns the number after the highest part in dir and checks
// that the highest part with extension ext (if any) was written with the
// metadata keys/vals, except for the keys in ignore. It reads only file
// metadata: NewEmbeddings and the dry run's CheckResume share it.
func resumeParts(dir, ext string, keys, vals, ignore []string) (int, error) {
	next, last, err := nextPartNumber(dir, ext)
	if err != nil || last == "" {
		return next, err
	}
	kv, err := fileMetadata(last)
	if err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	for _, k := range ignore {
		delete(kv, k)
		if i := slices.Index(keys, k); i >= 0 {
			keys, vals = slices.Delete(slices.Clone(keys), i, i+1), slices.Delete(slices.Clone(vals), i, i+1)
		}
	}
	return next, compatible(last, kv, keys, vals)
}

// nextPartNumber returns the number after the highest part-NNNNN.* in dir
// and the path of the highest part with extension ext ("" if none).
func nextPartNumber(dir, ext string) (int, string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, "", fmt.Errorf("list %s: %w", dir, err)
	}
	next, last := 0, ""
	for _, e := range ents {
		if m := partRe.FindStringSubmatch(e.Name()); m != nil {
			if k, err := strconv.Atoi(m[1]); err == nil && k >= next {
				next = k + 1
				if m[3] == ext {
					last = filepath.Join(dir, e.Name())
				}
			}
		}
	}
	return next, last, nil
}

func (p *parts) write(rec arrow.Record, rawBytes int64) error {
	if p.cur == nil {
		if p.lazyDir {
			if err := os.MkdirAll(p.dir, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", p.dir, err)
			}
			p.lazyDir = false
		}
		f, err := p.open(p.partPath(p.next))
		if err != nil {
			return err
		}
		p.cur, p.curRows, p.curBytes = f, 0, 0
	}
	if err := p.cur.writeRecord(rec, rawBytes); err != nil {
		return err
	}
	p.curRows += int(rec.NumRows())
	p.curBytes += rawBytes
	if p.curRows >= p.opts.MaxFileRows || p.curBytes >= int64(p.opts.MaxFileBytes) {
		return p.flush()
	}
	return nil
}

func (p *parts) flush() error {
	if p.cur == nil {
		return nil
	}
	f := p.cur
	p.cur = nil
	p.next++
	if err := f.finish(); err != nil {
		f.abort()
		p.held.settle(err)
		return err
	}
	path, err := f.atomic().CommitNew(func() string {
		p.next++
		return p.partPath(p.next - 1)
	})
	if err != nil {
		p.held.settle(err)
		return err
	}
	p.held.settle(nil)
	if p.opts.OnPublish != nil {
		p.opts.OnPublish(path, p.curRows)
	}
	return nil
}

func (p *parts) partPath(n int) string {
	if p.opts.WorkerID != "" {
		return filepath.Join(p.dir, fmt.Sprintf("part-%05d-%s.%s", n, p.opts.WorkerID, p.ext))
	}
	return filepath.Join(p.dir, fmt.Sprintf("part-%05d.%s", n, p.ext))
}

func (p *parts) abort() error {
	p.held.settle(ErrAborted)
	if p.cur == nil {
		return nil
	}
	f := p.cur
	p.cur = nil
	return f.abort()
}

// embBuilder turns Rows into Arrow records over reused buffers.
type embBuilder struct {
	schema  *arrow.Schema
	meta    Meta
	offsets []int32
	widths  []int32
	heights []int32
	vals    []float32
}

// embeddingDims is the shape of one row's embedding: [Dim] or [Tokens, Dim].
func (m Meta) embeddingDims() []int {
	if m.Tokens > 0 {
		return []int{m.Tokens, m.Dim}
	}
	return []int{m.Dim}
}

func embeddingFields(meta Meta) []arrow.Field {
	return []arrow.Field{
		field("id", arrow.BinaryTypes.String),
		field("embedding", fslType(meta.embeddingDims()...)),
		field("width", arrow.PrimitiveTypes.Int32),
		field("height", arrow.PrimitiveTypes.Int32),
	}
}

func newEmbBuilder(meta Meta) *embBuilder {
	k, v := meta.keyValues()
	return &embBuilder{schema: schemaWithMeta(embeddingFields(meta), k, v), meta: meta}
}

// build returns the columns and their uncompressed size in bytes.
func (b *embBuilder) build(rows []Row) ([]arrow.Array, int64) {
	n := len(rows)
	b.widths, b.heights = b.widths[:0], b.heights[:0]
	raw := int64(8 * n)
	for i := range rows {
		b.widths = append(b.widths, rows[i].Width)
		b.heights = append(b.heights, rows[i].Height)
		raw += int64(len(rows[i].ID))
	}
	b.vals = b.vals[:0]
	for i := range rows {
		b.vals = append(b.vals, rows[i].Embedding...)
	}
	raw += int64(4 * len(b.vals))
	emb := fslColumn(b.vals, b.meta.embeddingDims()...)
	return []arrow.Array{stringColumn(&b.offsets, n, func(i int) string { return rows[i].ID }), emb, int32Column(b.widths), int32Column(b.heights)}, raw
}

// rolling is what the rolling part-file writers (embeddings, errors,
// reconstructions) share: one schema, records appended to parts, Flush,
// Close, Abort, and no Write after Close or Abort.
type rolling struct {
	schema *arrow.Schema
	parts  *parts
	done   bool
}

var errWriteAfterClose = errors.New("sinks: write after close")

// Every writer has the one Writer shape.
var (
	_ EmbeddingWriter = (*PartWriter)(nil)
	_ EmbeddingWriter = (*NpyWriter)(nil)
	_ ErrorWriter     = (*ErrorParts)(nil)
	_ ReconWriter     = (*ReconNpy)(nil)
	_ ReconWriter     = (*ReconParts)(nil)
	_ ReconWriter     = (*ReconPNG)(nil)
)

// writeColumns appends one record of n rows made of cols (released here).
func (r *rolling) writeColumns(cols []arrow.Array, n int, raw int64) error {
	rec := array.NewRecord(r.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	return r.parts.write(rec, raw)
}

// Flush publishes the current part file now (e.g. on a timer in stream
// mode, so acks need not wait for a full part); a no-op when nothing is
// pending.
func (r *rolling) Flush() error { return r.parts.flush() }

func (r *rolling) Close() error {
	if r.done {
		return nil
	}
	r.done = true
	return r.parts.flush()
}

func (r *rolling) Abort() error {
	r.done = true
	return r.parts.abort()
}

// PartWriter writes embeddings to rolling part files (Parquet or Arrow).
type PartWriter struct {
	rolling
	b *embBuilder
}

// NewParquet writes DIR/part-NNNNN.parquet (zstd, columns id, embedding,
// width, height; file metadata maeembed.model/pool/preprocess/version/dim
// and, for tokens, maeembed.tokens). Numbering continues after existing
// parts in dir.
func NewParquet(dir string, meta Meta, opts ParquetOptions) (*PartWriter, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := newEmbBuilder(meta)
	p, err := newParts(dir, "parquet", b.schema, o, false, nil, func(path string) (recordFile, error) {
		return createParquet(path, b.schema, o.RowGroupBytes)
	})
	if err != nil {
		return nil, err
	}
	return &PartWriter{rolling: rolling{schema: b.schema, parts: p}, b: b}, nil
}

func rowAck(r *Row) func(error) { return r.Ack }

func (w *PartWriter) Write(rows []Row) error {
	if w.done {
		return failRows(rows, rowAck, errWriteAfterClose)
	}
	if len(rows) == 0 {
		return nil
	}
	if err := checkRows(rows, w.b.meta.rowLen()); err != nil {
		return failRows(rows, rowAck, err)
	}
	for i := range rows {
		w.parts.held.hold(rows[i].Ack)
	}
	cols, raw := w.b.build(rows)
	return w.writeColumns(cols, len(rows), raw)
}
