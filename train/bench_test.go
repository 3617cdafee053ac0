package train

import (
	"math/rand/v2"
	"testing"

	"github.com/maeembed/maeembed/mae"
)

// One optimiser step of the built-in architecture (ViT-Tiny MAE at 224) on
// a batch of 16 random images: forward, backward and AdamW.
func BenchmarkStepTiny224(b *testing.B) {
	cfg := Architectures()[TinyName]
	m, err := mae.New(cfg, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := DefaultRecipe()
	r.BatchSize = 16
	tr, err := NewTrainer(m, r)
	if err != nil {
		b.Fatal(err)
	}
	n := r.BatchSize
	rng := rand.New(rand.NewPCG(1, 2))
	patches := make([]float32, n*cfg.NumPatches()*cfg.PatchDim())
	for i := range patches {
		patches[i] = float32(rng.NormFloat64())
	}
	noise := make([]float32, n*cfg.NumPatches())
	for i := range noise {
		noise[i] = rng.Float32()
	}
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Accumulate(patches, noise, n); err != nil {
			b.Fatal(err)
		}
		tr.Opt.Update(1e-4)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}
