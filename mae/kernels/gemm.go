package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Blocking parameters. A task is a block of C (mb micro-panels of rows ×
// nb panels of nr columns); inside it the K dimension is walked in chunks
// of kc so that one A micro-panel (mr×kc, ≤ 24 KiB) stays in L1 while the
// B block (kc × nb·nr, packed, ≤ 512 KiB) is streamed from L2. The values
// were tuned on the Zen 4 development machine (1 MiB L2, 32 KiB L1D).
const (
	kcMax     = 512
	maxMR     = 16
	blockRows = 96 // rows of C per task (rounded to micro-panels)
	blockNB   = 8  // column panels per task
	// tasksPerWorker is the fewest tasks per worker a GEMM is cut into
	// when it is big enough: whichever worker is running takes the next
	// task, so on a shared machine a worker slowed by other processes
	// holds up the others by at most one small task.
	tasksPerWorker = 4
)

// Packed is a Linear weight W [N×K] (y = x·Wᵀ + b) packed once into
// column panels of nr: panel q holds W[q·nr+c][p] at data[q·K·nr + p·nr + c],
// zero-padded past N.
type Packed struct {
	N, K int
	data []float32
	prec Precision
	// kw is the number of 32-bit words per panel row along K when they
	// hold two bf16 (native BF16) or four int8 (Int8) each; 0 when data
	// holds float32 values.
	kw int
	// Int8 only, per output column (zero past N, up to whole panels): the
	// weight scale, and aOff·Σ_k q[j][k] as int32 bits (see linearInt8);
	// i8 is the quantisation format.
	scale, comp []float32
	i8          i8Format
	// FP32 only: T1..T4 of Strassen–Winograd, packed on first use (see
	// strassen.go).
	sw     *winogradB
	swOnce sync.Once
}

func numPanels(n int) int { return (n + nr - 1) / nr }

// PackLinear packs w (row-major [n×k], PyTorch nn.Linear layout). The
// result does not alias w. Strassen–Winograd's weight-side sums (as much
// memory again) are packed by Prepare, or on first use.
func PackLinear(w []float32, n, k int) *Packed {
	if n <= 0 || k < 0 || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackLinear: w has %d elements, want %d×%d", len(w), n, k))
	}
	p := &Packed{N: n, K: k, data: HugeFloats(numPanels(n) * k * nr)}
	packB(current.Load(), p.data, w, k, true, k, n, 0, numPanels(n))
	return p
}

// Prepare packs now what Linear would otherwise pack on its first call:
// Strassen–Winograd's weight-side sums T1..T4, for a float32 weight whose
// shape runs with it on the current path (see MAEEMBED_STRASSEN). Call it
// once the precision is final: a weight converted to bf16 or int8 never
// needs them.
func (p *Packed) Prepare() {
	if p.Strassen() {
		p.winograd()
	}
}

// packB packs panels [q0,q1) of op(B) (k×n; op(B)[p][j] = b[p*ldb+j], or
// b[j*ldb+p] when trans) into dst, panel q at dst[q*k*nr:].
func packB(im *impl, dst, b []float32, ldb int, trans bool, k, n, q0, q1 int) {
	for q := q0; q < q1; q++ {
		j0 := q * nr
		cols := min(nr, n-j0)
		d := dst[q*k*nr : (q+1)*k*nr]
		if trans && cols == nr && im.packT16 != nil && k >= 16 {
			// Full panel of a transposed B: 16×16 register transposes.
			k16 := k &^ 15
			_ = b[(j0+nr-1)*ldb+k-1] // bounds, checked once for the assembly
			im.packT16(&d[0], &b[j0*ldb], ldb, k16)
			im.packT16(&d[16], &b[(j0+16)*ldb], ldb, k16)
			for c := 0; c < nr; c++ {
				src := b[(j0+c)*ldb : (j0+c)*ldb+k]
				for p := k16; p < k; p++ {
					d[p*nr+c] = src[p]
				}
			}
			continue
		}
		if !trans {
			for p := 0; p < k; p++ {
				row := d[p*nr : p*nr+nr]
				copy(row, b[p*ldb+j0:p*ldb+j0+cols])
				clear(row[cols:])
			}
			continue
		}
		if cols < nr {
			clear(d)
		}
		for c := 0; c < cols; c++ {
			src := b[(j0+c)*ldb : (j0+c)*ldb+k]
			for p, v := range src {
				d[p*nr+c] = v
			}
		}
	}
}

