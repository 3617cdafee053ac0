package kernels

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// One level of Strassen–Winograd for float32 Linear layers (Winograd's
// form of Strassen's algorithm: 7 half-size products and 15 additions
// instead of 8 products; Boyer, Dumas, Pernet and Zhou, "Memory efficient
// scheduling of Strassen-Winograd's matrix multiplication algorithm",
// ISSAC 2009, eq. (1)). With op(B) = Wᵀ split into K and N halves, A = x
// into row and K halves, and m odd padded by a zero row at the end of A21
// and A22:
//
//	S1 = A21 + A22   T1 = B12 − B11   P1 = A11·B11   P5 = S1·T1
//	S2 = S1 − A11    T2 = B22 − T1    P2 = A12·B21   P6 = S2·T2
//	S3 = A11 − A21   T3 = B22 − B12   P3 = S4·B22    P7 = S3·T3
//	S4 = A12 − S2    T4 = T2 − B21    P4 = A22·T4
//
//	C11 = P1 + P2            C21 = P1 + P6 + P7 − P4
//	C12 = P1 + P6 + P5 + P3  C22 = P1 + P6 + P7 + P5
//
// The weight side (T1..T4) is constant: it is packed once per weight, by
// PackLinear, beside the plain packed weight, whose quarters serve as B11,
// B21 and B22 (+1× the weight's memory). Per call, one vectorised pass forms
// S1..S4 in scratch; then one parallel job runs the 7 products over the
// task grid of the quarter problem (a task is a block of rows × columns of
// every quadrant). C is written in place, without temporaries: a product
// is either written into one quadrant by the micro-kernel itself (alpha =
// ±1, adding to what is there), or its finished micro-tile is added into
// quadrants while it is in L1 (tileAxpy). With beta = 0 the quadrants hold
// only products, so Winograd's 7 additions run through them (C11 = P1;
// C12 = C21 = C11 + P6; C21 += P7; C22 = C21 + P5, C12 += P5; C12 += P3;
// C21 −= P4; C11 += P2: five products straight into a quadrant); with
// beta = 1 (y += x·Wᵀ) every product is added into each quadrant it
// belongs to. Bias, GELU and residual are applied by the last product of
// each quadrant, per tile.
//
// It is float32 arithmetic throughout; only the rounding differs from the
// plain GEMM: each product sums K/2 terms of sums of up to four inputs, and
// C adds up to four products, so the error bound grows by a small constant
// factor over the plain one (Higham, "Accuracy and Stability of Numerical
// Algorithms", §23.2.2), and no reduced-precision format is involved.

// Strassen is used for m ≥ swMinM[path], N ≥ swMinN and K ≥ swMinK[path]
// (N a multiple of 2·nr, K even); other shapes run the plain GEMM, whatever
// the number of threads.
// Measured on Zen 4, A/B in one run (BenchmarkStrassenAB; see README): on
// avx512 it gains 2–11% from m ≈ 200 (batch 1) at K ≥ 768, and 0–4% at
// K = 512 (the MAE decoder: a whole reconstruction +1.6–2.7% with the
// decoder's items of 2 images then, 394 rows, +0.3–1% at 1576); on avx2
// 2–8% per encoder Linear at 197 rows on one core (with the edge-row kernels; CPU time,
// qkv/proj/fc1/fc2 alternated) and about as much on two (a batch-1
// embedding 3–6% faster at two threads), and more from m ≈ 400. At 50
// rows it loses on both, and on avx2 at 100–150 rows.
var (
	swMinM = map[string]int{"avx512": 192, "avx2": 192, "generic": 192}
	swMinN = 512
	swMinK = map[string]int{"avx512": 512, "avx2": 512, "generic": 2048}
)

// swNB caps the column panels of a task: its four C blocks, the product's
// B block and A rows then stay in a 1 MiB L2 (+2–4% at batch 1 over 8).
var swNB = 4

// strassenMode is Strassen–Winograd's setting: off, on, or auto (the
// default): on except on the paths in swAutoOff. MAEEMBED_STRASSEN sets it
// at init: 0, off, false or no (off); 1, on, true or yes (on); unset,
// auto; another value is kept for EnvError and leaves it auto.
var strassenMode atomic.Int32

const (
	swOff int32 = iota
	swOn
	swAuto
)

