package kernels

import (
	"sync"
	"sync/atomic"
)

// hugeOff turns HugeFloats's huge-page placement off (SetHugePages).
var hugeOff atomic.Bool

// hugeAdvised counts the bytes advised for huge pages so far (tests).
var hugeAdvised atomic.Int64

// HugeFloats returns n zeroed float32s for a large buffer that kernels read
// over and over: packed weights, activation workspaces, kernel scratch.
// On Linux, the whole 2 MiB pages inside a buffer are advised for
// transparent huge pages (see hugeFloats; the head and tail stay on 4 KiB
// pages): fewer TLB misses, and the hardware prefetchers, which stop at
// 4 KiB page boundaries, run on. Buffers under 2 MiB, other systems and
// SetHugePages(false) get an ordinary slice. The placement never changes a result.
func HugeFloats(n int) []float32 {
	if hugeOff.Load() {
		return make([]float32, n)
	}
	return hugeFloats(n)
}

// SetHugePages turns HugeFloats's huge-page placement on (the default) or
// off for the buffers allocated from then on, and returns the previous
// setting. It is meant for benchmarks that compare the two in one process
// (mae's BenchmarkEmbedPagesAB); buffers already allocated keep their
// placement. Kernel scratch is pooled per setting, so calls made with
// one setting use that setting's scratch. Do not change it while kernels
// run.
func SetHugePages(on bool) (was bool) {
	return !hugeOff.Swap(!on)
}

// hugePool is a pool of scratch buffers per SetHugePages setting.
type hugePool [2]sync.Pool

// get returns a buffer of at least n floats (its contents undefined),
// from the pool of the current setting; put it back with put.
func (p *hugePool) get(n int) *[]float32 {
	bp, _ := p[hugeIdx()].Get().(*[]float32)
	if bp == nil {
		bp = new([]float32)
	}
	if cap(*bp) < n {
		*bp = HugeFloats(n)
	}
	return bp
}

func (p *hugePool) put(bp *[]float32) { p[hugeIdx()].Put(bp) }

// hugeIdx is the index of the current setting's pool: 0 on, 1 off.
func hugeIdx() int {
	if hugeOff.Load() {
		return 1
	}
	return 0
}
