package mae

import (
	"fmt"
	"math"
	"slices"
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

// BenchmarkReconstruct measures the masked encoder + decoder at ratio 0.75
// at batch 8, and at 4 and 2: at GOMAXPROCS=1, the work of one item of
// the masked encoder (4 images) and of the decoder (2) when 2 cores split
// a batch of 8 (see imagesPerItem).
func BenchmarkReconstruct(b *testing.B) {
	for _, prec := range benchPrecisions {
		for _, bs := range []int{8, 4, 2} {
			b.Run(fmt.Sprintf("vit_base_patch16/prec=%v/batch%d", prec, bs), func(b *testing.B) {
				m := benchModel(b, true, prec)
				c := m.Config
				patches, noise := randPatches(bs, c, 1), benchNoise(bs, c.NumPatches())
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
}

// benchNoise is the masking noise of n images of l patches for the
// reconstruction benchmarks (seed 1, image i's row drawn with index i).
func benchNoise(n, l int) []float32 {
	noise := make([]float32, n*l)
	for i := 0; i < n; i++ {
		NoiseRow(noise[i*l:(i+1)*l], 1, int64(i))
	}
	return noise
}

// BenchmarkReconstructItemsAB alternates, per iteration, reconstruction
// of a batch of 8 (ViT-B/16, fp32) with the encoder's items sized by
// itemRows (the default) and with items of two images (itemRows 0, the
// split before), and reports the median and best ratio of their wall
// times (old ÷ new: above 1 the default is faster): an A/B at GOMAXPROCS
// ≥ 2 that the machine's other load disturbs alike. At GOMAXPROCS=1
// nothing is split and the two are the same.
// GOMAXPROCS=2 go test ./mae -run '^$' -bench ReconstructItemsAB -benchtime 10x
func BenchmarkReconstructItemsAB(b *testing.B) {
	m := benchModel(b, true, kernels.FP32)
	c := m.Config
	const bs = 8
	patches, noise := randPatches(bs, c, 1), benchNoise(bs, c.NumPatches())
	defer func(r int) { itemRows = r }(itemRows)
	rows := [2]int{0, itemRows} // old, new
	var best [2]float64
	ratios := make([]float64, 0, b.N)
	for i := -1; i < b.N; i++ { // i = -1: warm-up of both
		var d [2]float64
		for _, v := range [2]int{(i + 2) % 2, (i + 3) % 2} {
			itemRows = rows[v]
			t0 := time.Now()
			if _, err := m.Reconstruct(patches, noise, bs, 0.75, false); err != nil {
				b.Fatal(err)
			}
			d[v] = time.Since(t0).Seconds()
			if i >= 0 && (best[v] == 0 || d[v] < best[v]) {
				best[v] = d[v]
			}
		}
		if i < 0 {
			b.ResetTimer()
			continue
		}
		ratios = append(ratios, d[0]/d[1])
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "median-old/new")
	b.ReportMetric(best[0]/best[1], "best-old/new")
	b.ReportMetric(bs/best[1], "best-images/s")
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