// swAutoOff holds the paths on which Strassen–Winograd is off unless it is
// asked for (set by registerArch): avx512 on a CPU with full-width 512-bit
// units (halfWidth512 false: Zen 5, Intel). There the float32 kernel is
// twice as fast as on Zen 4's 256-bit halves while Strassen's sums, tile
// additions and second weight copy cost what they did, and on a Zen 5
// ViT-B ran faster without it: reconstruction at batch 8 by 7–24%,
// embedding at batch 1 by 2–12%, at batch 8 within the noise (Strassen
// ahead in two runs of three; model benchmarks alternating both settings,
// 6–8 rounds each, three runs; see the kernels README). Per layer on one
// core (BenchmarkStrassenAB) it lost 1–15% on the decoder's K = 512
// shapes and gained −7…+15% on the encoder's, which the forward passes
// did not show. halfWidth512 also counts as full-width the AVX-512 CPUs
// it does not tell apart (see there): MAEEMBED_STRASSEN=1 turns it on.
var swAutoOff = map[string]bool{}

func init() {
	switch v := strings.TrimSpace(os.Getenv("MAEEMBED_STRASSEN")); strings.ToLower(v) {
	case "0", "off", "false", "no":
		strassenMode.Store(swOff)
	case "1", "on", "true", "yes":
		strassenMode.Store(swOn)
	case "":
		strassenMode.Store(swAuto)
	default:
		strassenMode.Store(swAuto)
		envErr = errors.Join(envErr, &EnvVarError{Var: "MAEEMBED_STRASSEN", Value: v,
			Err: errors.New("want 0, off, false or no (off), or 1, on, true or yes (on); unset, it is on where it gains")})
	}
	genericImpl.tileAxpy, genericImpl.winoA = tileAxpyGeneric, winoAGeneric
}

// Strassen tells whether float32 Linear calls of large enough shapes use
// one level of Strassen–Winograd on the current path (see
// MAEEMBED_STRASSEN and swAutoOff).
func Strassen() bool {
	switch strassenMode.Load() {
	case swOn:
		return true
	case swAuto:
		return !swAutoOff[current.Load().name]
	}
	return false
}

// SetStrassen turns Strassen–Winograd in float32 Linear on or off on
// every path, and returns a func that restores the setting before (for
// tests and benchmarks; neither may race with running kernels).
func SetStrassen(on bool) (restore func()) {
	old := strassenMode.Load()
	if on {
		strassenMode.Store(swOn)
	} else {
		strassenMode.Store(swOff)
	}
	return func() { strassenMode.Store(old) }
}

// useStrassen tells whether y = x·Wᵀ over m rows runs Strassen–Winograd.
// It depends on the shape alone, not on the threads that run the call.
func (w *Packed) useStrassen(m int) bool {
	return m >= swMinM[current.Load().name] && w.Strassen()
}

// Strassen tells whether Linear runs w with Strassen–Winograd for m large
// enough (see MAEEMBED_STRASSEN): a float32 weight whose N and K qualify
// on the current path, with Strassen on.
func (w *Packed) Strassen() bool {
	return w.prec == FP32 && Strassen() && w.N >= swMinN && w.K >= swMinK[current.Load().name] &&
		w.N%(2*nr) == 0 && w.K%2 == 0
}

// winogradB holds T1..T4 of a weight, each packed like a Packed weight of
// N/2 columns and K/2 rows (panel q at t[i][q·K/2·nr:]).
type winogradB struct {
	t [4][]float32
}

// winograd returns w's T1..T4, or nil when w is not finite. Prepare packs
// them ahead (so the first call does not pay for it); otherwise the first
// call that runs Strassen–Winograd does.
func (w *Packed) winograd() *winogradB {
	w.swOnce.Do(func() {
		kh, nph := w.K/2, w.N/2/nr
		sb := &winogradB{}
		all := HugeFloats(4 * nph * kh * nr) // one buffer: fewer part-used huge pages
		for i := range sb.t {
			sb.t[i] = all[i*nph*kh*nr : (i+1)*nph*kh*nr : (i+1)*nph*kh*nr]
		}
		// Quarter (kr, cr) of the packed B = Wᵀ, panel q: kh×nr floats.
		quarter := func(kr, cr, q int) []float32 {
			o := (cr*nph+q)*w.K*nr + kr*kh*nr
			return w.data[o : o+kh*nr]
		}
		z := float32(0) // Σ 0·T4: NaN when the weight holds a NaN or Inf
		for q := 0; q < nph; q++ {
			b11, b12, b21, b22 := quarter(0, 0, q), quarter(0, 1, q), quarter(1, 0, q), quarter(1, 1, q)
			t1, t2, t3, t4 := sb.t[0][q*kh*nr:(q+1)*kh*nr], sb.t[1][q*kh*nr:(q+1)*kh*nr],
				sb.t[2][q*kh*nr:(q+1)*kh*nr], sb.t[3][q*kh*nr:(q+1)*kh*nr]
			for i := range t1 {
				t1[i] = b12[i] - b11[i]
				t2[i] = b22[i] - t1[i]
				t3[i] = b22[i] - b12[i]
				t4[i] = t2[i] - b21[i]
				z += 0 * t4[i]
			}
		}
		if z != z {
			// A NaN or Inf in column j of Wᵀ would reach columns j ± N/2
			// through T1..T4: such a weight stays on the plain GEMM.
			return
		}
		w.sw = sb
	})
	return w.sw
}

