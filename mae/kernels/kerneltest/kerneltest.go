// Package kerneltest holds test helpers shared by the packages that run
// the kernels.
package kerneltest

import (
	"os"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae/kernels"
)

// CheckEnv checks that MAEEMBED_KERNEL, when set, chose the kernel path
// the calling package's tests run on. It also reads the variable while the
// test runs: the kernels' init reads it before go test starts recording
// environment reads, so without this read a run with another
// MAEEMBED_KERNEL would reuse a cached result of a different path. Each
// package whose results depend on the path calls it from a test.
func CheckEnv(t testing.TB) {
	t.Helper()
	env := strings.TrimSpace(os.Getenv("MAEEMBED_KERNEL"))
	if env == "" {
		return
	}
	if err := kernels.EnvError(); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(kernels.Path(), env) {
		t.Errorf("MAEEMBED_KERNEL=%s, path in use %s", env, kernels.Path())
	}
}
