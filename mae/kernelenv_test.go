package mae

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae/kernels/kerneltest"
)

// TestKernelEnv: MAEEMBED_KERNEL, when set, chose the path these tests run
// on (and go test's cache keys on it; see kerneltest.CheckEnv).
func TestKernelEnv(t *testing.T) { kerneltest.CheckEnv(t) }

// TestBenchmarkRefusesBadKernelEnv runs a model benchmark in a child with
// a MAEEMBED_KERNEL that cannot be followed: it must fail naming the
// variable, not measure the default path under the forced path's name.
func TestBenchmarkRefusesBadKernelEnv(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.benchtime=1x",
		"-test.bench=^BenchmarkEmbed$/^vit_base_patch16$/^prec=fp32$/^batch1$")
	cmd.Env = append(os.Environ(), "MAEEMBED_KERNEL=bogus")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MAEEMBED_KERNEL=bogus") || strings.Contains(string(out), "images/s") {
		t.Errorf("BenchmarkEmbed with MAEEMBED_KERNEL=bogus: err %v, want a failure naming the variable and no figures:\n%s", err, out)
	}
}