// Quadrants of C.
const (
	c11 = iota
	c12
	c21
	c22
)

// swProduct is one of the 7 products: rows of op(A) at a (stride lda)
// times a packed quarter of B (panel q at b[q·bs:]). Its micro-tiles are
// written by the kernel into quadrant direct in place (alpha·product, added
// to it unless init), or, when direct is -1, computed into an L1 tile
// and added into quadrants by ops.
type swProduct struct {
	a         []float32
	lda, rows int
	b         []float32
	bs        int
	direct    int
	alpha     float32 // of direct
	init      bool    // direct: its first K chunk sets the quadrant (beta = swJob.beta)
	ops       [4]swOp
	nops      int
}

// swOp adds alpha·tile into quadrant dst. On the product's first K
// chunk, init sets dst (beta = swJob.beta), and src >= 0 sets it to
// quadrant src + alpha·tile (swJob.beta is then 0); later chunks add.
type swOp struct {
	dst, src int
	alpha    float32
	init     bool
}

// swJob is one Strassen–Winograd Linear: the 7 products over the tasks of
// g's schedule of the quarter problem (mh × N/2 × K/2), a task being a
// block of every quadrant (see run for the order).
type swJob struct {
	g     gemmJob // schedule, task counter, path; m, n, k of the quarter
	mh    int     // rows of C11, C12 (C21, C22 have m − mh)
	prods [7]swProduct
	// quad[d] is quadrant d as a C for the epilogue (c, ldc, act, res).
	quad   [4]gemmJob
	qrows  [4]int
	bias   [4][]float32 // bias of quadrant d's columns, or nil
	final  [4]int       // index of the last product adding into quadrant d
	beta   float32      // of the first product (1: y += x·Wᵀ)
	sumBuf *[]float32

	ws   winoSums
	sums rowPhase // of ws
	// done[t] is how many products block t has finished.
	done []atomic.Int32
}

var (
	swPool = sync.Pool{New: func() any { return new(swJob) }}
	// swBufPool holds the sums' scratch (on huge pages: HugeFloats).
	swBufPool hugePool
)

