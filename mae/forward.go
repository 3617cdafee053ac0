package mae

import (
	"fmt"
	"math"
	"sync"

	"github.com/maeembed/maeembed/mae/kernels"
)

// workspace holds the activation buffers of one forward pass, reused from
// batch to batch so the hot path allocates nothing after warm-up.
type workspace struct {
	mu   sync.Mutex
	bufs [numBufs][]float32
	ids  []int
}

const (
	bufX = iota
	bufH
	bufQKV
	bufAttn
	bufMLP
	bufPE
	bufDX
	bufPred
	numBufs
)

func (w *workspace) get(i, n int) []float32 {
	if cap(w.bufs[i]) < n {
		w.bufs[i] = make([]float32, n)
	}
	return w.bufs[i][:n]
}

// Pool selects how token features become one embedding.
type Pool string

const (
	PoolCLS    Pool = "cls"    // the normed cls token
	PoolMean   Pool = "mean"   // mean of the normed patch tokens, cls excluded
	PoolTokens Pool = "tokens" // all normed tokens, cls first
	PoolGlobal Pool = "global" // fine-tuned: fc_norm(mean of un-normed patch tokens)
)

// ParsePool checks a pool name.
func ParsePool(s string) (Pool, error) {
	switch p := Pool(s); p {
	case PoolCLS, PoolMean, PoolTokens, PoolGlobal:
		return p, nil
	}
	return "", fmt.Errorf("unknown pool %q (want cls, mean, tokens or global)", s)
}

// EmbedDim is the length of one image's embedding for a pool.
func (m *Model) EmbedDim(p Pool) int {
	if p == PoolTokens {
		return (1 + m.Config.NumPatches()) * m.Config.Dim
	}
	return m.Config.Dim
}

// CheckPool tells whether the weights support a pool.
func (m *Model) CheckPool(p Pool) error {
	switch {
	case p == PoolGlobal && m.Encoder.FCNorm == nil:
		return fmt.Errorf("pool global needs a fine-tuned checkpoint with fc_norm")
	case p != PoolGlobal && m.Encoder.Norm == nil:
		return fmt.Errorf("pool %s needs the encoder norm, which this fine-tuned checkpoint lacks; use --pool global", p)
	}
	return nil
}

// Embed runs the encoder on whole images (no masking, no shuffling) and
// writes one embedding per image into out (n·EmbedDim(pool) values).
// patches is [n, L, p·p·3] as Patchify makes it.
func (m *Model) Embed(out, patches []float32, n int, pool Pool) error {
	if err := m.CheckPool(pool); err != nil {
		return err
	}
	c := m.Config
	l, d := c.NumPatches(), c.Dim
	if len(patches) != n*l*c.PatchDim() || len(out) != n*m.EmbedDim(pool) {
		return fmt.Errorf("embed: %d images need %d patch values and %d outputs, got %d and %d",
			n, n*l*c.PatchDim(), n*m.EmbedDim(pool), len(patches), len(out))
	}
	m.ws.mu.Lock()
	defer m.ws.mu.Unlock()
	x, t := m.encode(patches, n, nil)
	e := m.Encoder
	if pool == PoolGlobal {
		for b := 0; b < n; b++ {
			o := out[b*d : (b+1)*d]
			meanRows(o, x[(b*t+1)*d:(b+1)*t*d], l, d)
		}
		e.FCNorm.apply(out, out, n)
		return nil
	}
	e.Norm.apply(x, x, n*t)
	for b := 0; b < n; b++ {
		tok := x[b*t*d : (b+1)*t*d]
		switch pool {
		case PoolCLS:
			copy(out[b*d:(b+1)*d], tok[:d])
		case PoolMean:
			meanRows(out[b*d:(b+1)*d], tok[d:], l, d)
		case PoolTokens:
			copy(out[b*t*d:(b+1)*t*d], tok)
		}
	}
	return nil
}

