package sources

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// A column named like the ids ("id") whose type cannot hold one (float64)
// leaves the rows their numbers, as documented, but says so in the log
// instead of silently, once per file (the progress bar's count of its
// rows says nothing); --id-column - takes the numbers without a word.
func TestParquetIDColumnOfWrongTypeWarns(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "image", Type: arrow.BinaryTypes.Binary},
		{Name: "id", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, img := range []string{"A", "B"} {
		b.Field(0).(*array.BinaryBuilder).Append([]byte(img))
		b.Field(1).(*array.Float64Builder).Append(float64(i) + 0.5)
	}
	path := writeDataset(t, b)
	logs := captureLog(t)
	for _, tc := range []struct {
		opts Options
		warn bool
	}{{Options{}, true}, {Options{IDColumn: "-"}, false}} {
		logs.Reset()
		r, err := Open([]string{path}, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if n, exact := r.Total(); n != 2 || !exact {
			t.Errorf("%+v: total %d (exact %v), want 2", tc.opts, n, exact)
		}
		if got, want := readAll(t, r), []string{"ds.parquet/0=A", "ds.parquet/1=B"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: got %q, want %q", tc.opts, got, want)
		}
		warnings := strings.Count(logs.String(), `ids are row numbers (FILE/ROW): column \"id\" is float64`)
		if warned := warnings > 0; warned != tc.warn || warnings > 1 {
			t.Errorf("%+v: warned %d times, want %v (once); log:\n%s", tc.opts, warnings, tc.warn, logs.String())
		}
	}
}

// The warning names the mistyped column whatever the other columns are
// called: a name holding "; " (the separator of the error's list) before
// it does not cut the message short.
func TestParquetIDColumnWarningNamesTheColumn(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "image", Type: arrow.BinaryTypes.Binary},
		{Name: "note; which cannot hold the id", Type: arrow.BinaryTypes.String},
		{Name: "id", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.BinaryBuilder).Append([]byte("A"))
	b.Field(1).(*array.StringBuilder).Append("n")
	b.Field(2).(*array.Float64Builder).Append(0.5)
	path := writeDataset(t, b)
	logs := captureLog(t)
	r, err := Open([]string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, r), []string{"ds.parquet/0=A"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), `ids are row numbers (FILE/ROW): column \"id\" is float64, which cannot hold the id (strings or integers)`) {
		t.Errorf("log lacks the warning naming column id:\n%s", logs.String())
	}
}

// writeDataset writes b's record to a new ds.parquet and returns its path.
func writeDataset(t *testing.T, b *array.RecordBuilder) string {
	t.Helper()
	rec := b.NewRecord()
	defer rec.Release()
	path := filepath.Join(t.TempDir(), "ds.parquet")
	write(t, path, string(parquetBytes(t, rec)))
	return path
}

// captureLog sends the default logger to the returned buffer until the
// test ends.
func captureLog(t *testing.T) *bytes.Buffer {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	logs := new(bytes.Buffer)
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	return logs
}
