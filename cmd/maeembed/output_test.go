package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Outputs shared between runs: a resume must continue the same run (same
// model however spelled, same inputs, same format and sharding), and
// anything else is refused with a message naming the remedy, never a
// silent skip or a second copy of an id.

// tinyImages writes the tiny fixture images named names into dir, each a
// different image.
func tinyImages(t *testing.T, dir string, names ...string) {
	t.Helper()
	for i, n := range names {
		copyFile(t, filepath.Join(fixtures, "tiny32", "images", []string{"img_000.png", "img_001.png", "img_002.png"}[i%3]), filepath.Join(dir, n))
	}
}

func embedArgs(out string, more ...string) []string {
	return append([]string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "-o", out}, more...)
}

// The model path spelled with a trailing slash, or through a symlink,
// resumes the run.
func TestResumeModelSpelledOtherwise(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png")
	hf, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "model")
	if err := os.Symlink(hf, link); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "embed", "-m", hf, "--resize", "none", "-o", out, filepath.Join(in, "a.png"), filepath.Join(in, "b.png"))
	for _, m := range []string{hf + "/", link, filepath.Join(fixtures, "tiny32", "hf")} {
		code, _, stderr := maeembed(t, "embed", "-m", m, "--resize", "none", "-o", out, filepath.Join(in, "a.png"), filepath.Join(in, "b.png"))
		if code != 0 || !strings.Contains(stderr, "nothing to do") {
			t.Errorf("resume with -m %s: exit %d\n%s", m, code, stderr)
		}
	}
}

// d1/x.png and d2/x.png have the same id: a run over d2 into d1's output
// would skip x.png as done. It is refused, naming the inputs and the
// remedy; the same inputs spelled otherwise resume.
func TestResumeOtherInputsRefused(t *testing.T) {
	root := t.TempDir()
	d1, d2, out := filepath.Join(root, "d1"), filepath.Join(root, "d2"), filepath.Join(root, "out")
	tinyImages(t, d1, "x.png", "y.png")
	tinyImages(t, d2, "z.png", "x.png")
	mustRun(t, embedArgs(out, d1)...)
	code, _, stderr := maeembed(t, embedArgs(out, d2)...)
	if code == 0 || !strings.Contains(stderr, d1) || !strings.Contains(stderr, d2) || !strings.Contains(stderr, "own output directory") {
		t.Errorf("a run over other inputs into %s: exit %d, want a refusal naming both inputs and the remedy\n%s", out, code, stderr)
	}
	wd, _ := os.Getwd()
	rel, _ := filepath.Rel(wd, d1)
	for _, in := range []string{d1 + "/", rel} {
		code, _, stderr := maeembed(t, embedArgs(out, in)...)
		if code != 0 || !strings.Contains(stderr, "nothing to do") {
			t.Errorf("resume with input %s: exit %d\n%s", in, code, stderr)
		}
	}
	// Each input set in its own directory: every image embedded.
	out2 := filepath.Join(root, "out2")
	mustRun(t, embedArgs(out2, d2)...)
	if got := visibleIDs(t, out2); got["x.png"] != 1 || got["z.png"] != 1 {
		t.Errorf("ids of d2: %v", got)
	}
}
