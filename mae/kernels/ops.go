package kernels

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// counter hands out chunks [i, i+chunk) of [0, n) to the goroutines of a job.
type counter struct {
	n, chunk int
	next     atomic.Int64
}

func (c *counter) reset(n, chunk int) {
	c.n, c.chunk = n, max(1, chunk)
	c.next.Store(0)
}

func (c *counter) take() (int, int, bool) {
	i := int(c.next.Add(int64(c.chunk))) - c.chunk
	if i >= c.n {
		return 0, 0, false
	}
	return i, min(i+c.chunk, c.n), true
}

type geluJob struct {
	counter
	im *impl
	x  []float32
}

func (j *geluJob) run() {
	for {
		i0, i1, ok := j.take()
		if !ok {
			return
		}
		j.im.gelu(j.x[i0:i1])
	}
}

type lnJob struct {
	counter
	im          *impl
	y, x        []float32
	d           int
	gamma, beta []float32
	eps         float32
	phase       rowPhase // of this job, as the first phase of a GEMM (NormLinear)
}

func (j *lnJob) run() {
	for {
		r0, r1, ok := j.take()
		if !ok {
			return
		}
		j.doRows(r0, r1)
	}
}

// doRows normalises rows [r0, r1).
func (j *lnJob) doRows(r0, r1 int) {
	d := j.d
	for r := r0; r < r1; r++ {
		xr := j.x[r*d : r*d+d]
		mean := j.im.sum(xr) / float32(d)
		v := j.im.sqdev(xr, mean) / float32(d)
		rstd := float32(1 / math.Sqrt(float64(v)+float64(j.eps)))
		j.im.ln(j.y[r*d:r*d+d], xr, mean, rstd, j.gamma, j.beta)
	}
}

var (
	geluPool = sync.Pool{New: func() any { return new(geluJob) }}
	lnPool   = sync.Pool{New: func() any { return new(lnJob) }}
)

// GELU applies the exact (erf) GELU x·Φ(x) in place.
func GELU(x []float32) {
	im := current.Load()
	const chunk = 4096
	nw := All.workers(float64(len(x)) * 20)
	if nw <= 1 {
		im.gelu(x)
		return
	}
	j := geluPool.Get().(*geluJob)
	j.im, j.x = im, x
	j.reset(len(x), max(chunk, len(x)/(8*nw)/16*16))
	parallel(nw, j)
	j.x = nil
	geluPool.Put(j)
}

// Softmax replaces row by its softmax, subtracting the max first so that
// large inputs do not overflow.
func Softmax(row []float32) {
	if len(row) == 0 {
		return
	}
	softmaxWith(current.Load(), row)
}

// softmaxWith follows torch on special values: a NaN anywhere, a +Inf
// (Inf−Inf) or an all −Inf row gives NaN everywhere; −Inf entries of an
// otherwise finite row give 0.
func softmaxWith(im *impl, row []float32) {
	if im.softmax != nil {
		m, s := im.softmax(row)
		if math.IsInf(float64(m), 0) || m != m || s != s {
			fillNaN(row)
		}
		return
	}
	m := im.maxf(row)
	if math.IsInf(float64(m), 0) || m != m {
		fillNaN(row)
		return
	}
	s := im.expSub(row, m)
	if s != s {
		fillNaN(row)
		return
	}
	im.scale(row, 1/s)
}

func fillNaN(row []float32) {
	nan := float32(math.NaN())
	for i := range row {
		row[i] = nan
	}
}

// LayerNorm normalises each of the rows (length d) of x into y:
// y = (x−mean)/sqrt(var+eps)·gamma + beta with the biased variance, as
// torch.nn.LayerNorm. y may alias x.
func LayerNorm(y, x []float32, rows, d int, gamma, beta []float32, eps float32) {
	All.LayerNorm(y, x, rows, d, gamma, beta, eps)
}

// LayerNorm is the package-level LayerNorm on th's goroutines.
func (th Threads) LayerNorm(y, x []float32, rows, d int, gamma, beta []float32, eps float32) {
	if len(x) < rows*d || len(y) < rows*d || len(gamma) < d || len(beta) < d {
		panic(fmt.Sprintf("kernels.LayerNorm: rows=%d d=%d: len(y)=%d len(x)=%d len(gamma)=%d len(beta)=%d",
			rows, d, len(y), len(x), len(gamma), len(beta)))
	}
	if rows == 0 || d == 0 {
		return
	}
	j := newLN(y, x, d, gamma, beta, eps)
	nw := th.workers(float64(rows) * float64(d) * 6)
	j.reset(rows, max(1, rows/(8*nw)))
	th.run(nw, j)
	j.release()
}

func newLN(y, x []float32, d int, gamma, beta []float32, eps float32) *lnJob {
	j := lnPool.Get().(*lnJob)
	j.im, j.y, j.x, j.d, j.gamma, j.beta, j.eps = current.Load(), y, x, d, gamma, beta, eps
	return j
}

func (j *lnJob) release() {
	j.y, j.x, j.gamma, j.beta, j.phase.w = nil, nil, nil, nil, nil
	lnPool.Put(j)
}

// Norm is a LayerNorm's scale, shift and epsilon (see LayerNorm).
type Norm struct {
	Gamma, Beta []float32
	Eps         float32
}

// NormLinear is LayerNorm(h, x, m, w.K, n...) then Linear(y, h, m, w,
// bias, act, nil), in one parallel call for float32 weights: the workers
// normalise rows first (within Strassen–Winograd's S pass when it runs),
// each waiting only for the rows others are finishing, then multiply. A
// worker that the OS starts late (woken from sleep, or descheduled) then
// joins the product instead of holding up a LayerNorm call of its own.
// h is [m×K] (it must not overlap x or y); results are bitwise those of
// the two calls.
func (th Threads) NormLinear(y, h, x []float32, m int, n Norm, w *Packed, bias []float32, act Activation) {
	k := w.K
	if m == 0 {
		return
	}
	if len(x) < m*k || len(h) < m*k || len(n.Gamma) < k || len(n.Beta) < k {
		panic(fmt.Sprintf("kernels.NormLinear: m=%d K=%d: len(h)=%d len(x)=%d len(gamma)=%d len(beta)=%d",
			m, k, len(h), len(x), len(n.Gamma), len(n.Beta)))
	}
	if overlaps(h, m*k, x, m*k) {
		panic("kernels.NormLinear: h overlaps x")
	}
	if w.prec != FP32 || k == 0 {
		th.LayerNorm(h, x, m, k, n.Gamma, n.Beta, n.Eps)
		th.Linear(y, h, m, w, bias, act, nil)
		return
	}
	if len(y) < m*w.N || (bias != nil && len(bias) < w.N) {
		panic(fmt.Sprintf("kernels.NormLinear: m=%d N=%d: len(y)=%d len(bias)=%d", m, w.N, len(y), len(bias)))
	}
	if overlaps(y, m*w.N, h, m*k) || overlaps(y, m*w.N, x, m*k) {
		panic("kernels.NormLinear: y overlaps h or x")
	}
	ln := newLN(h, x, k, n.Gamma, n.Beta, n.Eps)
	defer ln.release()
	if w.useStrassen(m) && w.winograd() != nil {
		linearStrassen(th, y, h, m, w, bias, 0, act, nil, ln)
		return
	}
	ln.phase.reset(ln, m, lnChunk)
	runGemmWith(th, &ln.phase, current.Load(), m, w.N, k, 1, h, k, false, w.data, 0, y, w.N, bias, act, nil, dequant{})
}

// lnChunk is how many rows a worker normalises at a time in NormLinear.
const lnChunk = 16
