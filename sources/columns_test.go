package sources

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// A file whose column has one of the image names but a type that cannot
// hold images (a list of Hugging Face image structs, say) is still a file
// without an image column, but the error says what that column is rather
// than listing it among the columns as if its name did not match.
func TestPickColumnNamesAWrongType(t *testing.T) {
	hf := arrow.StructOf(arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true})
	s := arrow.NewSchema([]arrow.Field{
		{Name: "image", Type: arrow.ListOf(hf), Nullable: true},
		{Name: "caption", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	_, err := pickColumn(s, "", ImageColumns, isImageType, "image", "--image-column")
	if !errors.Is(err, errNoImageColumn) {
		t.Fatalf("err %v, want errNoImageColumn", err)
	}
	want := `among the columns image, caption (set --image-column); column "image" is list<item: struct<bytes: binary, path: utf8>, nullable>, which cannot hold the image`
	if !strings.HasSuffix(err.Error(), want) {
		t.Errorf("err %q\nwant it to end in %q", err, want)
	}
	// Without such a column the message ends with the flag.
	s = arrow.NewSchema([]arrow.Field{{Name: "caption", Type: arrow.BinaryTypes.String}}, nil)
	if _, err := pickColumn(s, "", ImageColumns, isImageType, "image", "--image-column"); err == nil || !strings.HasSuffix(err.Error(), "among the columns caption (set --image-column)") {
		t.Errorf("no image-named column: %v", err)
	}
}

// AutoColumns is the column automatic choice takes in every Parquet input,
// whatever the options name: "-" for an id when no file has an id column,
// "" when the files would take different ones. A file that cannot be read
// as Parquet, or that a walk skips for having no image column, takes
// nothing.
func TestAutoColumns(t *testing.T) {
	dir := t.TempDir()
	keyed := func(name string) string {
		p := filepath.Join(dir, name)
		writeKeyedParquet(t, p, []string{"a"}, []string{"A"}) // key, jpg
		return p
	}
	a, b := keyed("a.parquet"), keyed("b.parquet")
	shard := "testdata/img2dataset-parquet/00000.parquet" // key, caption, jpg, status
	other := func(name string, fields ...arrow.Field) string {
		rb := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
		defer rb.Release()
		for i, f := range fields {
			switch f.Type.ID() {
			case arrow.BINARY:
				rb.Field(i).(*array.BinaryBuilder).Append([]byte("X"))
			case arrow.STRING:
				rb.Field(i).(*array.StringBuilder).Append("x")
			}
		}
		rec := rb.NewRecord()
		defer rec.Release()
		p := filepath.Join(dir, name)
		write(t, p, string(parquetBytes(t, rec)))
		return p
	}
	idImage := other("id.parquet", arrow.Field{Name: "id", Type: arrow.BinaryTypes.String}, arrow.Field{Name: "image", Type: arrow.BinaryTypes.Binary})
	noID := other("noid.parquet", arrow.Field{Name: "jpg", Type: arrow.BinaryTypes.Binary})
	broken := filepath.Join(dir, "broken.parquet")
	write(t, broken, "not parquet")
	for _, c := range []struct {
		name      string
		inputs    []string
		opts      Options
		id, image string
	}{
		{"one choice", []string{a, b, shard}, Options{}, "key", "jpg"},
		{"whatever the flags name", []string{a, b}, Options{IDColumn: "-", ImageColumn: "jpg"}, "key", "jpg"},
		{"different choices", []string{a, idImage}, Options{}, "", ""},
		{"no id column", []string{noID}, Options{}, "-", "jpg"},
		{"some without an id column", []string{a, noID}, Options{}, "", "jpg"},
		{"an unreadable file takes nothing", []string{a, broken}, Options{}, "key", "jpg"},
	} {
		r, err := Open(c.inputs, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if id, image := r.AutoColumns(); id != c.id || image != c.image {
			t.Errorf("%s: id %q, image %q; want %q, %q", c.name, id, image, c.id, c.image)
		}
		r.Close()
	}
}
