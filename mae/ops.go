package mae

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// The model's hot operations as spago autograd functions. Their forward
// passes call the same kernels as the inference path; their backward passes
// are GEMMs and the textbook derivatives, so the model can be trained with
// spago's optimizers. Inference (Embed, Reconstruct) runs the kernels on
// reused buffers instead of building a graph.

func data(t mat.Tensor) []float32 { return mat.Data[float32](t.Value()) }

func dense(rows, cols int, v []float32) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(v))
}

func accGrad(t mat.Tensor, g []float32, shape ...int) {
	if t.RequiresGrad() {
		t.AccGrad(mat.NewDense[float32](mat.WithShape(shape...), mat.WithBacking(g)))
	}
}

// linearFn is y[m×n] = x[m×k]·Wᵀ + b.
type linearFn struct {
	x, w, b mat.Tensor
	m, k, n int
}

func (f *linearFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.w, f.b} }

func (f *linearFn) Forward() (mat.Tensor, error) {
	y := make([]float32, f.m*f.n)
	b := data(f.b)
	for i := 0; i < f.m; i++ {
		copy(y[i*f.n:(i+1)*f.n], b)
	}
	kernels.Gemm(false, true, f.m, f.n, f.k, 1, data(f.x), f.k, data(f.w), f.k, 1, y, f.n)
	return dense(f.m, f.n, y), nil
}

func (f *linearFn) Backward(gyT mat.Tensor) error {
	gy := mat.Data[float32](gyT)
	if f.x.RequiresGrad() {
		gx := make([]float32, f.m*f.k)
		kernels.Gemm(false, false, f.m, f.k, f.n, 1, gy, f.n, data(f.w), f.k, 0, gx, f.k)
		accGrad(f.x, gx, f.m, f.k)
	}
	if f.w.RequiresGrad() {
		gw := make([]float32, f.n*f.k)
		kernels.Gemm(true, false, f.n, f.k, f.m, 1, gy, f.n, data(f.x), f.k, 0, gw, f.k)
		accGrad(f.w, gw, f.w.Shape()...)
	}
	if f.b.RequiresGrad() {
		gb := make([]float32, f.n)
		for i := 0; i < f.m; i++ {
			for j, v := range gy[i*f.n : (i+1)*f.n] {
				gb[j] += v
			}
		}
		accGrad(f.b, gb, f.b.Shape()...)
	}
	return nil
}

// layerNormFn normalises each row of x [rows×d].
type layerNormFn struct {
	x, g, b mat.Tensor
	rows, d int
	eps     float32
}

func (f *layerNormFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.g, f.b} }

func (f *layerNormFn) Forward() (mat.Tensor, error) {
	y := make([]float32, f.rows*f.d)
	kernels.LayerNorm(y, data(f.x), f.rows, f.d, data(f.g), data(f.b), f.eps)
	return dense(f.rows, f.d, y), nil
}

func (f *layerNormFn) Backward(gyT mat.Tensor) error {
	gy, x, g := mat.Data[float32](gyT), data(f.x), data(f.g)
	d := f.d
	gx := make([]float32, len(x))
	gg := make([]float32, d)
	gb := make([]float32, d)
	xhat := make([]float64, d)
	for r := 0; r < f.rows; r++ {
		row, gr := x[r*d:(r+1)*d], gy[r*d:(r+1)*d]
		var mean, v float64
		for _, a := range row {
			mean += float64(a)
		}
		mean /= float64(d)
		for _, a := range row {
			v += (float64(a) - mean) * (float64(a) - mean)
		}
		rstd := 1 / math.Sqrt(v/float64(d)+float64(f.eps))
		var s1, s2 float64
		for j, a := range row {
			xhat[j] = (float64(a) - mean) * rstd
			dh := float64(gr[j]) * float64(g[j])
			s1 += dh
			s2 += dh * xhat[j]
			gg[j] += gr[j] * float32(xhat[j])
			gb[j] += gr[j]
		}
		s1 /= float64(d)
		s2 /= float64(d)
		for j := range row {
			dh := float64(gr[j]) * float64(g[j])
			gx[r*d+j] = float32(rstd * (dh - s1 - xhat[j]*s2))
		}
	}
	accGrad(f.x, gx, f.rows, d)
	accGrad(f.g, gg, f.g.Shape()...)
	accGrad(f.b, gb, f.b.Shape()...)
	return nil
}

// geluFn is the exact (erf) GELU.
type geluFn struct{ x mat.Tensor }

