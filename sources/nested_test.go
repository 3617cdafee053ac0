package sources

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Inputs that reach one file from several roots (a directory nested in
// another, a file named beside its directory) give it one id whatever
// their order: the outermost root's, as if the nested input were not
// given. Each file is read once and the repeat is counted.
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
