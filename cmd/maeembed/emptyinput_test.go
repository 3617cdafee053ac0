package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A directory input without image files is an error naming it (exit 1:
// the state of the inputs, where a glob that matches nothing is a usage
// error), and the run leaves no output directory behind.
func TestE2EEmptyInputDirectory(t *testing.T) {
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	empty := t.TempDir()
	notes := t.TempDir()
	if err := os.WriteFile(filepath.Join(notes, "readme.txt"), []byte("no images here"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{{empty, "(0 other files ignored"}, {notes, "(1 other file ignored"}} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, tc.dir}, model...)...)
		if code != 1 || !strings.Contains(stderr, tc.dir) || !strings.Contains(stderr, "no image files") || !strings.Contains(stderr, tc.want) {
			t.Errorf("embed of %s: exit %d, want an error naming it (%s)\n%s", tc.dir, code, tc.want, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("embed of %s created the output directory", tc.dir)
		}
	}
}

// A list file or stdin that names no image (only comments, or nothing) is
// the same error, before any output is created. Stdin is named in words
// ("inputs - name no image files" read badly).
func TestE2EEmptyInputList(t *testing.T) {
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	list := filepath.Join(t.TempDir(), "c.txt")
	if err := os.WriteFile(list, []byte("# c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{list}, "input " + list + " names no image files (0 other files ignored"},
		{[]string{"-"}, "the list on stdin names no image files (0 other files ignored"},
		{[]string{list, "-"}, "inputs " + list + " - (stdin) name no image files"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := maeembed(t, append(append([]string{"embed", "-o", out}, c.in...), model...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("embed of %v: exit %d, want an error with %q\n%s", c.in, code, c.want, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("embed of %v created the output directory", c.in)
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

// A directory whose only files are containers without images (another
// run's output given as the input by mistake: Parquet parts without an
// image column; an empty tar) holds no image either. That is only known
// once its files are read, so the run (and the dry run, with the same
// exit code) fails at the end, naming it, instead of exiting 0 with
// "0 images written". The output directory it made for nothing is
// removed, with the parents of it that it made (one that was there before
// stays). A shard that the inputs leave empty still succeeds, and leaves
// no new directory either.
func TestE2EInputWithoutImagesFails(t *testing.T) {
	in := filepath.Join(fixtures, "tiny32", "images")
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	prev := t.TempDir()
	runCounted(t, summary{3, 0, 0}, append([]string{"embed", "-o", prev, in}, model...)...)
	tars := t.TempDir()
	if err := os.WriteFile(filepath.Join(tars, "empty.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{prev, tars} {
		for _, args := range [][]string{{"embed"}, {"embed", "--format", "npy"}, {"reconstruct"}, {"reconstruct", "--format", "png"}} {
			// -o new/out: the run makes new/ too, and removes both.
			made := filepath.Join(t.TempDir(), "new")
			out := filepath.Join(made, "out")
			args := append(append(args[:len(args):len(args)], "-o", out, dir), model...)
			code, _, stderr := maeembed(t, args...)
			if code != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, "holds no images") || strings.Contains(stderr, "(s)") {
				t.Errorf("%v: exit %d, want 1 and an error naming %s\n%s", args, code, dir, stderr)
			}
			if _, err := os.Stat(made); err == nil {
				t.Errorf("%v: the run that wrote nothing left the directory %s it made for the output behind", args, made)
			}
			if dry, stdout, stderr := maeembed(t, append(args, "--dry-run")...); dry != code || stdout != "" {
				t.Errorf("%v --dry-run: exit %d (the run %d), listed %q\n%s", args, dry, code, stdout, stderr)
			}
		}
	}
	// A directory that was there before the run stays, empty or not.
	keep := t.TempDir()
	note := filepath.Join(t.TempDir(), "note")
	if err := os.WriteFile(note, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{keep, filepath.Dir(note)} {
		if code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, prev}, model...)...); code != 1 {
			t.Errorf("-o %s: exit %d, want 1\n%s", out, code, stderr)
		}
		if _, err := os.Stat(out); err != nil {
			t.Errorf("the run removed the existing output directory %s: %v", out, err)
		}
	}
	if _, err := os.Stat(note); err != nil {
		t.Error(err)
	}
	if _, _, stderr := maeembed(t, append([]string{"embed", "-o", filepath.Join(t.TempDir(), "out"), tars}, model...)...); !strings.Contains(stderr, "holds no images: 0 files ignored") {
		t.Errorf("the error does not count the files ignored:\n%s", stderr)
	}
	// Two inputs without images: named both, "hold".
	if _, _, stderr := maeembed(t, append([]string{"embed", "-o", filepath.Join(t.TempDir(), "out"), prev, tars}, model...)...); !strings.Contains(stderr, "inputs "+prev+" "+tars+" hold no images: 1 file ignored") {
		t.Errorf("two inputs without images:\n%s", stderr)
	}
	// 3 images, 4 shards: the last shard has nothing to do, and that is
	// fine; into a new directory, it leaves none.
	runCounted(t, summary{0, 0, 0}, append([]string{"embed", "--shard", "3/4", "-o", t.TempDir(), in}, model...)...)
	out := filepath.Join(t.TempDir(), "out")
	runCounted(t, summary{0, 0, 0}, append([]string{"embed", "--shard", "3/4", "-o", out, in}, model...)...)
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the empty shard left the output directory %s behind", out)
	}
}