func (f *geluFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *geluFn) Forward() (mat.Tensor, error) {
	y := append([]float32(nil), data(f.x)...)
	kernels.GELU(y)
	s := f.x.Value().Shape()
	return mat.NewDense[float32](mat.WithShape(s...), mat.WithBacking(y)), nil
}

func (f *geluFn) Backward(gyT mat.Tensor) error {
	gy, x := mat.Data[float32](gyT), data(f.x)
	gx := make([]float32, len(x))
	geluBackward(gx, gy, x)
	accGrad(f.x, gx, f.x.Value().Shape()...)
	return nil
}

// attentionFn is multi-head self-attention over qkv rows laid out
// [3][heads][headDim], per image of t tokens.
type attentionFn struct {
	qkv             mat.Tensor
	n, t, heads, hd int
}

func (f *attentionFn) Operands() []mat.Tensor { return []mat.Tensor{f.qkv} }

func (f *attentionFn) Forward() (mat.Tensor, error) {
	d := f.heads * f.hd
	out := make([]float32, f.n*f.t*d)
	kernels.Attention(out, data(f.qkv), f.n, f.t, f.heads, f.hd)
	return dense(f.n*f.t, d, out), nil
}

// Backward recomputes each head's probabilities P = softmax(s·QKᵀ) and uses
// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dP∘P)), dQ = s·dS·K, dK = s·dSᵀ·Q.
func (f *attentionFn) Backward(gyT mat.Tensor) error {
	if !f.qkv.RequiresGrad() {
		return nil
	}
	gy, qkv := mat.Data[float32](gyT), data(f.qkv)
	gq := make([]float32, len(qkv))
	// Each (image, head) writes its own columns of gq: split them over the
	// cores (at t ≈ 50 tokens a head's GEMMs are too small to split).
	items := f.n * f.heads
	w := min(runtime.GOMAXPROCS(0), items)
	var wg sync.WaitGroup
	for k := range w {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			p := make([]float32, f.t*f.t)
			dp := make([]float32, f.t*f.t)
			for it := k; it < items; it += w {
				f.headBackward(gq, gy, qkv, it/f.heads, it%f.heads, p, dp)
			}
		}(k)
	}
	wg.Wait()
	accGrad(f.qkv, gq, f.n*f.t, 3*f.heads*f.hd)
	return nil
}

// headBackward adds head h of image b to gq, with p and dp as t×t scratch.
func (f *attentionFn) headBackward(gq, gy, qkv []float32, b, h int, p, dp []float32) {
	t, hd, d := f.t, f.hd, f.heads*f.hd
	ld := 3 * d
	scale := float32(1 / math.Sqrt(float64(hd)))
	base := b * t * ld
	q := qkv[base+h*hd:]
	k := qkv[base+d+h*hd:]
	v := qkv[base+2*d+h*hd:]
	do := gy[b*t*d+h*hd:]
	kernels.Gemm(false, true, t, t, hd, scale, q, ld, k, ld, 0, p, t)
	for i := 0; i < t; i++ {
		kernels.Softmax(p[i*t : (i+1)*t])
	}
	// dV = Pᵀ·dO
	kernels.Gemm(true, false, t, hd, t, 1, p, t, do, d, 0, gq[base+2*d+h*hd:], ld)
	// dP = dO·Vᵀ
	kernels.Gemm(false, true, t, t, hd, 1, do, d, v, ld, 0, dp, t)
	for i := 0; i < t; i++ {
		pr, dr := p[i*t:(i+1)*t], dp[i*t:(i+1)*t]
		var s float32
		for j := range pr {
			s += pr[j] * dr[j]
		}
		for j := range pr {
			dr[j] = pr[j] * (dr[j] - s)
		}
	}
	kernels.Gemm(false, false, t, hd, t, scale, dp, t, k, ld, 0, gq[base+h*hd:], ld)
	kernels.Gemm(true, false, t, hd, t, scale, dp, t, q, ld, 0, gq[base+d+h*hd:], ld)
}

// tokensFn assembles the encoder input: per image the cls token then the
// patch embeddings, each plus its position row. With ids (per image the keep
// kept patch indices in ids_shuffle order, as random_masking gathers them)
// the result is [n·(1+keep)×D]; without, all L patches in raster order.
type tokensFn struct {
	pe, cls, pos mat.Tensor
	n, l, d      int
	ids          []int // [n·keep] or nil
	keep         int
}

