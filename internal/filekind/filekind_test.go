package filekind

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The kinds of real files, as os.Stat and os.Lstat report them.
func TestOf(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	fifo := filepath.Join(dir, "p")
	link := filepath.Join(dir, "l")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		stat func(string) (os.FileInfo, error)
		want string
	}{
		{file, os.Stat, "a regular file"},
		{dir, os.Stat, "a directory"},
		{fifo, os.Stat, "a named pipe (FIFO)"},
		{link, os.Lstat, "a symbolic link"},
		{"/dev/null", os.Stat, "a character device"},
	} {
		fi, err := c.stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := Of(fi.Mode()); got != c.want {
			t.Errorf("%s: %q, want %q", c.path, got, c.want)
		}
	}
}
