package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// parquetContainer streams the rows of a Parquet file, ParquetBatch rows at
// a time, reading only the image (and id) columns.
type parquetContainer struct {
	path    string
	rdr     *file.Reader
	rr      pqarrow.RecordReader
	rec     arrow.Record
	i       int   // next row within rec
	row     int64 // file row of rec's row 0
	imgCol  string
	idCol   string
	nextRow int64
}

func openParquet(p string, opts Options) (container, error) {
	if err := checkRegular(p); err != nil {
		return nil, err
	}
	rdr, err := file.OpenParquetFile(p, false)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: int64(opts.ParquetBatch)}, memory.DefaultAllocator)
	if err != nil {
		rdr.Close()
		return nil, fmt.Errorf("parquet: %w", err)
	}
	sch := rdr.MetaData().Schema
	var leaves []int
	found := map[string]bool{}
	for i := 0; i < sch.NumColumns(); i++ {
		root := sch.ColumnRoot(i).Name()
		if root == opts.ImageColumn || opts.IDColumn != "" && root == opts.IDColumn {
			leaves = append(leaves, i)
			found[root] = true
		}
	}
	if !found[opts.ImageColumn] {
		rdr.Close()
		return nil, fmt.Errorf("parquet: no column %q (set the image column)", opts.ImageColumn)
	}
	if opts.IDColumn != "" && !found[opts.IDColumn] {
		rdr.Close()
		return nil, fmt.Errorf("parquet: no id column %q", opts.IDColumn)
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
	if err != nil {
		rdr.Close()
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &parquetContainer{path: p, rdr: rdr, rr: rr, imgCol: opts.ImageColumn, idCol: opts.IDColumn}, nil
}

func (c *parquetContainer) next(want func(member string, row int64, key string) bool, readData bool) (string, int64, []byte, error) {
	for {
		if c.rec == nil || c.i >= int(c.rec.NumRows()) {
			if !c.rr.Next() {
				if err := c.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
					return "", -1, nil, fmt.Errorf("parquet: %w", err)
				}
				return "", -1, nil, errEOF
			}
			c.rec = c.rr.Record()
			c.i = 0
			c.row = c.nextRow
			c.nextRow += c.rec.NumRows()
		}
		i := c.i
		c.i++
		row := c.row + int64(i)
		key := ""
		if c.idCol != "" {
			s, ok := stringAt(column(c.rec, c.idCol), i)
			if !ok {
				return "", row, nil, &memberError{fmt.Errorf("row %d: null or non-string id column %q", row, c.idCol)}
			}
			key = s
		}
		if !want("", row, key) {
			continue
		}
		if !readData {
			return "", row, nil, nil
		}
		data, err := c.imageAt(i)
		if err != nil {
			return "", row, nil, &memberError{fmt.Errorf("row %d: %w", row, err)}
		}
		return "", row, data, nil
	}
}

func column(rec arrow.Record, name string) arrow.Array {
	for i, f := range rec.Schema().Fields() {
		if f.Name == name {
			return rec.Column(i)
		}
	}
	return nil
}

// imageAt copies the image bytes of row i: a binary column, or the Hugging
// Face struct {bytes, path} where a null bytes with a path means the image is
// a file next to the dataset.
func (c *parquetContainer) imageAt(i int) ([]byte, error) {
	col := column(c.rec, c.imgCol)
	if col.IsNull(i) {
		return nil, fmt.Errorf("image is null")
	}
	if b, ok := bytesAt(col, i); ok {
		return copyImage(b)
	}
	st, ok := col.(*array.Struct)
	if !ok {
		return nil, fmt.Errorf("column %q is %s, want binary or struct{bytes, path}", c.imgCol, col.DataType())
	}
	typ := st.DataType().(*arrow.StructType)
	if k, ok := typ.FieldIdx("bytes"); ok && !st.Field(k).IsNull(i) {
		if b, ok := bytesAt(st.Field(k), i); ok {
			return copyImage(b)
		}
	}
	if k, ok := typ.FieldIdx("path"); ok {
		if p, ok := stringAt(st.Field(k), i); ok && p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(c.path), p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("image bytes null, path: %w", err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("image struct has neither bytes nor path")
}

// copyImage copies a value out of the record, whose buffers are reused, and
// refuses one over the member limit like a tar member.
func copyImage(v []byte) ([]byte, error) {
	if len(v) > maxMemberBytes {
		return nil, fmt.Errorf("image is %d bytes, limit %d", len(v), maxMemberBytes)
	}
	return append([]byte(nil), v...), nil
}

// bytesAt is the binary value of row i, aliasing the record's buffers.
func bytesAt(a arrow.Array, i int) ([]byte, bool) {
	switch b := a.(type) {
	case *array.Binary:
		return b.Value(i), true
	case *array.LargeBinary:
		return b.Value(i), true
	case *array.BinaryView:
		return b.Value(i), true
	}
	return nil, false
}

func stringAt(a arrow.Array, i int) (string, bool) {
	if a == nil || a.IsNull(i) {
		return "", false
	}
	switch s := a.(type) {
	case *array.String:
		return s.Value(i), true
	case *array.LargeString:
		return s.Value(i), true
	case *array.StringView:
		return s.Value(i), true
	}
	return "", false
}

func (c *parquetContainer) close() error {
	c.rr.Release()
	return c.rdr.Close()
}

// parquetRows reads the row count from the footer.
func parquetRows(p string) (int64, error) {
	if err := checkRegular(p); err != nil {
		return 0, err
	}
	rdr, err := file.OpenParquetFile(p, false)
	if err != nil {
		return 0, err
	}
	defer rdr.Close()
	return rdr.NumRows(), nil
}
