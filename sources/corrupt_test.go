package sources

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// corruptRows is the row count of corruptParquet's file.
const corruptRows = 12

// corruptParquet writes a small snappy-compressed dataset (id strings, image
// bytes; 3 row groups) of the kind a corrupted copy is made from.
func corruptParquet(t testing.TB) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < corruptRows; i++ {
		b.Field(0).(*array.StringBuilder).Append("k" + string(rune('a'+i)))
		img := make([]byte, 40+i*7)
		for j := range img {
			img[j] = byte(rng.IntN(4)) // compressible, as snappy should have work
		}
		b.Field(1).(*array.BinaryBuilder).Append(img)
	}
	rec := b.NewRecord()
	defer rec.Release()
	return parquetBytes(t, rec, parquet.WithMaxRowGroupLength(5), parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false))
}

// parquetBytes is rec written as a Parquet file with pqarrow.
func parquetBytes(t testing.TB, rec arrow.Record, props ...parquet.WriterProperty) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readParquetBytes reads data as a Parquet input (every item bytes or an
// error), with the row count of its footer if that reads.
func readParquetBytes(t testing.TB, dir string, data []byte) (items []Item, rows int64, footerOK bool) {
	t.Helper()
	p := filepath.Join(dir, "x.parquet")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := parquetRows(entry{path: p, named: true}, readFooter(p, nil), Options{})
	return readInput(t, p, Options{ParquetBatch: 2}), rows, err == nil
}

// One damaged byte anywhere in the pages of a file whose footer is intact:
// every row comes out, as its bytes or as an error row; the reader never
// panics and never drops a row.
func TestCorruptParquetPagesLoseNoRow(t *testing.T) {
	orig := corruptParquet(t)
	footer := int(binary.LittleEndian.Uint32(orig[len(orig)-8:])) + 8
	dir := t.TempDir()
	items, rows, _ := readParquetBytes(t, dir, orig)
	if rows != corruptRows || len(items) != corruptRows {
		t.Fatalf("intact file: %d items, footer %d rows", len(items), rows)
	}
	variants, withErrors := 0, 0
	for off := 4; off < len(orig)-footer; off++ {
		for _, flip := range []byte{0xff, 0x01} {
			data := bytes.Clone(orig)
			data[off] ^= flip
			items, rows, footerOK := readParquetBytes(t, dir, data)
			variants++
			if !footerOK {
				if len(items) != 1 || items[0].Err == nil {
					t.Fatalf("offset %d ^%#x: unreadable footer gave %d items, want 1 error", off, flip, len(items))
				}
				continue
			}
			if int64(len(items)) != rows || rows != corruptRows {
				t.Fatalf("offset %d ^%#x: %d items for %d rows", off, flip, len(items), rows)
			}
			errs := 0
			for _, it := range items {
				if it.Err != nil {
					errs++
				}
			}
			if errs > 0 {
				withErrors++
			}
		}
	}
	t.Logf("%d one-byte variants, %d with error rows", variants, withErrors)
	if withErrors == 0 {
		t.Fatal("no variant gave an error row: the corruption missed the pages")
	}
}

// A file too short to be Parquet is one error row that names the format
// once (Arrow's reader says "parquet: …" itself).
func TestTinyParquetErrorNamesFormatOnce(t *testing.T) {
	items, _, footerOK := readParquetBytes(t, t.TempDir(), []byte("junk!"))
	if footerOK || len(items) != 1 || items[0].Err == nil {
		t.Fatalf("5-byte file: %d items, footer read %v", len(items), footerOK)
	}
	msg := items[0].Err.Error()
	if !strings.Contains(msg, "parquet: file too small") || strings.Contains(msg, " parquet: parquet:") {
		t.Errorf("error %q: want Arrow's reason, with the format named once", msg)
	}
}
