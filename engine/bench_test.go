package engine

import (
	"context"
	"runtime"
	"testing"

	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
)

// BenchmarkRun embeds 960 small PNGs (a sixth of them undecodable: error
// rows) with the 32×32 fixture model into Parquet parts of 32 rows (a row
// holds its input until its part is published); allocs/input and B/input
// are per input, decoding and writing included.
// go test ./engine -run '^$' -bench 'Run$' -benchtime 20x
func BenchmarkRun(b *testing.B) {
	in, good, bad := inputs(b, 800)
	n := len(good) + len(bad)
	model, meta, pre := tinyEmbedder(b, 8)
	var mallocs, bytes uint64
	var ms runtime.MemStats
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		out := b.TempDir()
		src, err := sources.OpenWith([]string{in}, nil, sources.Options{})
		if err != nil {
			b.Fatal(err)
		}
		w, err := sinks.NewParquet(out, meta, sinks.ParquetOptions{MaxFileRows: 32})
		if err != nil {
			b.Fatal(err)
		}
		errw, err := sinks.NewErrors(out, meta, sinks.ParquetOptions{MaxFileRows: 32})
		if err != nil {
			b.Fatal(err)
		}
		e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 8, Workers: 2, Errors: errw}, model, NewEmbeddingOutput(w))
		runtime.ReadMemStats(&ms)
		m0, b0 := ms.Mallocs, ms.TotalAlloc
		b.StartTimer()
		if err := e.Run(context.Background(), src); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		mallocs, bytes = mallocs+ms.Mallocs-m0, bytes+ms.TotalAlloc-b0
		src.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(mallocs)/float64(b.N*n), "allocs/input")
	b.ReportMetric(float64(bytes)/float64(b.N*n), "B/input")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "inputs/s")
}