type packJob struct {
	im     *impl
	dst, b []float32
	ldb    int
	trans  bool
	k, n   int
	next   atomic.Int64
	total  int
}

func (j *packJob) run() {
	for {
		q := int(j.next.Add(4)) - 4
		if q >= j.total {
			return
		}
		packB(j.im, j.dst, j.b, j.ldb, j.trans, j.k, j.n, q, min(q+4, j.total))
	}
}

// packPanel packs one micro-panel of op(A) — rows row0..row0+mr-1 (zero
// past m), columns pc..pc+kb-1 — into dst as kb×mr (element (r,p) at
// dst[p·mr+r]), the layout the kernels read with rs = 1, ps = mr.
func packPanel(im *impl, dst, a []float32, lda int, trans bool, m, row0, pc, kb int) {
	mr := im.mr
	rows := min(mr, m-row0)
	d := dst[:mr*kb]
	if trans {
		for p := 0; p < kb; p++ {
			o := (pc+p)*lda + row0
			copy(d[p*mr:p*mr+rows], a[o:o+rows])
			clear(d[p*mr+rows : p*mr+mr])
		}
		return
	}
	if rows == mr && im.packRows != nil {
		_ = a[(row0+mr-1)*lda+pc+kb-1] // bounds, checked once for the assembly
		im.packRows(&d[0], &a[row0*lda+pc], lda, kb)
		return
	}
	if rows < mr {
		clear(d)
	}
	for r := 0; r < rows; r++ {
		src := a[(row0+r)*lda+pc : (row0+r)*lda+pc+kb]
		dd := d[r:]
		for p, v := range src {
			dd[p*mr] = v
		}
	}
}

// needPackA tells whether a task should pack its block of op(A) (per K
// chunk, into per-worker scratch that stays in L2) before multiplying.
// Unpacked rows are read in place (no copy), which is fastest unless A is
// transposed (a micro-panel would span a cache line per k step), or the
// row stride is a multiple of 2 KiB and the micro-panel has more rows (mr)
// than L1 has ways (8): then its rows, all in the same L1 set, evict each
// other. The 6 rows of the AVX2 tile fit in one set (fc2, K = 3072, runs
// ~15% faster unpacked there); the 12 of AVX-512 do not.
func needPackA(transA bool, lda, mr int) bool {
	return transA || (lda%512 == 0 && mr > 8)
}

// gemmJob is one C = alpha·op(A)·B + beta·C (+ epilogue) over packed B.
type gemmJob struct {
	im          *impl
	m, n, k     int
	alpha, beta float32
	a           []float32
	lda         int
	transA      bool
	bp          []float32 // packed panels of B, K×nr each
	packA       bool      // pack op(A) per task and K chunk (see needPackA)
	padC        bool      // C has room for whole tiles past m and n (scratch)
	c           []float32
	ldc         int
	bias        []float32
	act         Activation
	res         []float32 // residual, ldc layout
	deq         dequant   // int8 epilogue, when deq.rowScale != nil
	kc, mb, nb  int
	nIc, total  int
	// colFirst orders tasks column block first, so that a worker's next
	// task usually has the same row block and reuses its packed A (when
	// K is one chunk; see scratch.aKey).
	colFirst bool
	// nbMax, if set, caps the column panels per task (Strassen's tasks
	// hold four C blocks).
	nbMax int
	id    uint64 // unique per call: identifies packed A in scratch
	// ashared, when set, holds op(A) packed once for all tasks (one row
	// block cut into column tasks with K in several chunks, as batch 1's
	// fc2): panel (i/mr, pc/kc) at ((pc/kc)·rowPanels + i/mr)·mr·kc, ready
	// when its astate is 2.
	ashared []float32
	astate  []atomic.Int32
	sh      *sharedBuf
	next    atomic.Int64
	// pre, if set, runs on every worker before its first task (NormLinear).
	pre *rowPhase
	// guided, when set, replaces the uniform grid: task t is spans[t]
	// (see guide).
	guided bool
	spans  [maxSpans]span
}

