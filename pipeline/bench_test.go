package pipeline

import (
	"context"
	"io"
	"testing"
)

// BenchmarkMap measures the per-item overhead of a 2-worker Map stage
// (ordered and not) between a source and a sink: go test ./pipeline -bench .
func BenchmarkMap(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		name := "unordered"
		if ordered {
			name = "ordered"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			p := New(context.Background(), Options{})
			n := 0
			src := Source(p, "src", 64, func(context.Context) (int, error) {
				if n == b.N {
					return 0, io.EOF
				}
				n++
				return n, nil
			})
			m := Map(p, "m", src, Config{Workers: 2, Buffer: 64, Ordered: ordered}, func(_ context.Context, v int) (int, error) { return v + 1, nil })
			Sink(p, "sink", m, 1, func(context.Context, int) error { return nil })
			if err := p.Wait(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
