package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// TestE2EMemoryBudget: decompression bombs under the pixel limit (a 38-byte
// WebP and a 35-byte GIF claiming 13000×13000, 1.35 and 0.7 GB to decode)
// become error rows under the memory budget, decided from their headers,
// while the good image beside them is embedded; the summary reports the
// peak held. An input larger than the whole budget is an error row; a
// malformed --memory-budget is a usage error.
func TestE2EMemoryBudget(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	for _, f := range []string{"bomb-vp8l-13000.webp", "bomb-gif-screen-13000.gif"} {
		copyFile(t, filepath.Join("../../stages/testdata/refused", f), filepath.Join(root, f))
	}
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "good.png"))
	out := t.TempDir()
	stderr := runCounted(t, summary{1, 2, 0}, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--workers", "4", "--memory-budget", "256MiB", "-o", out, root)
	if !strings.Contains(stderr, "of a 256 MiB budget") {
		t.Errorf("summary does not report the budget:\n%s", stderr)
	}
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if n := tbl.NumRows(); n != 2 {
		t.Fatalf("%d error rows, want 2", n)
	}
	for i := 0; i < 2; i++ {
		msg := tbl.Column(2).Data().Chunk(0).ValueStr(i)
		if !strings.Contains(msg, "memory budget") || !strings.Contains(msg, "13000x13000") {
			t.Errorf("error row %d: %q, want the budget refusal naming the size", i, msg)
		}
	}
	// An input larger than the whole budget is its own error row too (a
	// 2 MiB file under a 1 MiB budget; a budget below the batch's tensors
	// is refused before any input, see TestBatchSizeAgainstBudget).
	good, err := os.ReadFile(filepath.Join(root, "good.png"))
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.png")
	if err := os.WriteFile(big, append(good, make([]byte, 2<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	out = t.TempDir()
	code, _, stderr := maeembed(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--memory-budget", "1MiB", "--batch-size", "1", "-o", out, big)
	if code == 0 || !strings.Contains(stderr, "larger than the whole memory budget") {
		t.Errorf("a 2 MiB input under a 1 MiB budget: exit %d (want non-zero: every input failed)\n%s", code, stderr)
	}
	code, _, stderr = maeembed(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--memory-budget", "lots", "-o", t.TempDir(), root)
	if code != 2 || !strings.Contains(stderr, "--memory-budget") {
		t.Errorf("--memory-budget lots: exit %d, %s", code, stderr)
	}
}

// A batch size is a usage error when it is absurd or when the tensors the
// run holds at once (the model's batch, the model inputs queued around it
// and the results in flight) exceed the memory budget (the message names
// both numbers), before the model stage sizes its buffers; a zero budget
// is refused with a message, not "<nil>".
func TestBatchSizeAgainstBudget(t *testing.T) {
	m := filepath.Join(fixtures, "small48", "hf")
	imgs := filepath.Join(fixtures, "small48", "images")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"embed", "--batch-size", "70000"}, []string{"--batch-size", "70000", "65536"}},
		{[]string{"embed", "--batch-size", "5000", "--memory-budget", "16MiB"}, []string{"--batch-size", "5000", "MiB", "16 MiB", "--memory-budget"}},
		{[]string{"reconstruct", "--batch-size", "5000", "--memory-budget", "16MiB"}, []string{"--batch-size", "5000", "16 MiB"}},
		{[]string{"embed", "--memory-budget", "0"}, []string{"--memory-budget", "0", "positive"}},
		// One batch fits (5.3 MB for embed, 7.4 MB for reconstruct's PNG
		// panels) but not the 515 model inputs queued around it: 17.9 MB
		// for embed (the dry run checks it too), 49.7 MB for reconstruct,
		// whose results hold images too.
		{[]string{"embed", "--batch-size", "64", "--workers", "2", "--memory-budget", "16MiB"}, []string{"--memory-budget 16 MiB", "--batch-size 64", "--workers 2", "515 model inputs", "(17875968 bytes)"}},
		{[]string{"embed", "--dry-run", "--batch-size", "64", "--workers", "2", "--memory-budget", "16MiB"}, []string{"--memory-budget 16 MiB", "--batch-size 64", "(17875968 bytes)"}},
		{[]string{"reconstruct", "--format", "png", "--batch-size", "64", "--workers", "2", "--memory-budget", "16MiB"}, []string{"--memory-budget 16 MiB", "--batch-size 64", "bytes)"}},
	} {
		args := append(tc.args, "-m", m, "-o", t.TempDir(), imgs)
		code, _, stderr := maeembed(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) || strings.Contains(stderr, "<nil>") {
				t.Errorf("%v: stderr lacks %q (or says <nil>):\n%s", tc.args, w, stderr)
			}
		}
	}
	// What fits is run (9.0 MB).
	mustRun(t, "embed", "--batch-size", "32", "--workers", "2", "--memory-budget", "16MiB", "-m", m, "-o", t.TempDir(), imgs)
}
