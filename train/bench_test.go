package train

import (
	"image"
	"math/rand/v2"
	"testing"

	"github.com/maeembed/maeembed/mae"
)

// benchStep times optimiser steps (forward, backward, AdamW) of cfg on a
// batch of n random images, as bench/pretrain_vs_torch.sh compares them
// with the PyTorch reference.
func benchStep(b *testing.B, cfg mae.Config, n int) {
	m, err := mae.New(cfg, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := DefaultRecipe()
	r.BatchSize = n
	tr, err := NewTrainer(m, r)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	patches := make([]float32, n*cfg.NumPatches()*cfg.PatchDim())
	for i := range patches {
		patches[i] = float32(rng.NormFloat64())
	}
	noise := make([]float32, n*cfg.NumPatches())
	for i := range noise {
		noise[i] = rng.Float32()
	}
	step := func() {
		if _, err := tr.Accumulate(patches, noise, n); err != nil {
			b.Fatal(err)
		}
		tr.Opt.Update(1e-4)
	}
	step() // warm-up: first-touch of the optimiser state and buffers
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}

// The built-in architecture (ViT-Tiny MAE at 224), batch 16.
func BenchmarkStepTiny224(b *testing.B) { benchStep(b, Architectures()[TinyName], 16) }

// The paper's ViT-B MAE (decoder 512×8) at 224, batch 8.
func BenchmarkStepBase224B8(b *testing.B) { benchStep(b, mae.Presets["mae_vit_base_patch16"], 8) }

// BenchmarkBatcherFill fills batches of 16 augmented 224² crops (the
// built-in model's recipe) from 32 images 448×336: allocs/op is per batch.
// go test ./train -run '^$' -bench BatcherFill -benchmem
func BenchmarkBatcherFill(b *testing.B) {
	c := Architectures()[TinyName]
	d := &Dataset{Size: c.ImageSize, Augment: true}
	for k := 0; k < 32; k++ {
		img := image.NewNRGBA(image.Rect(0, 0, 448, 336))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*7+k) | 3
		}
		d.Images = append(d.Images, img)
	}
	const n = 16
	bt := &Batcher{Data: d, Cfg: c, Seed: 1, Batch: n}
	patches := make([]float32, n*c.NumPatches()*c.PatchDim())
	noise := make([]float32, n*c.NumPatches())
	order := EpochOrder(1, 0, len(d.Images))
	bt.Fill(patches, noise, order, 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		bt.Fill(patches, noise, order, (i%2)*n, int64(i+1)*n)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}
