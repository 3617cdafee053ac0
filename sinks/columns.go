package sinks

import (
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Columns are built straight over the writer's own reusable slices (no
// builders), so a batch costs no allocation beyond the array headers and
// the string bytes.

// field declares a required column, except fixed-size lists: Arrow Go v17's
// Parquet writer loses the values of a non-nullable fixed_size_list column
// (they read back as nulls; apache/arrow-go#584, fixed later), so those are
// declared nullable. No null is ever written.
func field(name string, t arrow.DataType) arrow.Field {
	_, fsl := t.(*arrow.FixedSizeListType)
	return arrow.Field{Name: name, Type: t, Nullable: fsl}
}

// fslType nests fixed-size lists of float32: dims (a, b) gives
// fixed_size_list<fixed_size_list<float32>[b]>[a].
func fslType(dims ...int) arrow.DataType {
	var t arrow.DataType = arrow.PrimitiveTypes.Float32
	for i := len(dims) - 1; i >= 0; i-- {
		t = arrow.FixedSizeListOf(int32(dims[i]), t)
	}
	return t
}

func schemaWithMeta(fields []arrow.Field, keys, vals []string) *arrow.Schema {
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

// stringColumn copies the strings into one fresh byte buffer: Parquet
// statistics keep references into it, so it must not be reused.
func stringColumn(offsets *[]int32, n int, get func(i int) string) arrow.Array {
	total := 0
	for i := 0; i < n; i++ {
		total += len(get(i))
	}
	data := make([]byte, 0, total)
	off := (*offsets)[:0]
	off = append(off, 0)
	for i := 0; i < n; i++ {
		data = append(data, SanitizeID(get(i))...)
		off = append(off, int32(len(data)))
	}
	*offsets = off
	d := array.NewData(arrow.BinaryTypes.String, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(off)), memory.NewBufferBytes(data)}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func int32Column(v []int32) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Int32, len(v),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(v))}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func float32Column(v []float32) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Float32, len(v),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(v))}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// fslColumn wraps rows of flat values as nested fixed-size lists of the
// given dims (the product of dims values per row).
func fslColumn(vals []float32, dims ...int) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Float32, len(vals),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(vals))}, nil, 0, 0)
	count := len(vals)
	for i := len(dims) - 1; i >= 0; i-- {
		count /= dims[i]
		outer := array.NewData(fslType(dims[i:]...), count, []*memory.Buffer{nil}, []arrow.ArrayData{d}, 0, 0)
		d.Release()
		d = outer
	}
	defer d.Release()
	return array.MakeFromData(d)
}

// SanitizeID is how every string is stored: invalid UTF-8 becomes U+FFFD,
// because readers such as DuckDB refuse a whole file over one invalid
// string. Ids from package sources are already valid UTF-8
// (sources.EscapeID, reversible and collision-free), so this is identity on
// them and only guards other strings (error messages). ReadDoneIDs returns
// stored ids, so a resuming caller looks up SanitizeID(id).
func SanitizeID(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