// encode runs the encoder blocks (not the final norm) on the patches of n
// images, all of them in raster order or the kept ones of mk, and returns
// the token buffer [n·t, D] (from the workspace; ws.mu must be held) and t,
// the tokens per image (cls included).
func (m *Model) encode(patches []float32, n int, mk *Masking) ([]float32, int) {
	c := m.Config
	t := 1 + c.NumPatches()
	if mk != nil {
		t = 1 + mk.Keep
	}
	x := m.ws.get(bufX, n*t*c.Dim)
	m.embedPatches(x, patches, n, mk)
	m.runBlocks(m.Encoder.Blocks, x, n, t, c.Dim, c.MLPDim)
	return x, t
}

// meanRows averages rows [rows, d] into dst [d], summing in float64 so the
// order of summation does not matter at float32 precision.
func meanRows(dst, rows []float32, n, d int) {
	for j := 0; j < d; j++ {
		var s float64
		for i := 0; i < n; i++ {
			s += float64(rows[i*d+j])
		}
		dst[j] = float32(s / float64(n))
	}
}

// embedPatches writes into x the encoder input: for each image the cls token
// (+ its pos row) then the patch embeddings (+ pos) of the kept patches in
// ids order (all patches in raster order when keep is nil).
func (m *Model) embedPatches(x, patches []float32, n int, mk *Masking) {
	c, e := m.Config, m.Encoder
	l, d := c.NumPatches(), c.Dim
	pe := m.ws.get(bufPE, n*l*d)
	e.PatchEmbed.apply(pe, patches, n*l, kernels.ActNone, nil)
	pos := paramData(e.PosEmbed)
	cls := paramData(e.ClsToken)
	keep := l
	if mk != nil {
		keep = mk.Keep
	}
	t := 1 + keep
	for b := 0; b < n; b++ {
		row := x[b*t*d:]
		for j := 0; j < d; j++ {
			row[j] = cls[j] + pos[j]
		}
		for k := 0; k < keep; k++ {
			id := k
			if mk != nil {
				id = mk.IDsShuffle[b*l+k]
			}
			dst := row[(1+k)*d : (2+k)*d]
			src := pe[(b*l+id)*d : (b*l+id+1)*d]
			pr := pos[(1+id)*d : (2+id)*d]
			for j := range dst {
				dst[j] = src[j] + pr[j]
			}
		}
	}
}

// runBlocks applies transformer blocks in place to x [n·t, d].
func (m *Model) runBlocks(blocks []*Block, x []float32, n, t, d, mlp int) {
	rows := n * t
	ws := &m.ws
	h := ws.get(bufH, rows*d)
	qkv := ws.get(bufQKV, rows*3*d)
	att := ws.get(bufAttn, rows*d)
	hid := ws.get(bufMLP, rows*mlp)
	for _, blk := range blocks {
		blk.Norm1.apply(h, x, rows)
		blk.QKV.apply(qkv, h, rows, kernels.ActNone, nil)
		kernels.AttentionIn(blk.QKV.packed.Precision(), att, qkv, n, t, blk.Heads, d/blk.Heads)
		blk.Proj.apply(x, att, rows, kernels.ActNone, x)
		blk.Norm2.apply(h, x, rows)
		blk.FC1.apply(hid, h, rows, kernels.ActGELU, nil)
		blk.FC2.apply(x, hid, rows, kernels.ActNone, x)
	}
}

// Reconstruction is the result of a masked forward pass.
type Reconstruction struct {
	N, L, Keep int
	Latent     []float32 // [N, 1+Keep, D], normed encoder output
	Pred       []float32 // [N, L, p·p·3], raw decoder output
	Masking    *Masking
	Loss       []float32 // [N], per-image MSE over removed patches; NaN when none was removed (ratio 0)
}

