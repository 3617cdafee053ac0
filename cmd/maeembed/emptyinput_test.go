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
