package sources

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
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