// span is one task's block of C: rows [i0, i1), column panels [q0, q1).
type span struct{ i0, i1, q0, q1 int32 }

// maxSpans bounds the tasks of a guided schedule (a longer one keeps the
// uniform grid).
const maxSpans = 64

// block is task t's rows [i0, i1) and column panels [q0, q1).
func (j *gemmJob) block(t int) (i0, i1, q0, q1 int) {
	if j.guided {
		s := &j.spans[t]
		return int(s.i0), int(s.i1), int(s.q0), int(s.q1)
	}
	rb, cb := t%j.nIc, t/j.nIc
	if j.colFirst {
		nJc := j.total / j.nIc
		rb, cb = t/nJc, t%nJc
	}
	i0 = rb * j.mb * j.im.mr
	q0 = cb * j.nb
	return i0, min(j.m, i0+j.mb*j.im.mr), q0, min(numPanels(j.n), q0+j.nb)
}

// guide cuts a problem of one row block (few rows: batch 1) into column
// tasks that narrow towards the end, ending with half-height tasks of one
// panel, so that the workers finish within a small task of each other.
// Uniform tasks of nb panels leave the last worker up to one whole task
// (at K = 3072, ~1 ms) behind the others, and a helper that joins late
// (woken from sleep) makes that the common case. Tasks are handed out in
// order, the widest first: each takes nb panels, or a 2·nw-th of what is
// left when that is less. False (the grid stays) when the tasks would not
// fit in spans.
func (j *gemmJob) guide(nw, panels int) bool {
	mr := j.im.mr
	half := ceilDiv(ceilDiv(j.m, mr), 2) * mr // rows of a tail task
	t := 0
	add := func(i0, i1, q0, q1 int) bool {
		if t == maxSpans {
			return false
		}
		j.spans[t] = span{int32(i0), int32(i1), int32(q0), int32(q1)}
		t++
		return true
	}
	for q := 0; q < panels; {
		rem := panels - q
		if rem <= nw && half < j.m {
			if !add(0, half, q, q+1) || !add(half, j.m, q, q+1) {
				return false
			}
			q++
			continue
		}
		w := min(j.nb, ceilDiv(rem, 2*nw))
		if !add(0, j.m, q, q+w) {
			return false
		}
		q += w
	}
	j.total = t
	return true
}

// sharedPanel returns the packed micro-panel of rows i.. and K chunk pc.
// The first task to need it packs it into ashared; a task that finds it
// being packed by another packs its own copy rather than wait for a worker
// that may be descheduled.
func (j *gemmJob) sharedPanel(s *scratch, i, pc, kb int) *float32 {
	mr := j.im.mr
	idx := (pc/j.kc)*ceilDiv(j.m, mr) + i/mr
	st := &j.astate[idx]
	if st.Load() != 2 {
		if !st.CompareAndSwap(0, 1) {
			if st.Load() != 2 {
				packPanel(j.im, s.apack[:], j.a, j.lda, j.transA, j.m, i, pc, kb)
				return &s.apack[0]
			}
		} else {
			packPanel(j.im, j.ashared[idx*mr*j.kc:], j.a, j.lda, j.transA, j.m, i, pc, kb)
			st.Store(2)
		}
	}
	return &j.ashared[idx*mr*j.kc]
}

