package sinks

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// arrowFile writes one Arrow IPC file (the random-access "file" format,
// readable by pyarrow.ipc.open_file / feather) into a hidden temp file.
type arrowFile struct {
	af *atomicfile.File
	pw *posWriter
	fw *ipc.FileWriter
}

// posWriter buffers writes and answers the only Seek the IPC writer makes:
// asking for the current position.
type posWriter struct {
	*bufio.Writer
	pos int64
}

func (p *posWriter) Write(b []byte) (int, error) {
	n, err := p.Writer.Write(b)
	p.pos += int64(n)
	return n, err
}

func (p *posWriter) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekCurrent {
		return 0, errors.New("posWriter: only Seek(0, io.SeekCurrent) is supported")
	}
	return p.pos, nil
}

func createArrow(path string, schema *arrow.Schema) (*arrowFile, error) {
	af, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	pw := &posWriter{Writer: bufio.NewWriterSize(af, 1<<20)}
	fw, err := ipc.NewFileWriter(pw, ipc.WithSchema(schema))
	if err != nil {
		af.Abort()
		return nil, fmt.Errorf("arrow writer for %s: %w", path, err)
	}
	return &arrowFile{af: af, pw: pw, fw: fw}, nil
}

func (a *arrowFile) writeRecord(rec arrow.Record, _ int64) error {
	if err := a.fw.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", a.af.Final(), err)
	}
	return nil
}

func (a *arrowFile) finish() error {
	if err := a.fw.Close(); err != nil {
		return fmt.Errorf("close arrow %s: %w", a.af.Final(), err)
	}
	if err := a.pw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", a.af.Final(), err)
	}
	return nil
}

func (a *arrowFile) atomic() *atomicfile.File { return a.af }

func (a *arrowFile) abort() error { return a.af.Abort() }

// NewArrow writes DIR/part-NNNNN.arrow: Arrow IPC files (uncompressed, one
// record batch per Write) with the schema and metadata of NewParquet, where
// embedding stays a fixed_size_list. Rolling, OnPublish and Flush behave as
// for NewParquet; RowGroupBytes does not apply.
func NewArrow(dir string, meta Meta, opts ParquetOptions) (*PartWriter, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	b := newEmbBuilder(meta)
	p, err := newParts(dir, "arrow", b.schema, opts, false, nil, func(path string) (recordFile, error) {
		return createArrow(path, b.schema)
	})
	if err != nil {
		return nil, err
	}
	return &PartWriter{rolling: rolling{schema: b.schema, parts: p}, b: b}, nil
}
