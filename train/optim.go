// Package train pretrains an MAE the way the paper's public code does
// (main_pretrain.py, engine_pretrain.py, util/lr_sched.py): random masking,
// the decoder's pixel loss, AdamW with the timm weight-decay groups, the
// per-iteration half-cycle cosine schedule after a linear warmup, gradient
// accumulation, RandomResizedCrop + horizontal flip. It adds what a long
// run on a shared machine needs: atomic checkpoints, exact resume, a NaN
// guard, metrics.csv and a loss-curve PNG.
package train

import (
	"math"
	"slices"
	"strings"

	"github.com/maeembed/maeembed/mae"
	"github.com/nlpodyssey/spago/mat"
)

// NoWeightDecay names the parameters the model excludes from weight decay
// beyond timm's rule (the no_weight_decay() set of the ViT family): the
// position embeddings (fixed here, so never in the optimiser anyway) and
// the cls and mask tokens.
var NoWeightDecay = []string{"pos_embed", "decoder_pos_embed", "cls_token", "mask_token"}

// Decays tells whether a parameter gets weight decay: timm's
// add_weight_decay / param_groups_weight_decay rule (no decay for 1-D
// tensors — biases, LayerNorm — nor for names ending in ".bias") plus the
// NoWeightDecay set. shape is the reference shape.
func Decays(name string, shape []int) bool {
	return !(len(shape) == 1 || strings.HasSuffix(name, ".bias") || slices.Contains(NoWeightDecay, name))
}

// AdamW is torch.optim.AdamW (torch 1.13, single-tensor path, amsgrad off)
// operating in float32 like PyTorch's CPU kernels: decoupled weight decay
// p ← p·(1 − lr·wd), then the bias-corrected Adam step.
type AdamW struct {
	Beta1, Beta2, Eps float64
	Params            []mae.NamedParam
	WeightDecay       []float64 // per parameter: the group's decay (0 or wd)
	Step              int       // completed steps (torch's state["step"])
	ExpAvg, ExpAvgSq  [][]float32
}

// NewAdamW puts every parameter in its weight-decay group (Decays) with
// decay wd, betas (0.9, 0.95) as main_pretrain.py, eps 1e-8 (torch default).
func NewAdamW(params []mae.NamedParam, wd float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Params: params}
	for _, p := range params {
		n := len(mat.Data[float32](p.Param.Value()))
		d := 0.0
		if Decays(p.Name, p.Shape) {
			d = wd
		}
		o.WeightDecay = append(o.WeightDecay, d)
		o.ExpAvg = append(o.ExpAvg, make([]float32, n))
		o.ExpAvgSq = append(o.ExpAvgSq, make([]float32, n))
	}
	return o
}

// Update applies one step at learning rate lr with the accumulated
// gradients, then clears them. A parameter without gradient is skipped,
// as torch does.
func (o *AdamW) Update(lr float64) {
	o.Step++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	stepSize := float32(-(lr / bc1))
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	a1, a2 := float32(1-o.Beta1), float32(1-o.Beta2)
	eps := float32(o.Eps)
	for i, p := range o.Params {
		g := p.Param.Grad()
		if g == nil {
			continue
		}
		grad := mat.Data[float32](g)
		w := mat.Data[float32](p.Param.Value())
		decay := float32(1 - lr*o.WeightDecay[i])
		m, v := o.ExpAvg[i], o.ExpAvgSq[i]
		for j, gj := range grad {
			// torch's operation order; the float32() conversions keep
			// the compiler from fusing into FMAs torch does not use.
			w[j] *= decay
			m[j] = float32(m[j]*b1) + float32(a1*gj)
			v[j] = float32(v[j]*b2) + float32(float32(a2*gj)*gj)
			denom := float32(float32(math.Sqrt(float64(v[j])))/bc2Sqrt) + eps
			w[j] += float32(float32(stepSize*m[j]) / denom)
		}
		p.Param.ZeroGrad()
	}
}

// LR is util/lr_sched.adjust_learning_rate: at fractional epoch e (the
// iteration's data_iter_step/len(data_loader) + epoch), a linear warmup to
// lr over warmup epochs, then a half-cycle cosine from lr to minLR at epochs.
func LR(e, lr, minLR, warmup, epochs float64) float64 {
	if e < warmup {
		return lr * e / warmup
	}
	return minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*(e-warmup)/(epochs-warmup)))
}
