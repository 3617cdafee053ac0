package sinks

import (
	"fmt"
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

// BenchmarkReconPNG writes 4-panel PNGs (ViT-B's 14×14 grid of 16-pixel
// patches, 224 px): allocs/op and B/op are per file, file creation
// included.
// go test ./sinks -run '^$' -bench ReconPNG -benchmem
func BenchmarkReconPNG(b *testing.B) {
	meta := testReconMeta
	meta.Patches, meta.Patch = 196, 16
	w, err := NewReconPNG(b.TempDir(), meta)
	if err != nil {
		b.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(1, 2)), meta, 0, 1)
	ids := make([]string, b.N+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("img-%07d.jpg", i)
	}
	rows[0].ID = ids[b.N]
	if err := w.Write(rows); err != nil { // warm-up: metadata file, buffers
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows[0].ID = ids[i]
		if err := w.Write(rows); err != nil {
			b.Fatal(err)
		}
	}
}