// Images lays the predictions out as CHW images [N,3,S,S] (the reference's
// unpatchify(pred)) and the mask as one value per pixel [N,S,S] (1 =
// removed), into pred and mask (grown if too short), so that nobody else
// redoes the patch arithmetic. S is the model's image size.
func (r *Reconstruction) Images(pred, mask []float32) ([]float32, []float32) {
	pd := len(r.Pred) / (r.N * r.L)
	p := int(math.Round(math.Sqrt(float64(pd / 3))))
	s := p * int(math.Round(math.Sqrt(float64(r.L))))
	pred = grow(pred, r.N*3*s*s)
	mask = grow(mask, r.N*s*s)
	Unpatchify(pred, r.Pred, r.N, s, p)
	MaskPixels(mask, r.Masking.Mask, r.N, s, p)
	return pred, mask
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Reconstruct masks patches per noise [n, L] (values in [0,1)), encodes the
// kept ones, decodes all and computes the per-image loss. normPix selects
// norm_pix_loss. The result's slices are freshly allocated.
func (m *Model) Reconstruct(patches, noise []float32, n int, ratio float64, normPix bool) (*Reconstruction, error) {
	if m.Decoder == nil {
		return nil, fmt.Errorf("the checkpoint has no decoder: reconstruction needs a model with decoder weights (e.g. mae_visualize_vit_base.pth)")
	}
	if m.Encoder.Norm == nil {
		return nil, fmt.Errorf("reconstruction needs the encoder norm, which this checkpoint lacks")
	}
	c := m.Config
	l, pd := c.NumPatches(), c.PatchDim()
	if err := c.CheckMaskRatio(ratio); err != nil {
		return nil, err
	}
	if len(patches) != n*l*pd {
		return nil, fmt.Errorf("reconstruct: %d images need %d patch values, got %d", n, n*l*pd, len(patches))
	}
	if len(noise) != n*l {
		return nil, fmt.Errorf("mask noise has %d values, want %d×%d", len(noise), n, l)
	}
	keep := c.NumKeep(ratio)
	mk := NewMasking(noise, n, l, keep)
	ws := &m.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	x, t := m.encode(patches, n, mk)
	e := m.Encoder
	e.Norm.apply(x, x, n*t)
	r := &Reconstruction{N: n, L: l, Keep: keep, Masking: mk,
		Latent: append([]float32(nil), x...), Pred: make([]float32, n*l*pd), Loss: make([]float32, n)}

	dec := m.Decoder
	dd := c.DecDim
	emb := ws.get(bufDX, n*t*dd)
	dec.Embed.apply(emb, x, n*t, kernels.ActNone, nil)
	full := ws.get(bufX, n*(1+l)*dd) // x is no longer needed
	pos := paramData(dec.PosEmbed)
	mt := paramData(dec.MaskToken)
	for b := 0; b < n; b++ {
		dst := full[b*(1+l)*dd:]
		src := emb[b*t*dd:]
		for j := 0; j < dd; j++ {
			dst[j] = src[j] + pos[j]
		}
		for i := 0; i < l; i++ {
			o := dst[(1+i)*dd : (2+i)*dd]
			pr := pos[(1+i)*dd : (2+i)*dd]
			if rank := mk.IDsRestore[b*l+i]; rank < keep {
				s := src[(1+rank)*dd : (2+rank)*dd]
				for j := range o {
					o[j] = s[j] + pr[j]
				}
			} else {
				for j := range o {
					o[j] = mt[j] + pr[j]
				}
			}
		}
	}
	m.runBlocks(dec.Blocks, full, n, 1+l, dd, c.DecMLPDim)
	dec.Norm.apply(full, full, n*(1+l))
	pred := ws.get(bufPred, n*(1+l)*pd)
	dec.Pred.apply(pred, full, n*(1+l), kernels.ActNone, nil)
	for b := 0; b < n; b++ {
		copy(r.Pred[b*l*pd:(b+1)*l*pd], pred[(b*(1+l)+1)*pd:(b+1)*(1+l)*pd])
	}
	Loss(r.Loss, r.Pred, patches, mk.Mask, n, l, pd, normPix)
	return r, nil
}