// patch is the index of the k-th token's patch of image b.
func (f *tokensFn) patch(b, k int) int {
	if f.ids == nil {
		return k
	}
	return f.ids[b*f.keep+k]
}

func (f *tokensFn) tokens() int {
	if f.ids == nil {
		return f.l
	}
	return f.keep
}

func (f *tokensFn) Operands() []mat.Tensor { return []mat.Tensor{f.pe, f.cls, f.pos} }

func (f *tokensFn) Forward() (mat.Tensor, error) {
	pe, cls, pos := data(f.pe), data(f.cls), data(f.pos)
	t, d := 1+f.tokens(), f.d
	x := make([]float32, f.n*t*d)
	for b := 0; b < f.n; b++ {
		for i := 0; i < t; i++ {
			dst := x[(b*t+i)*d : (b*t+i+1)*d]
			src, pr := cls, pos[:d]
			if i > 0 {
				id := f.patch(b, i-1)
				src, pr = pe[(b*f.l+id)*d:(b*f.l+id+1)*d], pos[(1+id)*d:(2+id)*d]
			}
			for j := range dst {
				dst[j] = src[j] + pr[j]
			}
		}
	}
	return dense(f.n*t, d, x), nil
}

func (f *tokensFn) Backward(gyT mat.Tensor) error {
	gy := mat.Data[float32](gyT)
	t, d := 1+f.tokens(), f.d
	gpe := make([]float32, f.n*f.l*d)
	gcls := make([]float32, d)
	gpos := make([]float32, (1+f.l)*d)
	for b := 0; b < f.n; b++ {
		for i := 0; i < t; i++ {
			g := gy[(b*t+i)*d : (b*t+i+1)*d]
			if i == 0 {
				for j, v := range g {
					gcls[j] += v
					gpos[j] += v
				}
				continue
			}
			id := f.patch(b, i-1)
			copy(gpe[(b*f.l+id)*d:], g)
			for j, v := range g {
				gpos[(1+id)*d+j] += v
			}
		}
	}
	accGrad(f.pe, gpe, f.n*f.l, d)
	accGrad(f.cls, gcls, f.cls.Shape()...)
	accGrad(f.pos, gpos, f.pos.Shape()...)
	return nil
}

func run(f ag.AutoGradFunction) mat.Tensor { return ag.NewOperator(f).Run() }

func (l *Linear) graph(x mat.Tensor, m int) mat.Tensor {
	return run(&linearFn{x: x, w: l.Weight(), b: l.B, m: m, k: l.In, n: l.Out})
}

func (n *LayerNorm) graph(x mat.Tensor, rows int) mat.Tensor {
	return run(&layerNormFn{x: x, g: n.W, b: n.B, rows: rows, d: len(paramData(n.W)), eps: n.Eps})
}

func (b *Block) graph(x mat.Tensor, n, t, d int) mat.Tensor {
	rows := n * t
	qkv := b.QKV.graph(b.Norm1.graph(x, rows), rows)
	a := run(&attentionFn{qkv: qkv, n: n, t: t, heads: b.Heads, hd: d / b.Heads})
	x = ag.Add(x, b.Proj.graph(a, rows))
	h := run(&geluFn{x: b.FC1.graph(b.Norm2.graph(x, rows), rows)})
	return ag.Add(x, b.FC2.graph(h, rows))
}

// EncodeGraph runs the encoder on whole images as a spago graph, for
// training: patches is [n·L × p·p·3]; the result is the normed tokens
// [n·(1+L) × D] (cls first per image), differentiable with ag.Backward
// with respect to every parameter that requires gradients.
func (m *Model) EncodeGraph(patches mat.Tensor, n int) (mat.Tensor, error) {
	c, e := m.Config, m.Encoder
	l, d := c.NumPatches(), c.Dim
	if s := patches.Shape(); len(s) != 2 || s[0] != n*l || s[1] != c.PatchDim() {
		return nil, fmt.Errorf("encode: patches have shape %v, want [%d %d]", s, n*l, c.PatchDim())
	}
	if e.Norm == nil {
		return nil, fmt.Errorf("encode: the checkpoint has no encoder norm")
	}
	pe := e.PatchEmbed.graph(patches, n*l)
	x := run(&tokensFn{pe: pe, cls: e.ClsToken, pos: e.PosEmbed, n: n, l: l, d: d})
	for _, b := range e.Blocks {
		x = b.graph(x, n, 1+l, d)
	}
	return e.Norm.graph(x, n*(1+l)), nil
}
