package mae

import (
	"os"
	"testing"

	"github.com/maeembed/maeembed/mae/kernels"
)

// Model.Kernel says "+strassen" only for a float32 model with a layer
// large enough for Strassen–Winograd while it is on the current path (as
// MAEEMBED_STRASSEN leaves it, then forced on), and names the int8 kernel
// for int8.
func TestModelKernel(t *testing.T) {
	small := Presets["mae_vit_base_patch16"]
	small.Dim, small.Depth, small.Heads, small.MLPDim = 64, 1, 2, 256
	large := small
	large.Dim, large.Heads, large.MLPDim = 512, 8, 2048 // fc2: K = 2048, N = 512
	check := func(name string, cfg Config, prec kernels.Precision, want string) {
		t.Helper()
		m, err := New(cfg, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		if got := m.Kernel(); got != want {
			t.Errorf("%s: Kernel() = %q, want %q", name, got, want)
		}
	}
	// Unset, MAEEMBED_STRASSEN is auto: off on avx512 with full-width units.
	env := kernels.Path()
	if kernels.Strassen() {
		env += "+strassen"
	}
	check("large fp32, MAEEMBED_STRASSEN="+os.Getenv("MAEEMBED_STRASSEN"), large, kernels.FP32, env)
	defer kernels.SetStrassen(true)()
	check("small fp32", small, kernels.FP32, kernels.Path())
	check("large fp32", large, kernels.FP32, kernels.Path()+"+strassen")
	check("large int8", large, kernels.Int8, kernels.Arithmetic(kernels.Int8))
	if want := kernels.Path() + "+strassen"; kernels.Arithmetic(kernels.FP32) != want {
		t.Errorf("Arithmetic(fp32) with Strassen on = %q, want %q", kernels.Arithmetic(kernels.FP32), want)
	}
}