// linearStrassen is y = x·Wᵀ + beta·y + bias, act, + residual with one
// level of Strassen–Winograd (w.useStrassen(m), w.winograd() != nil). If
// x holds a NaN or Inf it runs the plain GEMM instead.
//
// With ln set (NormLinear), x is ln's output, formed row by row in the S
// pass from ln's input.
func linearStrassen(th Threads, y, x []float32, m int, w *Packed, bias []float32, beta float32, act Activation, residual []float32, ln *lnJob) {
	im := current.Load()
	sb := w.sw
	n, k := w.N, w.K
	mh, kh, nh := (m+1)/2, k/2, n/2
	m2 := m - mh
	// S1..S4 in scratch, mh × kh each, row stride ls: a multiple of 16
	// floats that is not one of 512 (see needPackA).
	ls := (kh + 15) &^ 15
	if ls%512 == 0 {
		ls += 16
	}
	// A11, A12 and A22 are read in place, unless their row stride (k)
	// would need packing (needPackA): then the pass copies them to scratch
	// too (at ls), once per call, so no operand of a product needs packing.
	copyA := needPackA(false, k, im.mr)
	na := 4
	if copyA {
		na = 7
	}
	j := swPool.Get().(*swJob)
	j.sumBuf = swBufPool.get(na * mh * ls)
	sums := (*j.sumBuf)[:na*mh*ls]
	s := func(i int) []float32 { return sums[i*mh*ls : (i+1)*mh*ls] }
	nw := th.workers(2 * float64(m) * float64(n) * float64(k))
	ws := &j.ws
	ws.im, ws.x, ws.m, ws.mh, ws.k, ws.ls, ws.sums, ws.copyA, ws.ln = im, x, m, mh, k, ls, sums, copyA, ln
	ws.nonFinite.Store(false)
	j.sums.reset(ws, mh, winoRows)
	a11, a12, a22, lda := x, x[kh:], x[mh*k+kh:], k
	if copyA {
		a11, a12, a22, lda = s(4), s(5), s(6), ls
	}

	nph := nh / nr
	b := w.data
	bsFull := k * nr
	t := sb.t
	prods := &j.prods
	sA := func(a []float32, lda, rows int, b []float32, bs int) swProduct {
		return swProduct{a: a, lda: lda, rows: rows, b: b, bs: bs, direct: -1}
	}
	pP1 := sA(a11, lda, mh, b, bsFull)                  // P1 = A11·B11
	pP6 := sA(s(1), ls, mh, t[1], kh*nr)                // P6 = S2·T2
	pP5 := sA(s(0), ls, mh, t[0], kh*nr)                // P5 = S1·T1
	pP7 := sA(s(2), ls, m2, t[2], kh*nr)                // P7 = S3·T3
	pP2 := sA(a12, lda, mh, b[kh*nr:], bsFull)          // P2 = A12·B21
	pP3 := sA(s(3), ls, mh, b[nph*k*nr+kh*nr:], bsFull) // P3 = S4·B22
	pP4 := sA(a22, lda, m2, t[3], kh*nr)                // P4 = A22·T4
	dir := func(p swProduct, d int, alpha float32, init bool) swProduct {
		p.direct, p.alpha, p.init = d, alpha, init
		return p
	}
	ops := func(p swProduct, o ...swOp) swProduct {
		p.nops = copy(p.ops[:], o)
		return p
	}
	if beta == 0 {
		// With beta = 0 the quadrants hold nothing but products, so the
		// 7 additions of Winograd's form can run through C itself:
		//   C11 = P1; C12 = C21 = C11 + P6; C21 += P7;
		//   C22 = C21 + P5, C12 += P5; C12 += P3; C21 −= P4; C11 += P2.
		// Five products go straight into their quadrant (the kernel adds
		// in place) and two through a tile: 7 tile reads and 9 writes of
		// C per micro-tile, against 10 and 14 adding each product into
		// every quadrant it belongs to.
		prods[0] = dir(pP1, c11, 1, true)
		prods[1] = ops(pP6, swOp{dst: c12, src: c11, alpha: 1}, swOp{dst: c21, src: c11, alpha: 1})
		prods[2] = dir(pP7, c21, 1, false)
		prods[3] = ops(pP5, swOp{dst: c12, src: -1, alpha: 1}, swOp{dst: c22, src: c21, alpha: 1})
		prods[4] = dir(pP3, c12, 1, false)
		prods[5] = dir(pP4, c21, -1, false)
		prods[6] = dir(pP2, c11, 1, false)
	} else {
		// Order: P1 first (it touches every quadrant, so it initialises
		// them), then the products shared by several quadrants, then those
		// of one.
		add := func(d int, alpha float32, init bool) swOp { return swOp{dst: d, src: -1, alpha: alpha, init: init} }
		prods[0] = ops(pP1, add(c11, 1, true), add(c12, 1, true), add(c21, 1, true), add(c22, 1, true))
		prods[1] = ops(pP6, add(c12, 1, false), add(c21, 1, false), add(c22, 1, false))
		prods[2] = ops(pP5, add(c12, 1, false), add(c22, 1, false))
		prods[3] = ops(pP7, add(c21, 1, false), add(c22, 1, false))
		prods[4] = dir(pP2, c11, 1, false)
		prods[5] = dir(pP3, c12, 1, false)
		prods[6] = dir(pP4, c21, -1, false)
	}
	for pi := range prods {
		pr := &prods[pi]
		if pr.direct >= 0 {
			j.final[pr.direct] = pi
		}
		for _, o := range pr.ops[:pr.nops] {
			j.final[o.dst] = pi
		}
	}
	j.mh, j.beta = mh, beta
	j.qrows = [4]int{mh, mh, m2, m2}
	for d := range j.quad {
		off := 0
		if d >= c21 {
			off = mh * n
		}
		if d == c12 || d == c22 {
			off += nh
		}
		q := &j.quad[d]
		q.im, q.c, q.ldc, q.act, q.res = im, y[off:], n, act, nil
		if residual != nil {
			q.res = residual[off:]
		}
		j.bias[d] = nil
		if bias != nil {
			j.bias[d] = bias[off%n : off%n+nh]
		}
	}
	g := &j.g
	g.im, g.m, g.n, g.k, g.packA, g.nbMax = im, mh, nh, kh, false, swNB
	g.schedule(nw)
	if cap(j.done) < g.total {
		j.done = make([]atomic.Int32, g.total)
	}
	j.done = j.done[:g.total]
	for i := range j.done {
		j.done[i].Store(0)
	}
	th.run(min(nw, max(g.total, ceilDiv(mh, winoRows))), j)
	if ws.nonFinite.Load() {
		// A NaN or Inf in row r of x would reach rows r and r ± m/2 of y
		// through S1..S4 (another token, maybe another image), and an Inf
		// can turn into NaN in them: the plain GEMM keeps each row to itself.
		j.release()
		runGemmOn(th, im, m, n, k, 1, x, k, false, w.data, beta, y, n, bias, act, residual, dequant{})
		return
	}
	j.release()
}

