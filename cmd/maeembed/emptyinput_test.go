package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A directory input without image files is an error naming it, as a glob
// that matches nothing is, and the run leaves no output directory behind.
func TestE2EEmptyInputDirectory(t *testing.T) {
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	empty := t.TempDir()
	notes := t.TempDir()
	if err := os.WriteFile(filepath.Join(notes, "readme.txt"), []byte("no images here"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{{empty, "0 other files"}, {notes, "1 other files"}} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, tc.dir}, model...)...)
		if code == 0 || !strings.Contains(stderr, tc.dir) || !strings.Contains(stderr, "no image files") || !strings.Contains(stderr, tc.want) {
			t.Errorf("embed of %s: exit %d, want an error naming it (%s)\n%s", tc.dir, code, tc.want, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("embed of %s created the output directory", tc.dir)
		}
	}
}

// A list file or stdin that names no image (only comments, or nothing) is
// the same error, before any output is created.
func TestE2EEmptyInputList(t *testing.T) {
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	list := filepath.Join(t.TempDir(), "c.txt")
	if err := os.WriteFile(list, []byte("# c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{list, "-"} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, in}, model...)...)
		// " - " rather than "-": every stderr holds a dash, so naming stdin
		// is only checked with the spaces around it.
		if code == 0 || !strings.Contains(stderr, in) || !strings.Contains(stderr, " "+in+" ") || !strings.Contains(stderr, "no image files") {
			t.Errorf("embed of %s: exit %d, want an error naming it\n%s", in, code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("embed of %s created the output directory", in)
		}
	}
}

// A run whose model does not open (or does not fit its options) fails
// before writing anything: it leaves no new output directory, and an
// existing one stays with what it held.
func TestE2EMissingModelLeavesNoOutput(t *testing.T) {
	in := filepath.Join(fixtures, "tiny32", "images")
	model := filepath.Join(fixtures, "tiny32", "hf")
	for _, args := range [][]string{
		{"embed", "-m", filepath.Join(t.TempDir(), "nonexist")},
		{"reconstruct", "-m", filepath.Join(t.TempDir(), "nonexist")},
		{"reconstruct", "-m", model, "--memory-budget", "1"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := maeembed(t, append(args, "-o", out, in)...)
		if code == 0 {
			t.Errorf("%v: exit 0, want a failure\n%s", args, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: the failed run left the output directory %s", args, out)
		}
		// A directory that was there before the run stays, as it was.
		keep := t.TempDir()
		note := filepath.Join(keep, "note.txt")
		if err := os.WriteFile(note, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		empty := t.TempDir()
		for _, dir := range []string{keep, empty} {
			if code, _, stderr := maeembed(t, append(args, "-o", dir, in)...); code == 0 {
				t.Errorf("%v -o %s: exit 0\n%s", args, dir, stderr)
			}
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("%v: the failed run removed the existing %s: %v", args, dir, err)
			}
		}
		if _, err := os.Stat(note); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
