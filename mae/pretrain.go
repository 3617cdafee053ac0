package mae

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// The masked forward pass of pretraining (models_mae.py forward) as a spago
// graph: every operation is an autograd function of ops.go or this file, so
// ag.Backward gives the gradient of the batch loss with respect to every
// trainable parameter.

// NamedParam is a trainable parameter under its reference name
// (models_mae.py state_dict keys).
type NamedParam struct {
	Name  string
	Param *nn.Param
	// Shape is the reference shape (cls_token [1,1,D], patch_embed
	// [D,3,p,p]); Param holds the same number of values.
	Shape []int
	// PatchLayout is set for patch_embed.proj.weight, which the model holds
	// in the patchify (p, q, c) column order; the reference's is (c, p, q).
	PatchLayout bool
}

// TrainableParams lists the parameters that pretraining updates, in the
// order of the reference's named_parameters(), and marks them as requiring
// gradients. The position embeddings are fixed sin-cos tables
// (requires_grad=False in the reference) and are not listed. It needs a
// decoder and the encoder norm.
func (m *Model) TrainableParams() ([]NamedParam, error) {
	if m.Decoder == nil || m.Encoder.Norm == nil || m.Encoder.FCNorm != nil || m.Encoder.Head != nil {
		return nil, fmt.Errorf("pretraining needs an MAE with decoder and encoder norm (not a fine-tuned or encoder-only checkpoint)")
	}
	c, e, d := m.Config, m.Encoder, m.Decoder
	var out []NamedParam
	add := func(name string, p *nn.Param, shape ...int) {
		p.SetRequiresGrad(true)
		out = append(out, NamedParam{Name: name, Param: p, Shape: shape})
	}
	lin := func(name string, l *Linear) { linearParams(name, l, add) }
	norm := func(name string, n *LayerNorm) { normParams(name, n, add) }
	blocks := func(prefix string, bs []*Block) { blockParams(prefix, bs, add) }
	// The module's own parameters come first in named_parameters().
	add("cls_token", e.ClsToken, 1, 1, c.Dim)
	add("mask_token", d.MaskToken, 1, 1, c.DecDim)
	add("patch_embed.proj.weight", e.PatchEmbed.Weight(), c.Dim, 3, c.PatchSize, c.PatchSize)
	out[len(out)-1].PatchLayout = true
	add("patch_embed.proj.bias", e.PatchEmbed.B, c.Dim)
	blocks("blocks.", e.Blocks)
	norm("norm", e.Norm)
	lin("decoder_embed", d.Embed)
	blocks("decoder_blocks.", d.Blocks)
	norm("decoder_norm", d.Norm)
	lin("decoder_pred", d.Pred)
	return out, nil
}

// ToReference copies a value of p (the parameter, its gradient or an
// optimiser moment, held in the model's layout) into dst in the reference
// layout.
func (p NamedParam) ToReference(dst, src []float32) {
	if p.PatchLayout {
		convLayout(dst, src, p.Shape[0], p.Shape[2], false)
		return
	}
	copy(dst, src)
}

// FromReference is the inverse of ToReference.
func (p NamedParam) FromReference(dst, src []float32) {
	if p.PatchLayout {
		convLayout(dst, src, p.Shape[0], p.Shape[2], true)
		return
	}
	copy(dst, src)
}

// PretrainLoss builds the graph of the reference's forward(imgs, mask_ratio)
// for a batch: patches [n·L × p·p·3] (Patchify of the normalised images;
// they are also the loss target), masking mk (NewMasking of the noise). The
// result is the scalar batch loss of forward_loss: the mean squared error of
// the predicted pixels, per patch, averaged over every removed patch of the
// batch; with normPix the targets are normalised per patch (mean, unbiased
// variance + 1e-6). Call ag.Backward on it for the gradients.
func (m *Model) PretrainLoss(patches []float32, mk *Masking, normPix bool) (mat.Tensor, error) {
	c, e, dec := m.Config, m.Encoder, m.Decoder
	if dec == nil || e.Norm == nil {
		return nil, fmt.Errorf("pretraining needs a decoder and the encoder norm")
	}
	n, l, d, dd, pd := mk.N, c.NumPatches(), c.Dim, c.DecDim, c.PatchDim()
	if mk.L != l || len(patches) != n*l*pd {
		return nil, fmt.Errorf("pretrain: %d images of %d patches need %d values, got %d (masking over %d patches)", n, l, n*l*pd, len(patches), mk.L)
	}
	if mk.Keep < 1 || mk.Keep >= l {
		return nil, fmt.Errorf("pretrain: masking keeps %d of %d patches; want at least one kept and one removed", mk.Keep, l)
	}
	keep := mk.Keep
	ids := make([]int, n*keep)
	for b := 0; b < n; b++ {
		copy(ids[b*keep:(b+1)*keep], mk.IDsShuffle[b*l:b*l+keep])
	}
	x := dense(n*l, pd, patches)
	pe := e.PatchEmbed.graph(x, n*l)
	h := run(&tokensFn{pe: pe, cls: e.ClsToken, pos: e.PosEmbed, n: n, l: l, d: d, ids: ids, keep: keep})
	t := 1 + keep
	for _, b := range e.Blocks {
		h = b.graph(h, n, t, d)
	}
	h = e.Norm.graph(h, n*t)
	h = dec.Embed.graph(h, n*t)
	h = run(&decoderTokensFn{emb: h, mask: dec.MaskToken, pos: dec.PosEmbed, restore: mk.IDsRestore, n: n, l: l, keep: keep, d: dd})
	for _, b := range dec.Blocks {
		h = b.graph(h, n, 1+l, dd)
	}
	h = dec.Norm.graph(h, n*(1+l))
	pred := dec.Pred.graph(h, n*(1+l))
	return run(newLossFn(pred, patches, mk.Mask, n, l, pd, normPix)), nil
}

