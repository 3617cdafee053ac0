package kernels_test

import (
	"testing"

	"github.com/maeembed/maeembed/mae/kernels/kerneltest"
)

// TestKernelEnv: MAEEMBED_KERNEL, when set, chose the path these tests run
// on (and go test's cache keys on it; see kerneltest.CheckEnv).
func TestKernelEnv(t *testing.T) { kerneltest.CheckEnv(t) }
