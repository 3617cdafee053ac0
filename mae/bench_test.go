package mae

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/mae/kernels/kerneltest"
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
				cpu0, join0 := cpuSeconds(), kernels.JoinStats()
				for i := 0; i < b.N; i++ {
					if err := m.Embed(out, patches, bs, PoolMean); err != nil {
						b.Fatal(err)
					}
				}
				reportImages(b, bs, cpu0, join0)
			})
		}
	}
}

var benchPrecisions = []kernels.Precision{kernels.FP32, kernels.BF16, kernels.Int8}

// benchModel is a ViT-B/16 with random weights in precision prec. A
// MAEEMBED_KERNEL that could not be followed fails the benchmark: figures
// of the default path must not be reported as those of the forced one
// (bench/model_vs_peers.sh labels its columns by the variable).
func benchModel(b *testing.B, decoder bool, prec kernels.Precision) *Model {
	kerneltest.CheckEnv(b)
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
// at batch 8, and at 4 and 2: at GOMAXPROCS=1, batch 4 is the work of one
// item (of the masked encoder and of the decoder) when 2 cores split a
// batch of 8 (see imagesPerItem).
func BenchmarkReconstruct(b *testing.B) {
	for _, prec := range benchPrecisions {
		for _, bs := range []int{8, 4, 2} {
			b.Run(fmt.Sprintf("vit_base_patch16/prec=%v/batch%d", prec, bs), func(b *testing.B) {
				m := benchModel(b, true, prec)
				c := m.Config
				patches, noise := randPatches(bs, c, 1), benchNoise(bs, c.NumPatches())
				b.ResetTimer()
				cpu0, join0 := cpuSeconds(), kernels.JoinStats()
				for i := 0; i < b.N; i++ {
					if _, err := m.Reconstruct(patches, noise, bs, 0.75, false); err != nil {
						b.Fatal(err)
					}
				}
				reportImages(b, bs, cpu0, join0)
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
// of a batch of 8 (ViT-B/16, fp32) with items sized by itemRows (the
// default) and by the split before it (itemRows 192: items of 4 images
// in the masked encoder and of 2 in the decoder, the comparison of the
// kernels README's "items of 4 images"), and reports the median and
// best ratio of their wall times (old ÷ new: above 1 the default is
// faster): an A/B at GOMAXPROCS ≥ 2 that the machine's other load
// disturbs alike. At GOMAXPROCS=1 nothing is split and the two are the
// same.
// GOMAXPROCS=2 go test ./mae -run '^$' -bench ItemsAB -benchtime 10x
func BenchmarkReconstructItemsAB(b *testing.B) {
	m := benchModel(b, true, kernels.FP32)
	c := m.Config
	const bs = 8
	patches, noise := randPatches(bs, c, 1), benchNoise(bs, c.NumPatches())
	itemsAB(b, bs, func() {
		if _, err := m.Reconstruct(patches, noise, bs, 0.75, false); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkEmbedItemsAB is BenchmarkReconstructItemsAB for embedding a
// batch of 8 (mean pool): items of 4 images against the 2 of itemRows
// 192.
func BenchmarkEmbedItemsAB(b *testing.B) {
	m := benchModel(b, false, kernels.FP32)
	c := m.Config
	const bs = 8
	patches := randPatches(bs, c, 1)
	out := make([]float32, bs*m.EmbedDim(PoolMean))
	itemsAB(b, bs, func() {
		if err := m.Embed(out, patches, bs, PoolMean); err != nil {
			b.Fatal(err)
		}
	})
}

// itemsAB times run (a pass over a batch of bs images) with itemRows 192
// and with the default, alternated per iteration, and reports the median
// and best ratio of their wall times (old ÷ new) and the default's best
// images/s.
func itemsAB(b *testing.B, bs int, run func()) {
	defer func(r int) { itemRows = r }(itemRows)
	rows := [2]int{192, itemRows} // old, new
	var best [2]float64
	ratios := make([]float64, 0, b.N)
	for i := -1; i < b.N; i++ { // i = -1: warm-up of both
		var d [2]float64
		for _, v := range [2]int{(i + 2) % 2, (i + 3) % 2} {
			itemRows = rows[v]
			t0 := time.Now()
			run()
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
	b.ReportMetric(float64(bs)/best[1], "best-images/s")
}

// reportImages reports images per second of wall time and per second of
// process CPU time since cpu0 (steadier on a shared machine; at
// GOMAXPROCS=1 it is the single-core throughput).
func reportImages(b *testing.B, bs int, cpu0 float64, join0 kernels.JoinStat) {
	b.ReportMetric(float64(bs*b.N)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(bs*b.N)/(cpuSeconds()-cpu0), "images/cpu-s")
	if j := kernels.JoinStats(); j.Calls > join0.Calls {
		offered, busy := j.Offered-join0.Offered, j.Busy-join0.Busy
		b.ReportMetric(100*float64(offered-busy)/float64(offered), "join-idle-%")
		b.ReportMetric(float64(j.Calls-join0.Calls)/float64(b.N), "calls/op")
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkEmbedPagesAB builds the ViT-B/16 fp32 model twice, its packed
// weights, workspaces and kernel scratch once on huge pages
// (kernels.HugeFloats, the default) and once on ordinary heap pages
// (kernels.SetHugePages(false)), and alternates embedding calls between
// them, the order swapped each round. It reports images per second of
// process CPU time of each and the median and best of the per-round
// ratios 4 KiB time ÷ huge time (above 1: huge pages faster), in CPU
// time and in wall time: an A/B that the machine's other load disturbs
// alike. -test.v prints every round's ratio.
// GOMAXPROCS=1 MAEEMBED_KERNEL=avx2 go test ./mae -run '^$' -bench EmbedPagesAB -benchtime 10x
func BenchmarkEmbedPagesAB(b *testing.B) {
	for _, bs := range []int{1, 8} {
		b.Run(fmt.Sprintf("vit_base_patch16/prec=fp32/batch%d", bs), func(b *testing.B) {
			benchPagesAB(b, bs, false)
		})
	}
}

// BenchmarkReconstructPagesAB is BenchmarkEmbedPagesAB for reconstruction
// (ratio 0.75) at batch 8.
// GOMAXPROCS=2 go test ./mae -run '^$' -bench ReconstructPagesAB -benchtime 10x
func BenchmarkReconstructPagesAB(b *testing.B) {
	b.Run("vit_base_patch16/prec=fp32/batch8", func(b *testing.B) { benchPagesAB(b, 8, true) })
}

func benchPagesAB(b *testing.B, bs int, recon bool) {
	defer kernels.SetHugePages(kernels.SetHugePages(true))
	var models [2]*Model // huge, 4 KiB
	var calls [2]func()
	for v := range models {
		kernels.SetHugePages(v == 0)
		m := benchModel(b, recon, kernels.FP32)
		models[v] = m
		c := m.Config
		patches := randPatches(bs, c, 1)
		if recon {
			noise := benchNoise(bs, c.NumPatches())
			calls[v] = func() {
				if _, err := m.Reconstruct(patches, noise, bs, 0.75, false); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			out := make([]float32, bs*c.Dim)
			calls[v] = func() {
				if err := m.Embed(out, patches, bs, PoolMean); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	var cpu, wall [2]float64
	var rc, rw []float64
	for i := -1; i < b.N; i++ { // i = -1: warm-up of both
		var dc, dw [2]float64
		for _, v := range [2]int{(i + 2) % 2, (i + 3) % 2} {
			kernels.SetHugePages(v == 0) // the pooled scratch of this model's kind
			t0, c0 := time.Now(), cpuSeconds()
			calls[v]()
			dc[v], dw[v] = cpuSeconds()-c0, time.Since(t0).Seconds()
		}
		if i < 0 {
			b.ResetTimer()
			continue
		}
		for v := range cpu {
			cpu[v] += dc[v]
			wall[v] += dw[v]
		}
		rc, rw = append(rc, dc[1]/dc[0]), append(rw, dw[1]/dw[0])
		if testing.Verbose() {
			b.Logf("round %d: 4k/huge cpu %.4f wall %.4f", i, dc[1]/dc[0], dw[1]/dw[0])
		}
	}
	b.ReportMetric(float64(bs*b.N)/cpu[0], "huge-images/cpu-s")
	b.ReportMetric(float64(bs*b.N)/cpu[1], "4k-images/cpu-s")
	b.ReportMetric(float64(bs*b.N)/wall[0], "huge-images/s")
	b.ReportMetric(float64(bs*b.N)/wall[1], "4k-images/s")
	slices.Sort(rc)
	slices.Sort(rw)
	b.ReportMetric(rc[len(rc)/2], "median-4k/huge-cpu")
	b.ReportMetric(rw[len(rw)/2], "median-4k/huge-wall")
	if kb := anonHugeKB(); kb >= 0 {
		b.ReportMetric(float64(kb)/1024, "AnonHugePages-MiB")
	}
	runtime.KeepAlive(models)
}

// anonHugeKB is the process's memory on transparent huge pages in KiB
// (Linux), or -1.
func anonHugeKB() int {
	data, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "AnonHugePages:" {
			kb, err := strconv.Atoi(f[1])
			if err == nil {
				return kb
			}
		}
	}
	return -1
}
