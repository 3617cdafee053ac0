package mae

import (
	"fmt"
	"testing"

	"github.com/maeembed/maeembed/internal/busyloop"
)

// BenchmarkModelUnderLoad embeds batches of 8 and 1 and reconstructs a
// batch of 8 with ViT-B/16 (random weights, fp32), alone and with a
// busy-loop process competing for the cores (hog=true): how much the
// model's split across cores loses when one of its goroutines is
// descheduled. Compare wall time (ns/op) between builds with
// bench/split_under_load.sh (PKG=mae).
func BenchmarkModelUnderLoad(b *testing.B) {
	m, err := New(Presets["mae_vit_base_patch16"], true, 1)
	if err != nil {
		b.Fatal(err)
	}
	c := m.Config
	l := c.NumPatches()
	patches := randPatches(8, c, 1)
	noise := benchNoise(8, l)
	out := make([]float32, 8*c.Dim)
	cases := []struct {
		name string
		f    func() error
	}{
		{"embed/batch8", func() error { return m.Embed(out, patches, 8, PoolMean) }},
		{"embed/batch1", func() error { return m.Embed(out[:c.Dim], patches[:l*c.PatchDim()], 1, PoolMean) }},
		{"reconstruct/batch8", func() error { _, err := m.Reconstruct(patches, noise, 8, 0.75, false); return err }},
	}
	for _, cs := range cases {
		for _, hog := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/hog=%v", cs.name, hog), func(b *testing.B) {
				if err := cs.f(); err != nil {
					b.Fatal(err)
				}
				if hog {
					busyloop.Start(b)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := cs.f(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
