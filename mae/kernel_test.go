package mae

import (
	"testing"

	"github.com/maeembed/maeembed/mae/kernels"
)

// Model.Kernel says "+strassen" only for a float32 model with a layer
// large enough for Strassen–Winograd, and names the int8 kernel for int8.
func TestModelKernel(t *testing.T) {
	defer kernels.SetStrassen(true)()
	small := Presets["mae_vit_base_patch16"]
	small.Dim, small.Depth, small.Heads, small.MLPDim = 64, 1, 2, 256
	large := small
	large.Dim, large.Heads, large.MLPDim = 512, 8, 2048 // fc2: K = 2048, N = 512
	for _, tc := range []struct {
		name string
		cfg  Config
		prec kernels.Precision
		want string
	}{
		{"small fp32", small, kernels.FP32, kernels.Path()},
		{"large fp32", large, kernels.FP32, kernels.Arithmetic(kernels.FP32)},
		{"large int8", large, kernels.Int8, kernels.Arithmetic(kernels.Int8)},
	} {
		m, err := New(tc.cfg, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPrecision(tc.prec); err != nil {
			t.Fatal(err)
		}
		if got := m.Kernel(); got != tc.want {
			t.Errorf("%s: Kernel() = %q, want %q", tc.name, got, tc.want)
		}
	}
	if want := kernels.Path() + "+strassen"; kernels.Arithmetic(kernels.FP32) != want {
		t.Errorf("Arithmetic(fp32) with Strassen on = %q, want %q", kernels.Arithmetic(kernels.FP32), want)
	}
}