// sharedBuf backs gemmJob.ashared and astate for one call.
type sharedBuf struct {
	a  []float32
	st []atomic.Int32
}

// sharedPool holds sharedBufs, per SetHugePages setting (sharedBuf.a is
// from HugeFloats).
var sharedPool [2]sync.Pool

// useShared gives j a packed-A buffer of n panels of mr×kc, none ready.
func (j *gemmJob) useShared(n int) {
	sb, _ := sharedPool[hugeIdx()].Get().(*sharedBuf)
	if sb == nil {
		sb = new(sharedBuf)
	}
	if cap(sb.a) < n*j.im.mr*j.kc {
		sb.a = HugeFloats(n * j.im.mr * j.kc)
	}
	if cap(sb.st) < n {
		sb.st = make([]atomic.Int32, n)
	}
	j.sh, j.ashared, j.astate = sb, sb.a[:n*j.im.mr*j.kc], sb.st[:n]
	for i := range j.astate {
		j.astate[i].Store(0)
	}
}

// release returns the job's pooled buffers.
func (j *gemmJob) release() {
	if j.sh != nil {
		sharedPool[hugeIdx()].Put(j.sh)
		j.sh, j.ashared, j.astate = nil, nil, nil
	}
}

type scratch struct {
	apack [maxMR * kcMax]float32 // one edge micro-panel: mr·kc ≤ maxMR·kcMax on every path
	tile  [maxMR * nr]float32
	bias  [nr]float32
	ablk  []float32 // a task's packed A block (mb panels × kc), grown once
	aKey  ablkKey   // what ablk holds
}

// ablkKey names a packed A block: call, first row, K chunk.
type ablkKey struct {
	id     uint64
	i0, pc int
}

var (
	scratchPool = sync.Pool{New: func() any { return new(scratch) }}
	gemmPool    = sync.Pool{New: func() any { return new(gemmJob) }}
	packPool    = sync.Pool{New: func() any { return new(packJob) }}
	bufPool     = sync.Pool{New: func() any { return new([]float32) }}
	// packedBPool holds Gemm's packed B, on huge pages (see hugeFloats).
	packedBPool = sync.Pool{New: func() any { return new([]float32) }}
)

func (j *gemmJob) run() {
	if j.pre != nil {
		j.pre.run()
	}
	s := scratchPool.Get().(*scratch)
	for {
		t := int(j.next.Add(1)) - 1
		if t >= j.total {
			break
		}
		j.task(s, t)
	}
	scratchPool.Put(s)
}

