package sources

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Inputs that reach one file from several roots (a directory nested in
// another, a file named beside its directory, a nested glob) give it one
// id whatever their order: the one under the outermost directory input.
// Each file is read once and the repeat is counted.
func TestNestedInputsIDsIndependentOfOrder(t *testing.T) {
	n := filepath.Join(t.TempDir(), "N")
	write(t, filepath.Join(n, "calla.jpg"), "C")
	write(t, filepath.Join(n, "sub", "fossa.jpg"), "F")
	sub := filepath.Join(n, "sub")
	abs, err := filepath.Abs(sub)
	if err != nil {
		t.Fatal(err)
	}
	wantAll := []string{"calla.jpg=C", "sub/fossa.jpg=F"}
	for _, tc := range []struct {
		inputs []string
		want   []string
	}{
		{[]string{sub, n}, wantAll},
		{[]string{n, sub}, wantAll},
		{[]string{filepath.Join(sub, "fossa.jpg"), n}, wantAll},
		{[]string{n, filepath.Join(sub, "fossa.jpg")}, wantAll},
		// The same file by another spelling of its path.
		{[]string{filepath.Join(abs, "fossa.jpg"), n + "/"}, wantAll},
		// A glob whose directory part is nested.
		{[]string{filepath.Join(sub, "*.jpg"), n}, wantAll},
		{[]string{n, filepath.Join(sub, "*.jpg")}, wantAll},
	} {
		r, err := Open(tc.inputs, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tc.inputs, err)
		}
		if got := readAll(t, r); !slices.Equal(got, tc.want) {
			t.Errorf("%q: items %q, want %q", tc.inputs, got, tc.want)
		}
		if st := r.Stats(); st.Ignored != 1 {
			t.Errorf("%q: %d ignored, want the nested input counted once", tc.inputs, st.Ignored)
		}
	}

	// With a file of the same name in both, neither order is refused as
	// two files with one id.
	write(t, filepath.Join(n, "fossa.jpg"), "G")
	for _, inputs := range [][]string{{sub, n}, {n, sub}} {
		r, err := Open(inputs, Options{})
		if err != nil {
			t.Fatalf("%q: %v", inputs, err)
		}
		if got, want := strings.Join(readAll(t, r), " "), "calla.jpg=C fossa.jpg=G sub/fossa.jpg=F"; got != want {
			t.Errorf("%q: items %s, want %s", inputs, got, want)
		}
	}
}

