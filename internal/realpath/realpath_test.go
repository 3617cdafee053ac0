package realpath

import (
	"os"
	"path/filepath"
	"testing"
)

// Spellings of one directory and a link to it give one path; a link
// followed by ".." leads to the target's parent; a missing path is an
// error.
func TestOf(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(root, "a", "m")
	if err := os.MkdirAll(m, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(m, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	for _, p := range []string{m, "a/m", "./a/m/", "link", filepath.Join(root, "link") + "/"} {
		if got, err := Of(p); err != nil || got != m {
			t.Errorf("Of(%q) = %q, %v; want %q", p, got, err, m)
		}
	}
	if got, err := Of("link/.."); err != nil || got != filepath.Join(root, "a") {
		t.Errorf(`Of("link/..") = %q, %v; want the target's parent`, got, err)
	}
	if _, err := Of("missing"); err == nil {
		t.Error("a missing path gave no error")
	}
}
