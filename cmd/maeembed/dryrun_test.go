package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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
	// A compatible output: the dry run lists what is left (nothing), and
	// says so as the rerun would.
	if code, stdout, stderr := maeembed(t, "embed", "--dry-run", "-m", model, "--pool", "mean", "-o", mean, in); code != 0 || stdout != "" ||
		!strings.Contains(stderr, "embed: nothing to do: every input was already done\n") {
		t.Errorf("dry run on a finished output: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	rec := t.TempDir()
	mustRun(t, "reconstruct", "-m", model, "-o", rec, in)
	if code, stdout, stderr := maeembed(t, "reconstruct", "--dry-run", "-m", model, "-o", rec, in); code != 0 || stdout != "" ||
		!strings.Contains(stderr, "reconstruct: nothing to do: every input was already done\n") {
		t.Errorf("reconstruct dry run on a finished output: exit %d, listed %q\n%s", code, stdout, stderr)
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

// A dry run downloads nothing and writes nothing into the cache. A preset
// not in the cache yet (here served by a local server standing in for the
// official site) is reported: from where, to where, how big (the server's
// answer to a HEAD request, which transfers no content), and the model is
// checked from the preset's known architecture and parts, so an option
// the run would refuse (--pool global on a pretrained encoder) is refused
// with the run's exit code. The built-in model, not unpacked yet, is
// reported the same way. With the server down (nothing listens on its
// port), the run's download would fail: the dry run exits 1 as the run
// does, with the run's advice, and lists nothing.
func TestDryRunFetchesNothing(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	body, err := os.ReadFile(filepath.Join(tiny, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	var gets, heads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pretrain/mae_pretrain_vit_base.pth", "/visualize/mae_visualize_vit_base.pth":
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodHead {
			heads.Add(1)
		} else {
			gets.Add(1)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	}))
	defer srv.Close()
	t.Setenv("MAEEMBED_HUB_URL", srv.URL)
	cache := filepath.Join(t.TempDir(), "cache")
	in := filepath.Join(tiny, "images")
	size := strconv.Itoa(len(body)) + " bytes"
	for _, c := range []struct{ cmd, file string }{{"embed", "pretrain/mae_pretrain_vit_base.pth"}, {"reconstruct", "visualize/mae_visualize_vit_base.pth"}} {
		code, stdout, stderr := maeembed(t, c.cmd, "--dry-run", "-m", "mae_vit_base_patch16", "--cache-dir", cache, in)
		if code != 0 || strings.Count(stdout, "\n") != 3 {
			t.Errorf("%s --dry-run with a preset not in the cache: exit %d, listed %q\n%s", c.cmd, code, stdout, stderr)
		}
		for _, want := range []string{srv.URL + "/" + c.file, filepath.Join(cache, filepath.FromSlash(c.file)), size, "nothing was downloaded"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s --dry-run does not say %q:\n%s", c.cmd, want, stderr)
			}
		}
	}
	if code, stdout, stderr := maeembed(t, "embed", "--dry-run", "--pool", "global", "-m", "mae_vit_base_patch16", "--cache-dir", cache, in); code != 2 || stdout != "" || !strings.Contains(stderr, "fc_norm") {
		t.Errorf("--pool global on a pretrained preset: dry run exit %d, want 2 (the run's), listed %q\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := maeembed(t, "embed", "--dry-run", "--cache-dir", cache, in)
	if code != 0 || strings.Count(stdout, "\n") != 3 || !strings.Contains(stderr, "built-in model is not unpacked yet") || !strings.Contains(stderr, cache) {
		t.Errorf("--dry-run with the built-in model not unpacked: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	if g := gets.Load(); g != 0 {
		t.Errorf("the dry runs downloaded %d times", g)
	}
	if heads.Load() == 0 {
		t.Error("the dry runs did not ask the server for the size")
	}
	if _, err := os.Lstat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry runs wrote into the cache: %v", err)
	}

	// A --config of another architecture than the preset's is refused as
	// the run refuses it once it has the file (whose tensors do not match
	// it), not listed.
	cfg := filepath.Join(tiny, "hf", "config.json")
	code, stdout, stderr = maeembed(t, "embed", "--dry-run", "-m", "mae_visualize_vit_base", "--config", cfg, "--cache-dir", cache, in)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "does not match") {
		t.Errorf("--dry-run with a tiny --config for a ViT-B preset: exit %d, want 1, listed %q\n%s", code, stdout, stderr)
	}

	// An output with results from the built-in model (unpacked by a run
	// into another cache): the dry run checks it as the run would, but
	// for the weights' fingerprint, which needs the weights, and says so.
	out := t.TempDir()
	mustRun(t, "embed", "--cache-dir", t.TempDir(), "-o", out, in)
	code, stdout, stderr = maeembed(t, "embed", "--dry-run", "--cache-dir", cache, "-o", out, in)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "compared once the model is on this machine") {
		t.Errorf("--dry-run into an output with results, model not unpacked: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = maeembed(t, "embed", "--dry-run", "--pool", "cls", "--cache-dir", cache, "-o", out, in)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "maeembed.pool") {
		t.Errorf("--dry-run with another pool into that output: exit %d, want 1, listed %q\n%s", code, stdout, stderr)
	}
	// The same for reconstruct's output, which records its own settings.
	rout := t.TempDir()
	mustRun(t, "reconstruct", "--cache-dir", t.TempDir(), "--seed", "1", "--format", "npy", "-o", rout, in)
	code, stdout, stderr = maeembed(t, "reconstruct", "--dry-run", "--seed", "1", "--format", "npy", "--cache-dir", cache, "-o", rout, in)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "compared once the model is on this machine") {
		t.Errorf("reconstruct --dry-run into an output with results, model not unpacked: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = maeembed(t, "reconstruct", "--dry-run", "--seed", "2", "--format", "npy", "--cache-dir", cache, "-o", rout, in)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "maeembed.seed") {
		t.Errorf("reconstruct --dry-run with another seed into that output: exit %d, want 1, listed %q\n%s", code, stdout, stderr)
	}
	if _, err := os.Lstat(cache); !errors.Is(err, os.ErrNotExist) || gets.Load() != 0 {
		t.Errorf("the dry runs wrote into the cache (%v) or downloaded (%d)", err, gets.Load())
	}

	srv.Close()
	code, stdout, stderr = maeembed(t, "embed", "--dry-run", "-m", "mae_vit_base_patch16", "--cache-dir", cache, in)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "connection refused") || !strings.Contains(stderr, "without network access to it") {
		t.Errorf("--dry-run with the server down: exit %d, want 1, listed %q\n%s", code, stdout, stderr)
	}
}

// A dry run exits with the status its run would end with wherever that is
// known before processing, after its listing: a rerun that would fail
// having nothing to do (every input it skips had failed), a rerun with
// --fail-on-error that skips an earlier run's failures (with inputs left
// to process or not), and --resume=false into an output that holds
// outputs (the run's refusal). Each with the run's message.
func TestE2EDryRunExitsAsTheRunEnds(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	for _, f := range []string{"good.png", "later.tif"} { // (PNG data: decoders go by content)
		copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, f))
	}
	if err := os.WriteFile(filepath.Join(root, "bad.jpg"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	out := t.TempDir()
	args := func(more ...string) []string {
		return append(append([]string{"embed", "-o", out, root}, model...), more...)
	}
	// The first run takes bad.jpg and good.png only: later.tif is left.
	runCounted(t, summary{1, 1, 0}, append(args(), "--extensions", "jpg,png")...)
	for _, c := range []struct {
		name   string
		more   []string
		listed int
		want   string
	}{
		{"fail-on-error, inputs left", []string{"--fail-on-error"}, 1, "1 input failed in an earlier run"},
		{"fail-on-error, nothing left", []string{"--fail-on-error", "--extensions", "jpg,png"}, 0, "1 input failed in an earlier run"},
		{"resume=false", []string{"--resume=false"}, 3, "--resume=false would write their ids a second time"},
	} {
		code, stdout, stderr := maeembed(t, append(args(c.more...), "--dry-run")...)
		if code != 1 || strings.Count(stdout, "\n") != c.listed || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: dry run exit %d, listed %q, want exit 1 after %d lines, with %q\n%s", c.name, code, stdout, c.listed, c.want, stderr)
		}
		if run, _, runErr := maeembed(t, args(c.more...)...); run != code || !strings.Contains(runErr, c.want) {
			t.Errorf("%s: dry run exit %d, the run %d\n%s", c.name, code, run, runErr)
		}
	}

	// A run in which every input failed: its rerun fails, having nothing
	// to do, and so does the dry run, after saying there is nothing to do.
	bad := filepath.Join(t.TempDir(), "in")
	copyFile(t, filepath.Join(root, "bad.jpg"), filepath.Join(bad, "bad.jpg"))
	failed := t.TempDir()
	all := append([]string{"embed", "-o", failed, bad}, model...)
	if code, _, stderr := maeembed(t, all...); code != 1 {
		t.Fatalf("the run of bad.jpg alone: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := maeembed(t, append(all, "--dry-run")...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "nothing to do: every input was already done, 1 of them as errors") ||
		!strings.Contains(stderr, "the only input failed in an earlier run") {
		t.Errorf("dry run of a rerun of an all-failed run: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	if run, _, _ := maeembed(t, all...); run != code {
		t.Errorf("all failed: dry run exit %d, the rerun %d", code, run)
	}
	// Without such an ending the dry run exits 0 (later.tif was written
	// by the first case's run).
	if code, stdout, stderr := maeembed(t, append(args(), "--dry-run")...); code != 0 || stdout != "" || !strings.Contains(stderr, "nothing to do") {
		t.Errorf("plain dry run: exit %d, listed %q\n%s", code, stdout, stderr)
	}
}

// --format takes any letter case, as --precision and MAEEMBED_KERNEL do.
func TestFormatAnyCase(t *testing.T) {
	in := filepath.Join(fixtures, "tiny32", "images")
	out := t.TempDir()
	mustRun(t, "embed", "--format", "NPY", "-o", out, in)
	if _, err := os.Stat(filepath.Join(out, "embeddings.npy")); err != nil {
		t.Errorf("embed --format NPY: %v", err)
	}
	rout := t.TempDir()
	mustRun(t, "reconstruct", "--format", "Png", "-o", rout, in)
	if m, _ := filepath.Glob(filepath.Join(rout, "*.png")); len(m) == 0 {
		t.Errorf("reconstruct --format Png wrote no PNG in %s", rout)
	}
}
