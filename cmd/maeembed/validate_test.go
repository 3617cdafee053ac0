package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A mask ratio that is not a number, or that leaves the model no patch
// (0.99 of 9), is a usage error naming what is wrong, not an error row
// per image.
func TestMaskRatioUsage(t *testing.T) {
	m := filepath.Join(fixtures, "small48", "hf")
	imgs := filepath.Join(fixtures, "small48", "images")
	for ratio, want := range map[string]string{"NaN": "[0, 1)", "0.99": "9 patches", "1": "[0, 1)"} {
		code, _, stderr := maeembed(t, "reconstruct", "--mask-ratio", ratio, "-m", m, "-o", t.TempDir(), imgs)
		if code != 2 || !strings.Contains(stderr, "--mask-ratio") || !strings.Contains(stderr, want) {
			t.Errorf("--mask-ratio %s: exit %d, want 2 and a message with %q\n%s", ratio, code, want, stderr)
		}
	}
	mustRun(t, "reconstruct", "--mask-ratio", "0.88", "-m", m, "-o", t.TempDir(), imgs)
}