// A symlink to a directory inside an input does not take the ids of the
// real directory, whatever their names' order: the real path keeps its id,
// the alias is skipped as listed already. A symlink to a directory that no
// other path reaches is walked under its own name.
func TestSymlinkedDirectoryKeepsTheRealIDs(t *testing.T) {
	base := t.TempDir()
	s := filepath.Join(base, "S")
	write(t, filepath.Join(s, "sub", "fossa.jpg"), "F")
	write(t, filepath.Join(base, "elsewhere", "x.jpg"), "X")
	for _, l := range [][2]string{{"sub", "alink"}, {"sub", "zlink"}, {"../elsewhere", "other"}} {
		if err := os.Symlink(l[0], filepath.Join(s, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open([]string{s}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(readAll(t, r), " "), "other/x.jpg=X sub/fossa.jpg=F"; got != want {
		t.Errorf("items %s, want %s", got, want)
	}
	// Symlinks in a subdirectory that sorts first, too.
	if err := os.Mkdir(filepath.Join(s, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../sub", filepath.Join(s, "a", "l")); err != nil {
		t.Fatal(err)
	}
	r, err = Open([]string{s}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(readAll(t, r), " "), "other/x.jpg=X sub/fossa.jpg=F"; got != want {
		t.Errorf("with a/l: items %s, want %s", got, want)
	}
}

// itemIDs are the ids of the items of inputs (stdin: the list on
// standard input), in order.
func itemIDs(t *testing.T, inputs []string, stdin string, opts Options) []string {
	t.Helper()
	r, err := OpenWith(inputs, strings.NewReader(stdin), opts)
	if err != nil {
		t.Fatalf("%q (stdin %q): %v", inputs, stdin, err)
	}
	var ids []string
	for _, it := range readAll(t, r) {
		ids = append(ids, it[:strings.LastIndexByte(it, '=')])
	}
	return ids
}

// A file under a directory input has the id it has in that directory's
// walk, however else it is reached: a list line naming it (as a file,
// or on stdin) does not give it a second id, so adding one to a rerun's
// list writes nothing new.
func TestListedFileUnderDirectoryInputKeepsItsID(t *testing.T) {
	base := t.TempDir()
	write(t, filepath.Join(base, "photos", "calla.jpg"), "C")
	write(t, filepath.Join(base, "photos", "fossa.jpg"), "F")
	write(t, filepath.Join(base, "photos", "sub", "goldfish.jpg"), "G")
	write(t, filepath.Join(base, "photos", "sub", "kleiber.jpg"), "K")
	write(t, filepath.Join(base, "extra", "painting-colors.jpg"), "P")
	chdir(t, base)
	want := []string{"extra/painting-colors.jpg", "calla.jpg", "fossa.jpg", "sub/goldfish.jpg", "sub/kleiber.jpg"}
	for _, list := range []string{
		"extra/painting-colors.jpg\n",
		"extra/painting-colors.jpg\nphotos/calla.jpg\n",
		"extra/painting-colors.jpg\n./photos/sub/kleiber.jpg\n" + filepath.Join(base, "photos", "fossa.jpg") + "\n",
		// A listed directory inside the directory input.
		"extra/painting-colors.jpg\nphotos/sub\n",
	} {
		if err := os.WriteFile("l.txt", []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, inputs := range [][]string{{"photos", "l.txt"}, {"l.txt", "photos"}} {
			if got := itemIDs(t, inputs, "", Options{}); !slices.Equal(got, want) {
				t.Errorf("%q with l.txt %q: ids %q, want %q", inputs, list, got, want)
			}
		}
		for _, inputs := range [][]string{{"photos", "-"}, {"-", "photos"}} {
			if got := itemIDs(t, inputs, list, Options{}); !slices.Equal(got, want) {
				t.Errorf("%q with stdin %q: ids %q, want %q", inputs, list, got, want)
			}
		}
	}
	// A list naming a directory that holds the directory input: the
	// files of the input keep its ids, the others the list's.
	write(t, filepath.Join(base, "photos", "x.jpg"), "X")
	got := itemIDs(t, []string{"photos/sub", "-"}, "photos\n", Options{})
	if want := []string{"photos/calla.jpg", "photos/fossa.jpg", "goldfish.jpg", "kleiber.jpg", "photos/x.jpg"}; !slices.Equal(got, want) {
		t.Errorf("photos/sub and a list naming photos: ids %q, want %q", got, want)
	}
}

// A file under a directory input named beside it keeps the directory's
// id whether or not the directory's walk takes it (--extensions), so
// changing --extensions between runs gives no file a second id.
func TestNamedFileIDIndependentOfExtensions(t *testing.T) {
	p6 := filepath.Join(t.TempDir(), "p6")
	write(t, filepath.Join(p6, "coffee.png"), "C")
	write(t, filepath.Join(p6, "sub", "kleiber.jpg"), "K")
	named := filepath.Join(p6, "sub", "kleiber.jpg")
	want := []string{"coffee.png", "sub/kleiber.jpg"}
	for _, exts := range [][]string{{"png"}, nil, {"jpg"}} {
		for _, inputs := range [][]string{{p6, named}, {named, p6}} {
			got := itemIDs(t, inputs, "", Options{Extensions: exts})
			if slices.Equal(exts, []string{"jpg"}) {
				// The walk takes no .png: only the named file and the jpg.
				if w := []string{"sub/kleiber.jpg"}; !slices.Equal(got, w) {
					t.Errorf("%q --extensions %q: ids %q, want %q", inputs, exts, got, w)
				}
				continue
			}
			if !slices.Equal(got, want) {
				t.Errorf("%q --extensions %q: ids %q, want %q", inputs, exts, got, want)
			}
		}
	}
	// And whether or not the walk enters its directory: the run's output
	// directory inside the input is not walked, a file in it named
	// directly keeps the id under the input.
	outFile := filepath.Join(p6, "out", "z.jpg")
	write(t, outFile, "Z")
	got := itemIDs(t, []string{p6, outFile}, "", Options{SkipDirs: []string{filepath.Join(p6, "out")}})
	if w := []string{"coffee.png", "out/z.jpg", "sub/kleiber.jpg"}; !slices.Equal(got, w) {
		t.Errorf("a file of a skipped directory named: ids %q, want %q", got, w)
	}
}

// A glob through a symlink to a directory keeps the ids of the path
// without symlinks, as a walk does: photos/alias -> sub, 'photos/*/*.jpg'
// gives sub/x.jpg, and 'photos/*' walks sub under its own name.
func TestGlobPrefersPathWithoutSymlinks(t *testing.T) {
	photos := filepath.Join(t.TempDir(), "photos")
	write(t, filepath.Join(photos, "sub", "x.jpg"), "X")
	write(t, filepath.Join(photos, "sub", "y.jpg"), "Y")
	for _, l := range []string{"alias", "a"} {
		if err := os.Symlink("sub", filepath.Join(photos, l)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"sub/x.jpg", "sub/y.jpg"}
	for _, glob := range []string{"*/*.jpg", "*/x.jpg", "*", "[as]*"} {
		got := itemIDs(t, []string{filepath.Join(photos, glob)}, "", Options{})
		w := want
		if glob == "*/x.jpg" {
			w = want[:1]
		}
		if !slices.Equal(got, w) {
			t.Errorf("glob %s: ids %q, want %q", glob, got, w)
		}
	}
}