// decoderTokensFn is the decoder input of forward_decoder: per image the
// embedded cls token, then for every patch in raster order its embedded
// token if it was kept (rank < keep in ids_restore) or the mask token, each
// plus its decoder position row. emb is [n·(1+keep) × d], the result
// [n·(1+L) × d].
type decoderTokensFn struct {
	emb, mask, pos mat.Tensor
	restore        []int
	n, l, keep, d  int
}

func (f *decoderTokensFn) Operands() []mat.Tensor { return []mat.Tensor{f.emb, f.mask, f.pos} }

func (f *decoderTokensFn) Forward() (mat.Tensor, error) {
	emb, mt, pos := data(f.emb), data(f.mask), data(f.pos)
	l, d, t := f.l, f.d, 1+f.keep
	out := make([]float32, f.n*(1+l)*d)
	for b := 0; b < f.n; b++ {
		dst, src := out[b*(1+l)*d:], emb[b*t*d:]
		for j := 0; j < d; j++ {
			dst[j] = src[j] + pos[j]
		}
		for i := 0; i < l; i++ {
			o, pr := dst[(1+i)*d:(2+i)*d], pos[(1+i)*d:(2+i)*d]
			s := mt
			if rank := f.restore[b*l+i]; rank < f.keep {
				s = src[(1+rank)*d : (2+rank)*d]
			}
			for j := range o {
				o[j] = s[j] + pr[j]
			}
		}
	}
	return dense(f.n*(1+l), d, out), nil
}

func (f *decoderTokensFn) Backward(gyT mat.Tensor) error {
	gy := mat.Data[float32](gyT)
	l, d, t := f.l, f.d, 1+f.keep
	gemb := make([]float32, f.n*t*d)
	gmask := make([]float32, d)
	gpos := make([]float32, (1+l)*d)
	for b := 0; b < f.n; b++ {
		g := gy[b*(1+l)*d:]
		copy(gemb[b*t*d:b*t*d+d], g[:d])
		for i := 0; i <= l; i++ {
			for j, v := range g[i*d : (i+1)*d] {
				gpos[i*d+j] += v
			}
		}
		for i := 0; i < l; i++ {
			gi := g[(1+i)*d : (2+i)*d]
			if rank := f.restore[b*l+i]; rank < f.keep {
				copy(gemb[(b*t+1+rank)*d:], gi)
			} else {
				for j, v := range gi {
					gmask[j] += v
				}
			}
		}
	}
	accGrad(f.emb, gemb, f.n*t, d)
	accGrad(f.mask, gmask, f.mask.Shape()...)
	accGrad(f.pos, gpos, f.pos.Shape()...)
	return nil
}

// lossFn is forward_loss: the pred rows of the cls tokens are skipped, the
// targets are the patches (normalised per patch with normPix), the result
// is Σ mask·mse / Σ mask over the batch, summed in float64.
type lossFn struct {
	pred         mat.Tensor
	target, mask []float32
	n, l, pd     int
	den          float64
}

func newLossFn(pred mat.Tensor, patches, mask []float32, n, l, pd int, normPix bool) *lossFn {
	target := patches
	if normPix {
		target = make([]float32, len(patches))
		for k := 0; k < n*l; k++ {
			normalizePatch(target[k*pd:(k+1)*pd], patches[k*pd:(k+1)*pd])
		}
	}
	var den float64
	for _, v := range mask[:n*l] {
		den += float64(v)
	}
	return &lossFn{pred: pred, target: target, mask: mask, n: n, l: l, pd: pd, den: den}
}

// normalizePatch writes (t − mean) / sqrt(var + 1e-6) with the unbiased
// variance, as norm_pix_loss does.
func normalizePatch(dst, t []float32) {
	mean, inv := patchNorm(t)
	for j, v := range t {
		dst[j] = float32((float64(v) - mean) * inv)
	}
}

func (f *lossFn) Operands() []mat.Tensor { return []mat.Tensor{f.pred} }

func (f *lossFn) Forward() (mat.Tensor, error) {
	pred := data(f.pred)
	var num float64
	for b := 0; b < f.n; b++ {
		for i := 0; i < f.l; i++ {
			k := b*f.l + i
			if f.mask[k] == 0 {
				continue
			}
			p := pred[(b*(1+f.l)+1+i)*f.pd:]
			t := f.target[k*f.pd : (k+1)*f.pd]
			var se float64
			for j, v := range t {
				e := float64(p[j]) - float64(v)
				se += e * e
			}
			num += se / float64(f.pd) * float64(f.mask[k])
		}
	}
	return mat.Scalar(float32(num / f.den)), nil
}

func (f *lossFn) Backward(gyT mat.Tensor) error {
	if !f.pred.RequiresGrad() {
		return nil
	}
	gy := float64(mat.Data[float32](gyT)[0])
	pred := data(f.pred)
	g := make([]float32, len(pred))
	for b := 0; b < f.n; b++ {
		for i := 0; i < f.l; i++ {
			k := b*f.l + i
			if f.mask[k] == 0 {
				continue
			}
			w := gy * float64(f.mask[k]) / f.den * 2 / float64(f.pd)
			o := (b*(1+f.l) + 1 + i) * f.pd
			t := f.target[k*f.pd : (k+1)*f.pd]
			for j, v := range t {
				g[o+j] = float32(w * (float64(pred[o+j]) - float64(v)))
			}
		}
	}
	accGrad(f.pred, g, f.pred.Shape()...)
	return nil
}
