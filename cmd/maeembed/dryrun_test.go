package main

import (
	"os"
	"path/filepath"
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
