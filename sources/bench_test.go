package sources

import (
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// BenchmarkParquetRead reads a Hugging Face-layout Parquet file of 256
// images of 64 KiB (16 MiB); MB/s is image bytes delivered.
func BenchmarkParquetRead(b *testing.B) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	rows := make([]struct {
		bytes []byte
		path  string
		null  bool
	}, 256)
	for i := range rows {
		rows[i].bytes = make([]byte, 64<<10)
		for j := range rows[i].bytes {
			rows[i].bytes[j] = byte(rng.Uint32())
		}
	}
	writeHFParquet(b, filepath.Join(dir, "train.parquet"), rows)
	b.SetBytes(int64(len(rows)) * 64 << 10)
	b.ResetTimer()
	for range b.N {
		r, err := Open([]string{filepath.Join(dir, "train.parquet")}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			it, err := r.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil || it.Err != nil {
				b.Fatal(err, it.Err)
			}
			n++
		}
		r.Close()
		if n != len(rows) {
			b.Fatalf("%d rows", n)
		}
	}
}
