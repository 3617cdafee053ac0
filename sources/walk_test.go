package sources

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// What a walk cannot read is an error item under its path, never a silent
// gap: an unreadable directory, a broken symlink named like an image, a
// FIFO. A broken symlink named like a caption is not an input at all.
func TestWalkFailuresAreErrorItems(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads a mode-000 directory: run this test as nobody.
		asNobody(t, "TestWalkFailuresAreErrorItems")
		return
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	write(t, filepath.Join(root, "a.jpg"), "A")
	write(t, filepath.Join(root, "locked", "x.jpg"), "X")
	write(t, filepath.Join(root, "z.jpg"), "Z")
	for _, l := range [][2]string{{"nowhere.jpg", "broken.jpg"}, {"nowhere.txt", "broken.txt"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := mkfifo(filepath.Join(root, "pipe.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "locked"), 0o755) })
	r, err := Open([]string{root}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := r.Total(); n != 5 || !exact {
		t.Errorf("Total() = %d %v, want 5", n, exact)
	}
	got := readAll(t, r)
	loc := func(n string) string { return "!read " + filepath.Join(root, n) + ": " }
	want := []string{"a.jpg=A", "broken.jpg" + loc("broken.jpg") + "broken symlink: ",
		"locked" + loc("locked") + "directory: open " + filepath.Join(root, "locked") + ": permission denied",
		"pipe.jpg" + loc("pipe.jpg") + "not a regular file but a named pipe (FIFO)", "z.jpg=Z"}
	if len(got) != len(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("item %d: %q, want %q…", i, got[i], want[i])
		}
	}
	if st := r.Stats(); st.Emitted != 5 || st.Ignored != 1 {
		t.Errorf("stats %+v, want 5 emitted, 1 ignored (broken.txt)", st)
	}
}

// Links and special files in an archive, named like images, are error rows
// (links are not followed); the regular members around them are read.
func TestTarLinksAreErrorRows(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []tar.Header{
		{Name: "1.jpg", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "2.jpg", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "3.jpg", Typeflag: tar.TypeLink, Linkname: "1.jpg"},
		{Name: "4.jpg", Typeflag: tar.TypeFifo},
		{Name: "dir.jpg/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "5.txt", Typeflag: tar.TypeSymlink, Linkname: "x"},
		{Name: "6.jpg", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
	} {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size == 1 {
			tw.Write([]byte(h.Name[:1]))
		}
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "links.tar")
	write(t, p, buf.String())
	r, err := Open([]string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Total(); n != 5 {
		t.Errorf("Total() = %d, want 5", n)
	}
	pre := "links.tar/"
	loc := "!read " + p + ":"
	want := []string{pre + "1.jpg=1",
		pre + "2.jpg" + loc + `2.jpg: member is a symlink to "/etc/passwd", not a regular file (links are not followed)`,
		pre + "3.jpg" + loc + `3.jpg: member is a hard link to "1.jpg", not a regular file (links are not followed)`,
		pre + "4.jpg" + loc + `4.jpg: member is a FIFO, not a regular file (links are not followed)`,
		pre + "6.jpg=6"}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// A run's output directory inside an input directory is not walked: its
// PNGs (and lock or part files) are neither inputs nor ignored files, also
// when reached through a glob or a symlink.
func TestSkipDirs(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	write(t, filepath.Join(in, "a.jpg"), "A")
	write(t, filepath.Join(in, "rec", "a.jpg.png"), "P")
	write(t, filepath.Join(in, "rec", ".lock"), "")
	write(t, filepath.Join(in, "sub", "b.jpg"), "B")
	if err := os.Symlink("rec", filepath.Join(in, "link")); err != nil {
		t.Fatal(err)
	}
	for _, inputs := range [][]string{{in}, {filepath.Join(in, "*")}} {
		r, err := Open(inputs, Options{SkipDirs: []string{filepath.Join(in, "rec"), filepath.Join(dir, "missing")}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readAll(t, r), []string{"a.jpg=A", "sub/b.jpg=B"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%v: got %q, want %q", inputs, got, want)
		}
		if st := r.Stats(); st.Ignored != 0 {
			t.Errorf("%v: stats %+v, want nothing ignored", inputs, st)
		}
	}
	// Without it, the output's files are taken.
	r, err := Open([]string{in}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 3 {
		t.Errorf("without SkipDirs: got %q, want a.jpg, rec/a.jpg.png, sub/b.jpg", got)
	}
}

// An input named directly that cannot be read gets an error naming its
// path once ("read p: not a regular file"), not once per layer.
func TestNamedInputErrorNamesPathOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.jpg")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked.jpg")
	if err := os.WriteFile(locked, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	inputs := []string{fifo}
	want := []string{"!read " + fifo + ": not a regular file but a named pipe (FIFO)"}
	if os.Geteuid() != 0 { // root reads a mode-0 file
		inputs = append(inputs, locked)
		want = append(want, "!read "+locked+": permission denied")
	}
	r, err := Open(inputs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("item %d: %q, want …%q", i, got[i], want[i])
		}
	}
}

// An input directory that is the output directory itself (embed -o d d)
// is refused as such, not as a directory without images.
func TestInputIsTheOutputDir(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jpg"), "A")
	for _, in := range []string{dir, dir + "/", filepath.Join(dir, ".")} {
		_, err := Open([]string{in}, Options{SkipDirs: []string{dir}})
		if err == nil || !strings.Contains(err.Error(), "is the run's output directory") {
			t.Errorf("input %s = output %s: %v", in, dir, err)
		}
	}
}

// A directory a walk lists in full is reported (ContainerRead) under the
// id its error item had when it could not be listed, so a rerun that can
// now list it drops that error row; one it still cannot list is not.
func TestWalkReportsListedDirectories(t *testing.T) {
	if os.Geteuid() == 0 {
		// root lists a mode-000 directory: run this test as nobody.
		asNobody(t, "TestWalkReportsListedDirectories")
		return
	}
	root := filepath.Join(t.TempDir(), "root")
	write(t, filepath.Join(root, "a.jpg"), "A")
	write(t, filepath.Join(root, "locked", "x.jpg"), "X")
	locked := filepath.Join(root, "locked")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	read := func() (items, listed []string) {
		t.Helper()
		r, err := Open([]string{root}, Options{ContainerRead: func(id string) { listed = append(listed, id) }})
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, r), listed
	}
	items, listed := read()
	if len(items) != 2 || !strings.HasPrefix(items[1], "locked!read ") || strings.Join(listed, " ") != "root" {
		t.Errorf("locked: items %q, listed %q; want locked's error item and only root listed", items, listed)
	}
	if err := os.Chmod(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	items, listed = read()
	if strings.Join(items, " ") != "a.jpg=A locked/x.jpg=X" || strings.Join(listed, " ") != "root locked" {
		t.Errorf("unlocked: items %q, listed %q; want both images and root, locked listed", items, listed)
	}
}