func (j *gemmJob) task(s *scratch, t int) {
	im := j.im
	mr := im.mr
	i0, i1, q0, q1 := j.block(t)
	k := j.k
	for pc := 0; pc < k; pc += j.kc {
		kb := min(j.kc, k-pc)
		first, last := pc == 0, pc+kb == k
		beta := float32(1)
		if first {
			beta = j.beta
		}
		if key := (ablkKey{j.id, i0, pc}); j.packA && j.ashared == nil && s.aKey != key {
			s.ablk = grow(s.ablk, ceilDiv(i1-i0, mr)*mr*kb)
			for i := i0; i < i1; i += mr {
				packPanel(im, s.ablk[(i-i0)*kb:], j.a, j.lda, j.transA, j.m, i, pc, kb)
			}
			s.aKey = key
		}
		for i := i0; i < i1; i += mr {
			rows := min(mr, j.m-i)
			kern, fit := im.kernel, rows == mr || j.padC
			kpf := im.kernelPF // kernel with a prefetch of the next A panel
			if rows < mr && im.edge != nil {
				// Edge rows: a kernel for just these rows, in place.
				kern, fit, kpf = im.edge[rows], true, nil
			}
			var ap *float32
			var rs, ps int
			switch {
			case j.ashared != nil:
				ap, rs, ps = j.sharedPanel(s, i, pc, kb), 1, mr
			case j.packA:
				ap, rs, ps = &s.ablk[(i-i0)*kb], 1, mr
			case rows < mr && im.edge == nil:
				// Edge rows: pack them zero-padded so the kernel never reads
				// past op(A).
				packPanel(im, s.apack[:], j.a, j.lda, j.transA, j.m, i, pc, kb)
				ap, rs, ps = &s.apack[0], 1, mr
			case j.transA:
				ap, rs, ps = &j.a[pc*j.lda+i], 1, j.lda
			default:
				ap, rs, ps = &j.a[i*j.lda+pc], j.lda, 1
			}
			for q := q0; q < q1; q++ {
				col := q * nr
				cols := min(nr, j.n-col)
				bptr := &j.bp[q*k*nr+pc*nr]
				var bias *float32
				if last && j.bias != nil {
					if cols == nr {
						bias = &j.bias[col]
					} else {
						copy(s.bias[:], j.bias[col:col+cols])
						clear(s.bias[cols:])
						bias = &s.bias[0]
					}
				}
				if fit && (cols == nr || j.padC) && kpf != nil {
					kpf(kb, ap, rs, ps, bptr, &j.c[i*j.ldc+col], j.ldc, j.alpha, beta, bias, j.nextA(s, i0, i1, i, q-q0, pc, kb))
				} else if fit && (cols == nr || j.padC) {
					kern(kb, ap, rs, ps, bptr, &j.c[i*j.ldc+col], j.ldc, j.alpha, beta, bias)
				} else {
					tile := s.tile[:mr*nr]
					if beta != 0 {
						clear(tile)
						for r := 0; r < rows; r++ {
							copy(tile[r*nr:r*nr+cols], j.c[(i+r)*j.ldc+col:])
						}
					}
					kern(kb, ap, rs, ps, bptr, &tile[0], nr, j.alpha, beta, bias)
					for r := 0; r < rows; r++ {
						copy(j.c[(i+r)*j.ldc+col:(i+r)*j.ldc+col+cols], tile[r*nr:])
					}
				}
				if last {
					j.epilogue(i, rows, col, cols)
				}
			}
		}
	}
}

// nextA is what the kernel for the qi-th column panel of micro-panel i
// prefetches (impl.kernelPF's pf): two rows of the task's next micro-panel,
// another pair for each panel, so that the whole micro-panel is in cache
// before it is first used; the whole next panel when A is packed; nil
// after the task's last micro-panel.
func (j *gemmJob) nextA(s *scratch, i0, i1, i, qi, pc, kb int) *float32 {
	mr := j.im.mr
	if j.im.kernelPF == nil || i+mr >= i1 || j.ashared != nil {
		return nil // (a shared panel may not be packed yet)
	}
	if j.packA {
		return &s.ablk[(i+mr-i0)*kb]
	}
	r := i + mr + 2*(qi%((mr+1)/2))
	if j.transA || r+1 >= j.m {
		return nil
	}
	return &j.a[r*j.lda+pc]
}

// dequant is the int8 GEMM's epilogue: C[r][j] = C[r][j]·rowScale[r]·
// colScale[j] + bias[j] (C holds the compensated int32 sums as float32),
// before the activation and residual.
type dequant struct {
	rowScale, colScale, bias []float32 // m; N; N (zeros when no bias)
}

// epilogue applies dequantisation (int8), the activation and residual to a
// finished tile while it is still in L1.
func (j *gemmJob) epilogue(i, rows, col, cols int) {
	if d := &j.deq; d.rowScale != nil {
		if cols == nr && j.im.dequantTile != nil {
			j.im.dequantTile(&j.c[i*j.ldc+col], j.ldc, rows, &d.rowScale[i], &d.colScale[col], &d.bias[col])
		} else {
			for r := i; r < i+rows; r++ {
				s := d.rowScale[r]
				row := j.c[r*j.ldc+col : r*j.ldc+col+cols]
				for jj := range row {
					row[jj] = row[jj]*(s*d.colScale[col+jj]) + d.bias[col+jj]
				}
			}
		}
	}
	if j.act == ActNone && j.res == nil {
		return
	}
	gelu := j.act == ActGELU
	if gelu && cols == nr && j.im.geluTile != nil {
		j.im.geluTile(&j.c[i*j.ldc+col], j.ldc, rows)
		gelu = false
	}
	for r := i; r < i+rows; r++ {
		row := j.c[r*j.ldc+col : r*j.ldc+col+cols]
		if gelu {
			j.im.gelu(row)
		}
		if j.res != nil {
			j.im.add(row, j.res[r*j.ldc+col:r*j.ldc+col+cols])
		}
	}
}

