package mae

import (
	"fmt"
	"testing"

	"github.com/maeembed/maeembed/internal/alloctest"
	"github.com/maeembed/maeembed/mae/kernels"
)

// The embedding hot path reuses its buffers: nothing is allocated per batch
// after the first one, in every precision. Only allocations by the model's
// and the kernels' code count, with the collector off on one P
// (alloctest), so a loaded machine cannot change the result;
// BenchmarkEmbedAllocs reports the same calls' allocations per batch.
func TestEmbedAllocatesNothingAfterWarmUp(t *testing.T) {
	if alloctest.Race {
		t.Skip("sync.Pool is randomised under the race detector")
	}
	for _, c := range embedAllocCases(t) {
		if allocs := alloctest.PerRun(5, c.f, maePkg); allocs != 0 {
			t.Errorf("%s: %v allocations per batch", c.name, allocs)
		}
	}
}

// maePkg prefixes the model's and the kernels' functions.
const maePkg = "github.com/maeembed/maeembed/mae"

type allocCase struct {
	name string
	f    func()
}

// embedAllocCases embed a batch of 4 in each precision and pool, with a
// model large enough that the kernels split work across goroutines when
// there are several Ps (the benchmark; the test runs on one P, where each
// job runs on the caller, as under testing.AllocsPerRun before).
func embedAllocCases(tb testing.TB) []allocCase {
	c := Config{ImageSize: 64, PatchSize: 8, Channels: 3, Dim: 192, Depth: 2, Heads: 3, MLPDim: 768, Eps: 1e-6, MaskRatio: 0.75}
	var cases []allocCase
	for _, prec := range []kernels.Precision{kernels.FP32, kernels.BF16, kernels.Int8} {
		m, err := New(c, false, 1)
		if err != nil {
			tb.Fatal(err)
		}
		if err := m.SetPrecision(prec); err != nil {
			tb.Fatal(err)
		}
		n := 4
		patches := randPatches(n, c, 1)
		for _, pool := range []Pool{PoolMean, PoolTokens} {
			out := make([]float32, n*m.EmbedDim(pool))
			cases = append(cases, allocCase{fmt.Sprintf("%v/pool=%s", prec, pool), func() {
				if err := m.Embed(out, patches, n, pool); err != nil {
					tb.Fatal(err)
				}
			}})
		}
	}
	return cases
}

// BenchmarkEmbedAllocs reports allocs/op (per batch) of the test's calls:
// 0 once warm (process-wide, so a collection during the run can show a
// few).
// go test ./mae -run '^$' -bench EmbedAllocs -benchmem
func BenchmarkEmbedAllocs(b *testing.B) {
	for _, c := range embedAllocCases(b) {
		b.Run(c.name, func(b *testing.B) {
			c.f()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.f()
			}
		})
	}
}
