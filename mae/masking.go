package mae

import (
	"math/rand/v2"
	"slices"
	"sync"
)

// Masking is the per-sample random masking of the reference
// (random_masking): ids_shuffle = argsort(noise), the first keep are
// kept, ids_restore = argsort(ids_shuffle), mask is 1 for removed patches in
// the original patch order.
type Masking struct {
	N, L, Keep int
	IDsShuffle []int     // [N, L]
	IDsRestore []int     // [N, L]
	Mask       []float32 // [N, L]
}

// NewMasking computes the masking from caller-supplied noise [n, l] in [0,1).
func NewMasking(noise []float32, n, l, keep int) *Masking {
	m := &Masking{N: n, L: l, Keep: keep,
		IDsShuffle: make([]int, n*l), IDsRestore: make([]int, n*l), Mask: make([]float32, n*l)}
	for b := 0; b < n; b++ {
		row := noise[b*l : (b+1)*l]
		sh := m.IDsShuffle[b*l : (b+1)*l]
		for i := range sh {
			sh[i] = i
		}
		// Stable, so ties (which torch leaves unspecified) resolve by index.
		// NaN sorts after everything, +Inf included, as in torch.argsort;
		// compared with < alone it would tie with every value and leave
		// the order, and so the kept patches, to the sort's internals.
		slices.SortStableFunc(sh, func(i, j int) int {
			a, b := row[i], row[j]
			switch {
			case a < b:
				return -1
			case a > b:
				return 1
			case a != a && b == b: // NaN after a number
				return 1
			case a == a && b != b:
				return -1
			}
			return 0
		})
		re := m.IDsRestore[b*l : (b+1)*l]
		mk := m.Mask[b*l : (b+1)*l]
		for rank, id := range sh {
			re[id] = rank
			if rank >= keep {
				mk[id] = 1
			}
		}
	}
	return m
}

// NoiseRow fills dst (one image's L values) with the noise of input number
// index under seed: each image's mask depends only on the seed and its
// position in the input, not on batching, sharding or resume.
func NoiseRow(dst []float32, seed uint64, index int64) {
	g := noiseGens.Get().(*noiseGen)
	g.pcg.Seed(seed, uint64(index)) // the stream of rand.NewPCG(seed, index)
	for i := range dst {
		dst[i] = g.r.Float32()
	}
	noiseGens.Put(g)
}

// noiseGen is a reseedable generator: NoiseRow runs once per image, and a
// new generator per call would be two allocations per image.
type noiseGen struct {
	pcg *rand.PCG
	r   *rand.Rand
}

var noiseGens = sync.Pool{New: func() any {
	pcg := rand.NewPCG(0, 0)
	return &noiseGen{pcg: pcg, r: rand.New(pcg)}
}}
