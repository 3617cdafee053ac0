package mae

import (
	"fmt"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/maeembed/maeembed/mae/kernels"
)

// BenchmarkEmbed measures whole-image embedding throughput of the presets
// with random weights (the numbers do not depend on the weights' values),
// in each precision.
// go test ./mae -run '^$' -bench Embed -benchtime 10x
func BenchmarkEmbed(b *testing.B) {
	for _, prec := range benchPrecisions {
		for _, bs := range []int{1, 8} {
			b.Run(fmt.Sprintf("vit_base_patch16/prec=%v/batch%d", prec, bs), func(b *testing.B) {
				m := benchModel(b, false, prec)
				c := m.Config
				patches := randPatches(bs, c, 1)
				out := make([]float32, bs*c.Dim)
				if err := m.Embed(out, patches, bs, PoolMean); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					if err := m.Embed(out, patches, bs, PoolMean); err != nil {
						b.Fatal(err)
					}
				}
				reportImages(b, bs, cpu0)
			})
		}
	}
}

var benchPrecisions = []kernels.Precision{kernels.FP32, kernels.BF16, kernels.Int8}

// benchModel is a ViT-B/16 with random weights in precision prec.
func benchModel(b *testing.B, decoder bool, prec kernels.Precision) *Model {
	m, err := New(Presets["mae_vit_base_patch16"], decoder, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.SetPrecision(prec); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkReconstruct measures the masked encoder + decoder at ratio 0.75.
func BenchmarkReconstruct(b *testing.B) {
	for _, prec := range benchPrecisions {
		b.Run(fmt.Sprintf("vit_base_patch16/prec=%v/batch8", prec), func(b *testing.B) {
			m := benchModel(b, true, prec)
			c := m.Config
			const bs = 8
			patches := randPatches(bs, c, 1)
			l := c.NumPatches()
			noise := make([]float32, bs*l)
			for i := 0; i < bs; i++ {
				NoiseRow(noise[i*l:(i+1)*l], 1, int64(i))
			}
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				if _, err := m.Reconstruct(patches, noise, bs, 0.75, false); err != nil {
					b.Fatal(err)
				}
			}
			reportImages(b, bs, cpu0)
		})
	}
}

// reportImages reports images per second of wall time and per second of
// process CPU time since cpu0 (steadier on a shared machine; at
// GOMAXPROCS=1 it is the single-core throughput).
func reportImages(b *testing.B, bs int, cpu0 float64) {
	b.ReportMetric(float64(bs*b.N)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(bs*b.N)/(cpuSeconds()-cpu0), "images/cpu-s")
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
