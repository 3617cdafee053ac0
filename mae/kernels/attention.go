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
	// int8 (attnI8): Q as u8 words, its row scales, the column scales
	// and compensation of K as a weight, and zeros for the dequantising
	// epilogue's bias.
	qw, sq, sk, ck, tmp, zero []float32
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
	i8                            bool // int8 products (attnI8)
	out, qkv                      []float32
	batch, tokens, heads, headDim int
	// whole is how many (batch, head) items run whole; each later one
	// runs as attnPieces pieces of its query rows (see AttentionIn).
	whole int
}

// attnPieces is how many pieces of query rows each of the last items of
// a call on several workers runs as (one item per worker): the workers
// then finish within a quarter of an item of each other (~0.4 ms at 197
// tokens) rather than a whole one, which at batch 1 (12 items on 2
// workers, one of them often woken late) was the common case. A piece
// packs its item's K and V again (~1% of the item).
const attnPieces = 4

func (j *attnJob) run() {
	s := attnScratchPool.Get().(*attnScratch)
	s.g = scratchPool.Get().(*scratch)
	for {
		i0, i1, ok := j.take()
		if !ok {
			break
		}
		for it := i0; it < i1; it++ {
			if it < j.whole {
				j.item(s, it/j.heads, it%j.heads, 0, j.tokens)
				continue
			}
			// Piece p of item bh: rows at micro-panel boundaries.
			bh, p := j.whole+(it-j.whole)/attnPieces, (it-j.whole)%attnPieces
			mr, rp := j.im.mr, ceilDiv(j.tokens, j.im.mr)
			r0 := min(j.tokens, mr*ceilDiv(rp*p, attnPieces))
			r1 := min(j.tokens, mr*ceilDiv(rp*(p+1), attnPieces))
			if r0 < r1 {
				j.item(s, bh/j.heads, bh%j.heads, r0, r1)
			}
		}
	}
	scratchPool.Put(s.g)
	s.g = nil
	attnScratchPool.Put(s)
}

// item computes softmax(q·kᵀ·scale)·v for one batch element and head, for
// query rows [r0, r1) (the int8 path always does all rows).
func (j *attnJob) item(s *attnScratch, b, h, r0, r1 int) {
	if j.i8 {
		j.itemI8(s, b, h)
		return
	}
	T, hd := j.tokens, j.headDim
	D := j.heads * hd
	ld := 3 * D
	base := b * T * ld
	q := j.qkv[base+h*hd:]
	k := j.qkv[base+D+h*hd:]
	s.kp = grow(s.kp, numPanels(T)*hd*nr)
	// The score matrix is padded to whole micro-tiles so the kernel writes
	// edge tiles in place; only its first T columns are ever read.
	ldS := numPanels(T) * nr
	s.s = grow(s.s, ceilDiv(T, j.im.mr)*j.im.mr*ldS)
	packB(j.im, s.kp, k, ld, true, hd, T, 0, numPanels(T)) // op(B) = Kᵀ (hd×T)
	scale := float32(1 / math.Sqrt(float64(hd)))
	serialGemm(j.im, s.g, r1-r0, T, hd, scale, q[r0*ld:], ld, s.kp, s.s, ldS, true, nil, dequant{})
	j.softmaxPV(s, b, h, r0, r1, ldS)
}

// softmaxPV is attention's second half in float32, whatever precision
// formed the scores: it turns the rows of s.s (stride ldS), the scores of
// query rows [r0, r1) of item (b, h), into probabilities and writes
// O = P·V for them.
func (j *attnJob) softmaxPV(s *attnScratch, b, h, r0, r1, ldS int) {
	T, hd := j.tokens, j.headDim
	D := j.heads * hd
	ld := 3 * D
	v := j.qkv[b*T*ld+2*D+h*hd:]
	s.vp = grow(s.vp, numPanels(hd)*T*nr)
	packB(j.im, s.vp, v, ld, false, T, hd, 0, numPanels(hd)) // op(B) = V (T×hd)
	for r := 0; r < r1-r0; r++ {
		softmaxWith(j.im, s.s[r*ldS:r*ldS+T])
	}
	serialGemm(j.im, s.g, r1-r0, hd, T, 1, s.s, ldS, s.vp, j.out[(b*T+r0)*D+h*hd:], D, false, nil, dequant{})
}

// serialGemm is runGemm (beta 0; no epilogue but int8's dequantisation
// deq, with comp the kernel's bias argument) on the calling goroutine.
// padC says c has room for whole micro-tiles past m and n. A is read in
// place when k ≤ 64 (a head's q·kᵀ): its few lines per row stay in L1
// whatever the stride, and packing would cost more than it saves.
func serialGemm(im *impl, s *scratch, m, n, k int, alpha float32, a []float32, lda int, bp, c []float32, ldc int, padC bool, comp []float32, deq dequant) {
	g := gemmJob{im: im, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, bp: bp, c: c, ldc: ldc, padC: padC,
		bias: comp, deq: deq, packA: k > 64 && needPackA(false, lda, im.mr)}
	g.schedule(1)
	// One goroutine has nothing to balance: a task per row block over all
	// column panels, so that an A micro-panel stays in L1 across them.
	// (schedule cuts a head's 7 panels of q·kᵀ into one-panel tasks, each
	// reading all of q again, and nextA prefetching 2 of 6 rows.)
	g.nb = numPanels(n)
	g.nIc = ceilDiv(ceilDiv(m, im.mr), g.mb)
	g.total = g.nIc
	for t := 0; t < g.total; t++ {
		g.task(s, t)
	}
	g.release()
}