// schedule picks the task grid for nw workers.
func (j *gemmJob) schedule(nw int) {
	mr := j.im.mr
	j.kc = kcMax
	if j.im.kc > 0 {
		j.kc = j.im.kc
	}
	if j.k > j.kc && j.k < 2*j.kc {
		j.kc = (j.k + 1) / 2 // two even chunks beat one full and one sliver
	}
	if j.im.kcLong > 0 && j.k > 2*j.kc {
		// K of more than two chunks (the plain fc2, K = 3072): shorter
		// chunks (see impl.kcLong). Like kc, this depends on K alone, so
		// that an element's sum does not depend on the rows of the call.
		j.kc = j.im.kcLong
	}
	j.mb, j.nb = max(1, blockRows/mr), blockNB
	if j.im.nb > 0 {
		j.nb = j.im.nb
	}
	if j.nbMax > 0 {
		j.nb = min(j.nb, j.nbMax)
	}
	panels := numPanels(j.n)
	rowPanels := (j.m + mr - 1) / mr
	j.guided = false
	if rowPanels <= 3*j.mb {
		// Few rows (batch 1: 197): one row block, so each B block is read
		// from memory once and A's kc-slice stays in L2 beside it.
		j.mb = rowPanels
		if nw > 1 && j.guide(nw, panels) {
			j.guided, j.nIc = true, 1
			j.finish(nw, rowPanels)
			return
		}
	} else {
		// Even row blocks, not a full ones plus a sliver.
		j.mb = ceilDiv(rowPanels, ceilDiv(rowPanels, j.mb))
	}
	// Split columns first (B blocks stay whole per task): take the task
	// width that gives the busiest worker the least work, with at least
	// tasksPerWorker tasks each when possible, preferring wider tasks on
	// ties. (9 equal tasks on 2 workers would leave one idle for a ninth.)
	nIc := ceilDiv(rowPanels, j.mb)
	best, bestCost := 0, 0
	for nb := min(j.nb, panels); nb >= 1; nb-- {
		tasks := nIc * ceilDiv(panels, nb)
		if tasks < tasksPerWorker*nw && nb > 1 {
			continue
		}
		if cost := ceilDiv(tasks, nw) * nb; best == 0 || cost < bestCost {
			best, bestCost = nb, cost
		}
	}
	j.nb = best
	// Still too few tasks (tiny n): split rows too.
	for j.mb > 1 && ceilDiv(rowPanels, j.mb)*ceilDiv(panels, j.nb) < tasksPerWorker*nw {
		j.mb = (j.mb + 1) / 2
	}
	j.nIc = ceilDiv(rowPanels, j.mb)
	j.total = j.nIc * ceilDiv(panels, j.nb)
	j.finish(nw, rowPanels)
}

