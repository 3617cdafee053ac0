package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// Tar members named "a//b.jpg" beside "a/b.jpg", "../../escape.jpg" and
// "/abs/root.jpg" are each their own input under the name as stored, and
// their PNGs all land inside the output directory; a resume finds them.
func TestE2ETarMemberNamesStayInside(t *testing.T) {
	img, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	shard := filepath.Join(base, "in", "s.tar")
	if err := os.MkdirAll(filepath.Dir(shard), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(shard)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a/./b/../c.png", "a//b.png", "a/b.png", "../../escape.png", "/abs/root.png"}
	tw := tar.NewWriter(f)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(img)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(img); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "deep", "out")
	args := []string{"reconstruct", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--format", "png", "--resize", "none", "-o", out, shard}
	runCounted(t, summary{len(names), 0, 0}, args...)
	var pngs []string
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".png") && !d.IsDir() {
			pngs = append(pngs, p)
		}
		return nil
	})
	if len(pngs) != len(names) {
		t.Fatalf("PNGs %q, want %d", pngs, len(names))
	}
	for _, p := range pngs {
		if !strings.HasPrefix(p, out+string(filepath.Separator)) {
			t.Errorf("%s is outside the output %s", p, out)
		}
	}
	for _, n := range names {
		if _, err := os.Stat(sinks.PNGPath(out, "s.tar/"+n)); err != nil {
			t.Errorf("id s.tar/%s: %v", n, err)
		}
	}
	runCounted(t, summary{0, 0, len(names)}, args...)
}
