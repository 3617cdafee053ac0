package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An extension no file name ends with (two in one value, a path, a glob,
// an inner dot) is refused, naming --extensions and the value and showing
// the comma-separated form, rather than silently taking nothing; what the
// walk accepts (a leading dot, any case) passes.
func TestCheckExtensions(t *testing.T) {
	for _, ok := range [][]string{nil, {"jpg"}, {"jpg", "png"}, {".JPG", "heic"}, {"jp2"}} {
		if err := CheckExtensions(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct {
		exts []string
		want []string
	}{
		{[]string{"jpg png"}, []string{`--extensions "jpg png"`, "white space", "--extensions jpg,png"}},
		{[]string{"webp", "jpg\tpng"}, []string{`"jpg\tpng"`, "--extensions webp,jpg,png"}},
		{[]string{"*.jpg"}, []string{`--extensions "*.jpg"`, "glob", "--extensions jpg"}},
		{[]string{"photos/png"}, []string{"path separator", "--extensions png"}},
		{[]string{`a\jpg`}, []string{"path separator", "--extensions jpg"}},
		{[]string{"jpg.gz"}, []string{"a dot", "last dot", "--extensions gz"}},
		// Not "--extensions gz", which would take any .gz file as an image:
		// a directory's shards are read whatever the extensions.
		{[]string{"tar.gz"}, []string{`--extensions "tar.gz"`, "a dot", "tar shards", "whatever --extensions says", `leave "tar.gz" out`}},
		{[]string{"jpg", ".TAR.GZ"}, []string{"tar shards", `leave ".TAR.GZ" out`}},
		{[]string{"."}, []string{`--extensions "."`, "empty", "--extensions jpg,png"}},
	} {
		err := CheckExtensions(c.exts)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v, want %q in it", c.exts, err, w)
			}
		}
	}
}

// What CheckExtensions refuses matches nothing indeed: a walk with "jpg
// png" as one extension takes neither kind of file.
func TestExtensionWithASpaceMatchesNothing(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.jpg", "b.png"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenWith([]string{dir}, nil, Options{Extensions: []string{"jpg png"}}); err == nil || !strings.Contains(err.Error(), "no image files") {
		t.Errorf("open with extension %q: %v, want no image files", "jpg png", err)
	}
}

// An extension is taken with or without its leading dot and in any letter
// case, of it and of the file names: jpg, .jpg, JPG and .Jpg all take
// a.jpg and b.JPG from a directory and from a glob, and nothing else.
func TestExtensionsLeadingDotAndCase(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.jpg", "b.JPG", "c.png", "d.jpeg"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ext := range []string{"jpg", ".jpg", "JPG", ".Jpg"} {
		for _, in := range []string{dir, filepath.Join(dir, "*")} {
			if err := CheckExtensions([]string{ext}); err != nil {
				t.Errorf("--extensions %s refused: %v", ext, err)
			}
			r, err := Open([]string{in}, Options{Extensions: []string{ext}, NoData: true})
			if err != nil {
				t.Fatalf("--extensions %s %s: %v", ext, in, err)
			}
			var ids []string
			for _, s := range readAll(t, r) {
				ids = append(ids, strings.TrimSuffix(s, "="))
			}
			if strings.Join(ids, " ") != "a.jpg b.JPG" {
				t.Errorf("--extensions %s %s: %q, want a.jpg and b.JPG", ext, in, ids)
			}
		}
	}
}