var attnPool = sync.Pool{New: func() any { return new(attnJob) }}

// itemI8 is item with the scores S = Q·Kᵀ in int8 on the AVX2 int8
// kernel, in the manner of dynamic quantisation: Q per row (token) and K
// per row as the weight (i8Quad, the 1/√hd scale folded into Q's), int32
// sums dequantised per row and column scale. The softmax and O = P·V stay
// float32 (softmaxPV): probabilities of 6 bits (round(64·exp(s − max))) lost
// the tail of a row that puts most of its weight on one token and spreads
// the rest thinly (an attention sink), which on some photos took the
// embedding to a cosine of 0.994 with fp32 (a crop of skimage's retina
// photo; 0.9996 with float32 P·V; what int8 scores still win: attnI8).
func (j *attnJob) itemI8(s *attnScratch, b, h int) {
	im, qh := i8AVX2Impl, quantAVX2
	mr := max(im.mr, j.im.mr) // S's rows are read by both kernels
	T, hd := j.tokens, j.headDim
	D := j.heads * hd
	ld := 3 * D
	base := b * T * ld
	q, k := j.qkv[base+h*hd:], j.qkv[base+D+h*hd:]
	kw := ceilDiv(hd, 4) // words along hd
	nT := numPanels(T)
	s.qw, s.sq = grow(s.qw, T*kw), grow(s.sq, T)
	qb := wordBytes(s.qw)
	scale := float32(1 / math.Sqrt(float64(hd)))
	for t := 0; t < T; t++ {
		s.sq[t] = scale * quantRow(qb[4*t*kw:4*(t+1)*kw], q[t*ld:t*ld+hd], i8Quad, qh)
	}
	s.kp, s.sk, s.ck, s.tmp = grow(s.kp, nT*kw*nr), grow(s.sk, nT*nr), grow(s.ck, nT*nr), grow(s.tmp, kw)
	quantWeightRows(s.kp, s.sk, s.ck, s.tmp, k, ld, T, hd, i8Quad, qh)
	if len(s.zero) < nT*nr {
		s.zero = make([]float32, nT*nr)
	}
	ldS := nT * nr
	s.s = grow(s.s, ceilDiv(T, mr)*mr*ldS)
	serialGemm(im, s.g, T, T, kw, 1, s.qw, kw, s.kp, s.s, ldS, true, s.ck, dequant{rowScale: s.sq, colScale: s.sk, bias: s.zero})
	j.softmaxPV(s, b, h, 0, T, ldS)
}

// attnI8 tells whether AttentionIn runs precision prec with int8
// scores: for Int8 where the path's int8 kernel is the AVX2 one (the
// VNNI path keeps float32 attention), with a head dimension of whole
// vectors and at least 64. Below that the int8 tiles of S = Q·Kᵀ are too
// short in K for the kernel's fixed cost per tile: at head dim 32 (the
// ViT-B decoder) int8 measured 8% slower than float32 (Zen 4, forced
// AVX2, one core, with P·V in int8 too). At 64, with P·V in float32 as
// now, BenchmarkAttention (8 images of 197 tokens, 12 heads, one thread,
// Zen 4, forced AVX2, four alternated rounds) gave 12.0–15.0 ms against
// 13.0–13.2 for float32 attention: the best 8% faster, the medians
// even (25–30% faster when P·V was int8 too).
func attnI8(prec Precision, headDim int) bool {
	if prec != Int8 || i8AVX2Impl == nil || headDim%8 != 0 || headDim < 64 {
		return false
	}
	im, _ := i8Kernel(i8Quad)
	return im == i8AVX2Impl
}

// Attention computes multi-head self-attention for a batch. qkv is
// [batch·tokens, 3·heads·headDim], each row laid out [3][heads][headDim]
// (timm's qkv.reshape(B,N,3,H,hd)); out is [batch·tokens, heads·headDim]
// laid out [heads][headDim] per row. Scale is headDim^-0.5 and the softmax
// is max-subtracted. Work is split by (batch, head); each worker holds one
// tokens×tokens score matrix at a time.
func Attention(out, qkv []float32, batch, tokens, heads, headDim int) {
	AttentionIn(FP32, out, qkv, batch, tokens, heads, headDim)
}

// AttentionIn is Attention in the precision of the model's Linear layers:
// float32 but for Int8 on the AVX2 int8 kernel, where the scores Q·Kᵀ run
// in int8 too (Q, K per token; softmax and P·V float32, see itemI8).
func AttentionIn(prec Precision, out, qkv []float32, batch, tokens, heads, headDim int) {
	All.AttentionIn(prec, out, qkv, batch, tokens, heads, headDim)
}

// AttentionIn is the package-level AttentionIn on th's goroutines.
func (th Threads) AttentionIn(prec Precision, out, qkv []float32, batch, tokens, heads, headDim int) {
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
	j.im, j.out, j.qkv, j.i8 = current.Load(), out, qkv, attnI8(prec, headDim)
	j.batch, j.tokens, j.heads, j.headDim = batch, tokens, heads, headDim
	nw := th.workers(4 * float64(items) * float64(tokens) * float64(tokens) * float64(headDim))
	j.whole = items
	if nw > 1 && !j.i8 && tokens >= attnPieces*j.im.mr {
		// The last nw items run in pieces (see attnPieces).
		j.whole = max(0, items-nw)
	}
	n := j.whole + (items-j.whole)*attnPieces
	nw = min(nw, n)
	j.reset(n, 1)
	th.run(nw, j)
	j.out, j.qkv = nil, nil
	attnPool.Put(j)
}