// release returns j and its scratch to their pools, dropping its
// references for the GC but keeping done's storage and the phase's channel.
func (j *swJob) release() {
	swBufPool.put(j.sumBuf)
	*j = swJob{done: j.done, sums: rowPhase{wake: j.sums.wake}}
	swPool.Put(j)
}

// winoRows is how many rows of S1..S4 a winoSums item forms.
const winoRows = 16

// winoSums forms S1..S4 (mh rows of kh floats each, row stride ls) from x
// (m×k), by rows (a rowPhase of the products job).
type winoSums struct {
	im           *impl
	x            []float32
	m, mh, k, ls int
	sums         []float32
	copyA        bool // also copy A11, A12, A22 (after S4)
	// ln, if set, forms the rows of x first (x is its output).
	ln *lnJob
	// nonFinite is set when x holds a NaN or Inf (see linearStrassen).
	nonFinite atomic.Bool
}

// doRows forms rows [r0, r1) of S1..S4 (from rows r0.. and mh+r0.. of x).
func (ws *winoSums) doRows(r0, r1 int) {
	kh, ls, mh := ws.k/2, ws.ls, ws.mh
	if ws.ln != nil {
		ws.ln.doRows(r0, r1)
		ws.ln.doRows(min(ws.m, mh+r0), min(ws.m, mh+r1))
	}
	s := func(i int) []float32 { return ws.sums[i*mh*ls : (i+1)*mh*ls] }
	s1, s2, s3, s4 := s(0), s(1), s(2), s(3)
	for r := r0; r < r1; r++ {
		a11 := ws.x[r*ws.k : r*ws.k+kh]
		a12 := ws.x[r*ws.k+kh : (r+1)*ws.k]
		d1, d2, d3, d4 := s1[r*ls:r*ls+kh], s2[r*ls:r*ls+kh], s3[r*ls:r*ls+kh], s4[r*ls:r*ls+kh]
		r2 := mh + r
		if ws.copyA {
			copy(s(4)[r*ls:r*ls+kh], a11)
			copy(s(5)[r*ls:r*ls+kh], a12)
			if r2 < ws.m {
				copy(s(6)[r*ls:r*ls+kh], ws.x[r2*ws.k+kh:(r2+1)*ws.k])
			}
		}
		if r2 < ws.m {
			if !ws.im.winoA(d1, d2, d3, d4, a11, a12, ws.x[r2*ws.k:r2*ws.k+kh], ws.x[r2*ws.k+kh:(r2+1)*ws.k]) {
				ws.nonFinite.Store(true)
			}
			continue
		}
		// The zero row padding an odd m: A21 = A22 = 0.
		z := float32(0)
		for i, v := range a11 {
			d1[i], d2[i], d3[i], d4[i] = 0, -v, v, a12[i]+v
			z += 0 * d4[i]
		}
		if z != z {
			ws.nonFinite.Store(true)
		}
	}
}

