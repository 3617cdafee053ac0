package sinks

import (
	"math/rand/v2"
	"testing"
)

// Throughput of the embedding writers at ViT-B width, batches of 32.
func benchWriter(b *testing.B, open func(dir string, meta Meta) (EmbeddingWriter, error), meta Meta) {
	rows := testRows(rand.New(rand.NewPCG(1, 1)), 0, 32, meta.rowLen())
	w, err := open(b.TempDir(), meta)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(32 * 4 * meta.rowLen()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Write(rows); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds(), "rows/s")
}

var benchMeta = Meta{Model: "m", Pool: "mean", Dim: 768}

func BenchmarkParquet768(b *testing.B) {
	benchWriter(b, func(d string, m Meta) (EmbeddingWriter, error) { return NewParquet(d, m, ParquetOptions{}) }, benchMeta)
}

func BenchmarkNpy768(b *testing.B) {
	benchWriter(b, func(d string, m Meta) (EmbeddingWriter, error) { return NewNpy(d, m) }, benchMeta)
}

func BenchmarkArrow768(b *testing.B) {
	benchWriter(b, func(d string, m Meta) (EmbeddingWriter, error) { return NewArrow(d, m, ParquetOptions{}) }, benchMeta)
}

func BenchmarkParquetTokens(b *testing.B) {
	benchWriter(b, func(d string, m Meta) (EmbeddingWriter, error) { return NewParquet(d, m, ParquetOptions{}) },
		Meta{Model: "m", Pool: "tokens", Dim: 768, Tokens: 197})
}
