package kernels

import (
	"fmt"
	"math"
	"sync"
)

// attnScratch is one worker's memory for one (batch, head) item: K and V
// packed as GEMM panels and the tokens×tokens score matrix.
type attnScratch struct {
	kp, vp, s []float32
	g         *scratch
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

var attnScratchPool = sync.Pool{New: func() any { return new(attnScratch) }}

type attnJob struct {
	counter
	im                            *impl
	out, qkv                      []float32
	batch, tokens, heads, headDim int
}

func (j *attnJob) run() {
	s := attnScratchPool.Get().(*attnScratch)
	s.g = scratchPool.Get().(*scratch)
	for {
		i0, i1, ok := j.take()
		if !ok {
			break
		}
		for it := i0; it < i1; it++ {
			j.item(s, it/j.heads, it%j.heads)
		}
	}
	scratchPool.Put(s.g)
	s.g = nil
	attnScratchPool.Put(s)
}

// item computes softmax(q·kᵀ·scale)·v for one batch element and head.
func (j *attnJob) item(s *attnScratch, b, h int) {
	T, hd := j.tokens, j.headDim
	D := j.heads * hd
	ld := 3 * D
	base := b * T * ld
	q := j.qkv[base+h*hd:]
	k := j.qkv[base+D+h*hd:]
	v := j.qkv[base+2*D+h*hd:]
	s.kp = grow(s.kp, numPanels(T)*hd*nr)
	s.vp = grow(s.vp, numPanels(hd)*T*nr)
	// The score matrix is padded to whole micro-tiles so the kernel writes
	// edge tiles in place; only its first T columns are ever read.
	ldS := numPanels(T) * nr
	s.s = grow(s.s, ceilDiv(T, j.im.mr)*j.im.mr*ldS)
	packB(j.im, s.kp, k, ld, true, hd, T, 0, numPanels(T))   // op(B) = Kᵀ (hd×T)
	packB(j.im, s.vp, v, ld, false, T, hd, 0, numPanels(hd)) // op(B) = V (T×hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	serialGemm(j.im, s.g, T, T, hd, scale, q, ld, s.kp, s.s, ldS, true)
	for r := 0; r < T; r++ {
		softmaxWith(j.im, s.s[r*ldS:r*ldS+T])
	}
	serialGemm(j.im, s.g, T, hd, T, 1, s.s, ldS, s.vp, j.out[b*T*D+h*hd:], D, false)
}

// serialGemm is runGemm (beta 0, no epilogue) on the calling goroutine.
// padC says c has room for whole micro-tiles past m and n. A is read in
// place when k ≤ 64 (a head's q·kᵀ): its few lines per row stay in L1
// whatever the stride, and packing would cost more than it saves.
func serialGemm(im *impl, s *scratch, m, n, k int, alpha float32, a []float32, lda int, bp, c []float32, ldc int, padC bool) {
	g := gemmJob{im: im, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, bp: bp, c: c, ldc: ldc, padC: padC,
		packA: k > 64 && needPackA(false, lda, im.mr)}
	g.schedule(1)
	for t := 0; t < g.total; t++ {
		g.task(s, t)
	}
	g.release()
}

var attnPool = sync.Pool{New: func() any { return new(attnJob) }}

// Attention computes multi-head self-attention for a batch. qkv is
// [batch·tokens, 3·heads·headDim], each row laid out [3][heads][headDim]
// (timm's qkv.reshape(B,N,3,H,hd)); out is [batch·tokens, heads·headDim]
// laid out [heads][headDim] per row. Scale is headDim^-0.5 and the softmax
// is max-subtracted. Work is split by (batch, head); each worker holds one
// tokens×tokens score matrix at a time.
func Attention(out, qkv []float32, batch, tokens, heads, headDim int) {
	All.Attention(out, qkv, batch, tokens, heads, headDim)
}

// Attention is the package-level Attention on th's goroutines.
func (th Threads) Attention(out, qkv []float32, batch, tokens, heads, headDim int) {
	D := heads * headDim
	if len(qkv) < batch*tokens*3*D || len(out) < batch*tokens*D {
		panic(fmt.Sprintf("kernels.Attention: batch=%d tokens=%d heads=%d headDim=%d: len(qkv)=%d len(out)=%d",
			batch, tokens, heads, headDim, len(qkv), len(out)))
	}
	items := batch * heads
	if items == 0 || tokens == 0 || headDim == 0 {
		return
	}
	j := attnPool.Get().(*attnJob)
	j.im, j.out, j.qkv = current.Load(), out, qkv
	j.batch, j.tokens, j.heads, j.headDim = batch, tokens, heads, headDim
	nw := min(items, th.workers(4*float64(items)*float64(tokens)*float64(tokens)*float64(headDim)))
	j.reset(items, 1)
	th.run(nw, j)
	j.out, j.qkv = nil, nil
	attnPool.Put(j)
}