// run takes tasks in product-major order (all blocks of P1, then of P6,
// ...) when there are several row blocks: consecutive tasks then share a
// product's B block, which stays in L2 (+3–5% at batch 8 over running the
// 7 products per block). A block's next product waits for its previous
// one; tasks are handed out in order, so that one was taken total−1 tasks
// earlier and is done unless its worker was descheduled (then this one
// sleeps rather than spin on the core that worker needs). With one row
// block (batch 1) every block's B is read once either way, and a task
// runs all 7 products of its block, with nothing to wait for.
//
// Every worker first forms chunks of S1..S4 (j.sums) and waits for the
// last ones in progress: one parallel call per Linear instead of two, so
// a helper woken late (or descheduled) by the OS joins the products
// rather than holding up a separate join of the short S pass.
func (j *swJob) run() {
	j.sums.run()
	if j.ws.nonFinite.Load() {
		return // linearStrassen runs the plain GEMM
	}
	s := scratchPool.Get().(*scratch)
	T, np := j.g.total, len(j.prods)
	for {
		u := int(j.g.next.Add(1)) - 1
		if j.g.nIc == 1 {
			if u >= T {
				break
			}
			for p := 0; p < np; p++ {
				j.task(s, u, p)
			}
			continue
		}
		if u >= np*T {
			break
		}
		p, t := u/T, u%T
		for round := 0; j.done[t].Load() < int32(p); round++ {
			pause(round)
		}
		j.task(s, t, p)
		j.done[t].Store(int32(p + 1))
	}
	scratchPool.Put(s)
}

// task runs product pi for block t of the quarter grid.
func (j *swJob) task(s *scratch, t, pi int) {
	g := &j.g
	im := g.im
	mr := im.mr
	i0, i1, q0, q1 := g.block(t)
	tile := &s.tile[0]
	pr := &j.prods[pi]
	e := min(i1, pr.rows)
	if e <= i0 {
		return
	}
	for pc := 0; pc < g.k; pc += g.kc {
		kb := min(g.kc, g.k-pc)
		first, last := pc == 0, pc+kb == g.k
		for i := i0; i < e; i += mr {
			rows := min(mr, pr.rows-i)
			kern, fit, kpf := im.kernel, rows == mr, im.kernelPF
			if rows < mr && im.edge != nil {
				kern, fit, kpf = im.edge[rows], true, nil
			}
			var ap *float32
			var rs, ps int
			switch {
			case rows < mr && im.edge == nil:
				packPanel(im, s.apack[:], pr.a, pr.lda, false, pr.rows, i, pc, kb)
				ap, rs, ps = &s.apack[0], 1, mr
			default:
				ap, rs, ps = &pr.a[i*pr.lda+pc], pr.lda, 1
			}
			if rows < mr {
				kpf = nil
			}
			for q := q0; q < q1; q++ {
				col := q * nr
				bp := &pr.b[q*pr.bs+pc*nr]
				var pf *float32
				if kpf != nil {
					// As gemmJob.nextA: two rows of the next micro-panel per
					// column panel.
					if r := i + mr + 2*((q-q0)%((mr+1)/2)); r+1 < min(e, pr.rows) {
						pf = &pr.a[r*pr.lda+pc]
					}
				}
				if d := pr.direct; d >= 0 && fit {
					// The kernel adds into the quadrant in place.
					c := &j.quad[d]
					beta := float32(1)
					if first && pr.init {
						beta = j.beta
					}
					if kpf != nil {
						kpf(kb, ap, rs, ps, bp, &c.c[i*c.ldc+col], c.ldc, pr.alpha, beta, j.biasAt(d, pi, last, col), pf)
					} else {
						kern(kb, ap, rs, ps, bp, &c.c[i*c.ldc+col], c.ldc, pr.alpha, beta, j.biasAt(d, pi, last, col))
					}
				} else {
					if kpf != nil {
						kpf(kb, ap, rs, ps, bp, tile, nr, 1, 0, nil, pf)
					} else {
						kern(kb, ap, rs, ps, bp, tile, nr, 1, 0, nil)
					}
					var one [1]swOp
					ops := pr.ops[:pr.nops]
					if d := pr.direct; d >= 0 {
						// A direct product whose rows have no kernel of their own.
						one[0] = swOp{dst: d, src: -1, alpha: pr.alpha, init: pr.init}
						ops = one[:]
					}
					for _, o := range ops {
						d := o.dst
						rd := min(rows, j.qrows[d]-i)
						if rd <= 0 {
							continue
						}
						ldc := j.quad[d].ldc
						c := &j.quad[d].c[i*ldc+col]
						beta := float32(1)
						var src *float32
						if first {
							if o.src >= 0 {
								src = &j.quad[o.src].c[i*ldc+col]
							} else if o.init {
								beta = j.beta
							}
						}
						// Prefetch this quadrant's next tile: to the right, or
						// the first of the next micro-panel.
						var pf *float32
						if q+1 < q1 {
							pf = &j.quad[d].c[i*ldc+col+nr]
						} else if i+mr < min(e, j.qrows[d]) {
							pf = &j.quad[d].c[(i+mr)*ldc+q0*nr]
						}
						im.tileAxpy(c, ldc, rd, tile, o.alpha, beta, j.biasAt(d, pi, last, col), pf, src)
					}
				}
				if last {
					for d := range j.final {
						if rd := min(rows, j.qrows[d]-i); j.final[d] == pi && rd > 0 {
							j.quad[d].epilogue(i, rd, col, nr)
						}
					}
				}
			}
		}
	}
}