// finish sets what follows from the task grid (schedule's end).
func (j *gemmJob) finish(nw, rowPanels int) {
	// A packed A block outlives a task only when K is one chunk: then go
	// along its row block. (Otherwise consecutive tasks share B blocks.)
	j.colFirst = j.packA && j.k <= j.kc
	j.id = callID.Add(1)
	if j.packA && j.nIc == 1 && j.k > j.kc && nw > 1 {
		// Every task would pack the same A, chunk by chunk: pack it once
		// for all workers (+5% on batch 1's fc2 at 2 threads). One worker
		// does better repacking each chunk into L2 (−2% from L3 reads).
		j.useShared(ceilDiv(j.k, j.kc) * rowPanels)
	}
	j.next.Store(0)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// runGemm runs C = alpha·op(A)·B + beta·C + bias, act, + res with B packed,
// on the current path.
func runGemm(m, n, k int, alpha float32, a []float32, lda int, transA bool, bp []float32,
	beta float32, c []float32, ldc int, bias []float32, act Activation, res []float32) {
	runGemmOn(All, current.Load(), m, n, k, alpha, a, lda, transA, bp, beta, c, ldc, bias, act, res, dequant{})
}

// runGemmOn is runGemm on path im (whose kernel defines what a k step of A
// and B is: one float32, or one word of two bf16), on th's goroutines.
func runGemmOn(th Threads, im *impl, m, n, k int, alpha float32, a []float32, lda int, transA bool, bp []float32,
	beta float32, c []float32, ldc int, bias []float32, act Activation, res []float32, deq dequant) {
	runGemmWith(th, nil, im, m, n, k, alpha, a, lda, transA, bp, beta, c, ldc, bias, act, res, deq)
}

// runGemmWith is runGemmOn with a first phase pre (nil: none) that forms A
// (k > 0).
func runGemmWith(th Threads, pre *rowPhase, im *impl, m, n, k int, alpha float32, a []float32, lda int, transA bool, bp []float32,
	beta float32, c []float32, ldc int, bias []float32, act Activation, res []float32, deq dequant) {
	if k == 0 {
		// Nothing to multiply: C = beta·C + bias, then the epilogue.
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for jj := range row {
				v := float32(0)
				if beta != 0 {
					v = beta * row[jj]
				}
				if bias != nil {
					v += bias[jj]
				}
				row[jj] = v
			}
			if act == ActGELU {
				im.gelu(row)
			}
			if res != nil {
				im.add(row, res[i*ldc:i*ldc+n])
			}
		}
		return
	}
	j := gemmPool.Get().(*gemmJob)
	*j = gemmJob{im: im, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, lda: lda, transA: transA,
		bp: bp, c: c, ldc: ldc, bias: bias, act: act, res: res, deq: deq, pre: pre}
	nw := th.workers(2 * float64(m) * float64(n) * float64(k))
	j.packA = needPackA(transA, lda, im.mr)
	j.schedule(nw)
	th.run(min(nw, j.total), j)
	j.release()
	*j = gemmJob{} // drop references for the GC
	gemmPool.Put(j)
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans.
// op(A) is m×k, op(B) is k×n, all row-major with leading dimensions
// lda, ldb, ldc. beta == 0 means C is only written (NaN in C does not
// propagate), as in BLAS; C must not overlap A or B. This is the one GEMM
// entry point of the project.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	checkMat("A", a, m, k, lda, transA)
	checkMat("B", b, k, n, ldb, transB)
	checkMat("C", c, m, n, ldc, false)
	if ce := extent(m, n, ldc, false); overlaps(c, ce, a, extent(m, k, lda, transA)) || overlaps(c, ce, b, extent(k, n, ldb, transB)) {
		panic("kernels.Gemm: C overlaps A or B")
	}
	if alpha == 0 {
		runGemm(m, n, 0, 0, nil, 0, false, nil, beta, c, ldc, nil, ActNone, nil)
		return
	}
	need := numPanels(n) * k * nr
	bufp := packedBPool.Get().(*[]float32)
	if cap(*bufp) < need {
		*bufp = hugeFloats(need)
	}
	bp := (*bufp)[:need]
	pj := packPool.Get().(*packJob)
	*pj = packJob{im: current.Load(), dst: bp, b: b, ldb: ldb, trans: transB, k: k, n: n, total: numPanels(n)}
	parallel(min(All.workers(float64(k)*float64(n)*8), ceilDiv(numPanels(n), 4)), pj)
	*pj = packJob{}
	packPool.Put(pj)
	runGemm(m, n, k, alpha, a, lda, transA, bp, beta, c, ldc, nil, ActNone, nil)
	packedBPool.Put(bufp)
}

