package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A full disk is no bad input: in every format of reconstruct (PNG, which
// goes on past one file's error, too) it ends the run with exit status 1
// and no error rows, and a rerun with room resumes (PNG, Parquet) or
// starts over (npy, which publishes only at the end), as its summary
// says, naming the write stage once. The child runs under a file size limit (EFBIG), which fails
// writes as a full disk does (ENOSPC) without mounting one.
func TestStorageFailureEndsRun(t *testing.T) {
	if runEnvChild() {
		return
	}
	model, images := filepath.Join(fixtures, "small48", "hf"), filepath.Join(fixtures, "small48", "images")
	for _, format := range []string{"png", "npy", "parquet"} {
		out := filepath.Join(t.TempDir(), "o")
		args := fmt.Sprintf("reconstruct -m %s --format %s -o %s %s", model, format, out, images)
		got := envChild(t, "TestStorageFailureEndsRun", "MAEEMBED_TEST_FSIZE=4096", args)
		if !strings.Contains(got, "code=1\n") || !strings.Contains(got, "file too large") || strings.Contains(got, "input failed") ||
			strings.Contains(got, "write: write:") { // "stage write: " names the stage, once
			t.Errorf("%s onto a full disk:\n%s", format, got)
		}
		if format == "npy" && (!strings.Contains(got, "not published (an npy set is published only when its run ends, so a rerun processes them again)") ||
			strings.Contains(got, "rerun to resume")) {
			t.Errorf("npy onto a full disk: the summary does not say the rerun starts over:\n%s", got)
		}
		code, _, stderr := maeembed(t, strings.Fields(args)...)
		if code != 0 || !strings.Contains(stderr, "3 images written, 0 errors, 0 skipped") {
			t.Errorf("%s: the rerun with room: exit %d\n%s", format, code, stderr)
		}
	}
}