// biasAt is the bias of quadrant d's tile at col when product pi is its
// last and the K chunk is the last, else nil.
func (j *swJob) biasAt(d, pi int, last bool, col int) *float32 {
	if !last || j.final[d] != pi || j.bias[d] == nil {
		return nil
	}
	return &j.bias[d][col]
}

// tileAxpyGeneric is c[r][j] = alpha·t[r·nr+j] + (beta·s[r][j] + bias[j])
// for rows rows of one nr-wide tile, where s is the tile at src (row
// stride ldc), or c itself when src is nil (beta == 0 reads neither; pf,
// the assembly's prefetch, is ignored).
func tileAxpyGeneric(c *float32, ldc, rows int, t *float32, alpha, beta float32, bias, pf, src *float32) {
	if rows == 0 {
		return
	}
	C := unsafe.Slice(c, (rows-1)*ldc+nr)
	S := C
	if src != nil {
		S = unsafe.Slice(src, (rows-1)*ldc+nr)
	}
	T := unsafe.Slice(t, rows*nr)
	var bv [nr]float32
	if bias != nil {
		bv = *(*[nr]float32)(unsafe.Slice(bias, nr))
	}
	for r := 0; r < rows; r++ {
		row, srow := C[r*ldc:r*ldc+nr], S[r*ldc:r*ldc+nr]
		for jj := range row {
			v := bv[jj]
			if beta != 0 {
				v += beta * srow[jj]
			}
			row[jj] = alpha*T[r*nr+jj] + v
		}
	}
}

// winoAGeneric forms S1 = A21+A22, S2 = S1−A11, S3 = A11−A21, S4 = A12−S2
// elementwise (all slices of one length); false when an input (or S4) is
// not finite.
func winoAGeneric(s1, s2, s3, s4, a11, a12, a21, a22 []float32) bool {
	n := len(s1)
	s2, s3, s4, a11, a12, a21, a22 = s2[:n], s3[:n], s4[:n], a11[:n], a12[:n], a21[:n], a22[:n]
	z := float32(0)
	for i := range s1 {
		v := a21[i] + a22[i]
		s1[i] = v
		v -= a11[i]
		s2[i] = v
		s3[i] = a11[i] - a21[i]
		s4[i] = a12[i] - v
		z += 0 * s4[i]
	}
	return z == z
}

// Arithmetic names the kernels that a model in precision prec runs on, as
// outputs record it (maeembed.kernel): for float32 the path (Path), plus
// "+strassen" with Strassen–Winograd on; for int8 the int8 kernel, whose
// number format differs ("avx512-vnni": 8-bit; "avx2-int8", also what an
// avx512 CPU without VNNI runs: 7-bit weights, 6-bit activations and int8
// attention; "generic-int8"); for bf16 "avx512-bf16" where VDPBF16PS
// runs (bf16Native: it sums each pair of products before accumulating),
// else the path whose float32 kernels multiply the bf16-rounded values.
// Two runs with the same precision but another arithmetic round
// differently.
func Arithmetic(prec Precision) string {
	switch {
	case prec == FP32 && Strassen():
		return Path() + "+strassen"
	case prec == BF16 && bf16Native():
		return Path() + "-bf16"
	case prec == Int8:
		im, _ := i8Kernel(i8FormatForPath())
		return im.name
	}
	return Path()
}