// overlaps tells whether the first n elements of a and of b share memory.
func overlaps(a []float32, na int, b []float32, nb int) bool {
	if na == 0 || nb == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return pa < pb+uintptr(nb)*4 && pb < pa+uintptr(na)*4
}

// extent is how many elements a rows×cols operand (stored transposed when
// trans) spans with leading dimension ld.
func extent(rows, cols, ld int, trans bool) int {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// checkMat panics if x cannot hold a rows×cols operand (stored transposed
// when trans) with leading dimension ld.
func checkMat(name string, x []float32, rows, cols, ld int, trans bool) {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return
	}
	if ld < cols || len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("kernels.Gemm: %s is %d×%d with ld %d but has %d elements", name, rows, cols, ld, len(x)))
	}
}

// Linear computes y[m×N] = x[m×K]·Wᵀ + bias, then act, then y += residual
// (residual is m×N and may be y itself, but must not partly overlap it;
// y must not overlap x). bias and residual may be nil.
func Linear(y, x []float32, m int, w *Packed, bias []float32, act Activation, residual []float32) {
	All.Linear(y, x, m, w, bias, act, residual)
}

// Linear is the package-level Linear on th's goroutines.
func (th Threads) Linear(y, x []float32, m int, w *Packed, bias []float32, act Activation, residual []float32) {
	if m == 0 {
		return
	}
	if len(x) < m*w.K || len(y) < m*w.N || (bias != nil && len(bias) < w.N) || (residual != nil && len(residual) < m*w.N) {
		panic(fmt.Sprintf("kernels.Linear: m=%d N=%d K=%d: len(y)=%d len(x)=%d len(bias)=%d len(residual)=%d",
			m, w.N, w.K, len(y), len(x), len(bias), len(residual)))
	}
	if overlaps(y, m*w.N, x, m*w.K) {
		panic("kernels.Linear: y overlaps x")
	}
	if residual != nil && &residual[0] != &y[0] && overlaps(y, m*w.N, residual, m*w.N) {
		panic("kernels.Linear: residual partly overlaps y")
	}
	beta := float32(0)
	if residual != nil && &residual[0] == &y[0] {
		// (int8 scales C after the kernel: beta·C would be scaled too.)
		if act == ActNone && w.prec != Int8 {
			// y = x·Wᵀ + b + y: the residual is just beta = 1.
			beta, residual = 1, nil
		} else {
			// The kernel overwrites y before the epilogue reads the
			// residual, so keep a copy (pooled: no allocation per call).
			bufp := bufPool.Get().(*[]float32)
			if cap(*bufp) < m*w.N {
				*bufp = make([]float32, m*w.N)
			}
			res := (*bufp)[:m*w.N]
			copy(res, residual)
			w.mul(th, y, x, m, bias, 0, act, res)
			bufPool.Put(bufp)
			return
		}
	}
	w.mul(th, y, x, m, bias, beta, act, residual)
}

// mul is y = x·Wᵀ + beta·y + bias, act, + residual in w's precision.
func (w *Packed) mul(th Threads, y, x []float32, m int, bias []float32, beta float32, act Activation, residual []float32) {
	switch w.prec {
	case BF16:
		linearBF16(th, y, x, m, w, bias, beta, act, residual)
		return
	case Int8:
		linearInt8(th, y, x, m, w, bias, act, residual)
		return
	}
	if w.useStrassen(m) && w.winograd() != nil {
		linearStrassen(th, y, x, m, w, bias, beta, act, residual, nil)
		return
	}
	runGemmOn(th, current.Load(), m, w.N, w.K, 1, x, w.K, false, w.data, beta, y, w.N, bias, act, residual, dequant{})
}
