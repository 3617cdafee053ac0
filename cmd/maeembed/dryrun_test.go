package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dry-run refuses what the run refuses (a missing model, an unknown
// precision, a budget below one batch, an output written with another
// pool), with the same exit code, listing nothing and creating nothing.
func TestE2EDryRunChecksLikeTheRun(t *testing.T) {
	in := filepath.Join(fixtures, "tiny32", "images")
	model := filepath.Join(fixtures, "tiny32", "hf")
	mean := t.TempDir()
	runCounted(t, summary{3, 0, 0}, "embed", "-m", model, "--pool", "mean", "-o", mean, in)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"no model", []string{"-m", filepath.Join(t.TempDir(), "nonexist")}},
		{"precision", []string{"-m", model, "--precision", "fp16"}},
		{"budget", []string{"-m", model, "--memory-budget", "1"}},
		{"pool", []string{"-m", model, "--pool", "cls", "-o", mean}},
	} {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"embed", "-o", out}, c.args...)
		args = append(args, in)
		code, stdout, stderr := maeembed(t, append(args, "--dry-run")...)
		if code == 0 || stdout != "" {
			t.Errorf("%s: dry run exit %d, listed %q\n%s", c.name, code, stdout, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: the dry run created %s", c.name, out)
		}
		if want, _, _ := maeembed(t, args...); code != want {
			t.Errorf("%s: dry run exit %d, the run %d", c.name, code, want)
		}
	}
	// reconstruct too checks its model and options first.
	for _, arg := range []string{"--precision=fp16", "--memory-budget=1"} {
		out := filepath.Join(t.TempDir(), "out")
		args := []string{"reconstruct", "-m", model, arg, "-o", out, in}
		code, stdout, stderr := maeembed(t, append(args, "--dry-run")...)
		if want, _, _ := maeembed(t, args...); code != want || code == 0 || stdout != "" {
			t.Errorf("reconstruct %s: dry run exit %d (the run %d), listed %q\n%s", arg, code, want, stdout, stderr)
		}
	}
	// A compatible output: the dry run lists what is left (nothing).
	if code, stdout, stderr := maeembed(t, "embed", "--dry-run", "-m", model, "--pool", "mean", "-o", mean, in); code != 0 || stdout != "" {
		t.Errorf("dry run on a finished output: exit %d, listed %q\n%s", code, stdout, stderr)
	}
}

// A dry run checks the model from its checkpoint's headers, without
// reading the weights: a file cut short (its header describes more data
// than it holds) is refused as the run refuses it, with the run's exit
// code, for embed and reconstruct; damage only the data shows (a zip
// record's checksum) is the run's to find, and the dry run lists the
// inputs.
func TestDryRunReadsHeadersOnly(t *testing.T) {
	in := filepath.Join(fixtures, "tiny32", "images")
	hf := filepath.Join(fixtures, "tiny32", "hf")
	cut := t.TempDir()
	copyFile(t, filepath.Join(hf, "config.json"), filepath.Join(cut, "config.json"))
	st, err := os.ReadFile(filepath.Join(hf, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cut, "model.safetensors"), st[:len(st)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"embed", "reconstruct"} {
		args := []string{cmd, "-m", cut, "-o", filepath.Join(t.TempDir(), "out"), in}
		code, stdout, stderr := maeembed(t, append(args, "--dry-run")...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, "truncated") {
			t.Errorf("%s --dry-run of a cut checkpoint: exit %d, listed %q\n%s", cmd, code, stdout, stderr)
		}
		if run, _, runErr := maeembed(t, args...); run != code || !strings.Contains(runErr, "truncated") {
			t.Errorf("%s: dry run exit %d, the run %d\n%s", cmd, code, run, runErr)
		}
	}

	// One byte flipped inside a storage record of a .pth.
	b, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	flipped := false
	for _, f := range zr.File {
		if strings.Contains(f.Name, "/data/") && f.UncompressedSize64 > 64 && !flipped {
			off, _ := f.DataOffset()
			b[off+10] ^= 0x40
			flipped = true
		}
	}
	bad := filepath.Join(t.TempDir(), "model.pth")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"embed", "-m", bad, "-o", filepath.Join(t.TempDir(), "out"), in}
	if code, stdout, stderr := maeembed(t, append(args, "--dry-run")...); code != 0 || strings.Count(stdout, "\n") != 3 {
		t.Errorf("dry run with a checksum error in the data: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	if code, _, stderr := maeembed(t, args...); code == 0 || !strings.Contains(stderr, "checksum") {
		t.Errorf("the run with a checksum error in the data: exit %d\n%s", code, stderr)
	}
}
