package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/maeembed/maeembed/internal/busyloop"
)

// BenchmarkBlockUnderLoad runs one ViT-B/16 encoder block (LayerNorm,
// qkv, attention, proj, LayerNorm, fc1 + GELU, fc2) at batch 1 and 8,
// alone and with a busy-loop process competing for the cores (hog=1): how
// much the parallel split loses when a worker is descheduled. Compare
// wall time (ns/op) between builds with bench/split_under_load.sh.
func BenchmarkBlockUnderLoad(b *testing.B) {
	const d, mlp, heads = 768, 3072, 12
	r := rand.New(rand.NewPCG(1, 1))
	qkvW, projW := PackLinear(randSlice(r, 3*d*d), 3*d, d), PackLinear(randSlice(r, d*d), d, d)
	fc1W, fc2W := PackLinear(randSlice(r, mlp*d), mlp, d), PackLinear(randSlice(r, d*mlp), d, mlp)
	bias, gamma, beta := randSlice(r, mlp), randSlice(r, d), randSlice(r, d)
	for _, batch := range []int{1, 8} {
		rows := batch * 197
		x, h := randSlice(r, rows*d), make([]float32, rows*d)
		qkv, att, hid := make([]float32, rows*3*d), make([]float32, rows*d), make([]float32, rows*mlp)
		block := func() {
			LayerNorm(h, x, rows, d, gamma, beta, 1e-6)
			Linear(qkv, h, rows, qkvW, bias, ActNone, nil)
			Attention(att, qkv, batch, 197, heads, d/heads)
			Linear(h, att, rows, projW, bias, ActNone, nil)
			LayerNorm(h, h, rows, d, gamma, beta, 1e-6)
			Linear(hid, h, rows, fc1W, bias, ActGELU, nil)
			Linear(h, hid, rows, fc2W, bias, ActNone, nil)
		}
		for _, hog := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch%d/hog=%v", batch, hog), func(b *testing.B) {
				block()
				if hog {
					busyloop.Start(b)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					block()
				}
			})
		}
	}
}
