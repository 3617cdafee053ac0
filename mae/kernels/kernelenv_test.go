package kernels

import (
	"os"
	"strings"
	"testing"
)

// TestKernelEnv checks that MAEEMBED_KERNEL, when set, chose the path.
// It also reads the variable while the test runs: init reads it before go
// test starts recording environment reads, so without this read a run with
// another MAEEMBED_KERNEL would reuse a cached result of a different path.
func TestKernelEnv(t *testing.T) {
	env := strings.TrimSpace(os.Getenv("MAEEMBED_KERNEL"))
	if env == "" {
		return
	}
	if err := EnvError(); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(Path(), env) {
		t.Errorf("MAEEMBED_KERNEL=%s, path in use %s", env, Path())
	}
}
