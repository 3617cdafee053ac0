package train

import (
	"fmt"
	"math"

	"github.com/maeembed/maeembed/mae"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// Recipe is the pretraining recipe: the arguments of main_pretrain.py.
type Recipe struct {
	Epochs       int     `json:"epochs" yaml:"epochs"`               // --epochs
	WarmupEpochs float64 `json:"warmup_epochs" yaml:"warmup_epochs"` // --warmup_epochs
	BatchSize    int     `json:"batch_size" yaml:"batch_size"`       // --batch_size (per iteration)
	AccumIter    int     `json:"accum_iter" yaml:"accum_iter"`       // --accum_iter
	BLR          float64 `json:"blr" yaml:"blr"`                     // --blr: lr = blr × effective batch / 256
	LR           float64 `json:"lr" yaml:"lr"`                       // --lr: absolute; overrides BLR when > 0
	MinLR        float64 `json:"min_lr" yaml:"min_lr"`               // --min_lr
	WeightDecay  float64 `json:"weight_decay" yaml:"weight_decay"`   // --weight_decay
	MaskRatio    float64 `json:"mask_ratio" yaml:"mask_ratio"`       // --mask_ratio
	NormPixLoss  bool    `json:"norm_pix_loss" yaml:"norm_pix_loss"` // --norm_pix_loss
	Seed         uint64  `json:"seed" yaml:"seed"`                   // --seed: init, masks, crops, flips, epoch shuffles
	// Augment: RandomResizedCrop + flip; off: the evaluation transform. No
	// YAML key: the pretrain command's `augment` names the transform.
	Augment bool `json:"augment" yaml:"-"`
}

// DefaultRecipe is main_pretrain.py's defaults (400 epochs, 40 of warmup,
// batch 64, weight decay 0.05, mask ratio 0.75) with the paper's base
// learning rate 1.5e-4 (the script's default is 1e-3; its PRETRAIN.md uses
// 1.5e-4).
func DefaultRecipe() Recipe {
	return Recipe{Epochs: 400, WarmupEpochs: 40, BatchSize: 64, AccumIter: 1, BLR: 1.5e-4,
		WeightDecay: 0.05, MaskRatio: 0.75, Augment: true}
}

// EffectiveBatch is batch_size × accum_iter (one process).
func (r Recipe) EffectiveBatch() int { return r.BatchSize * r.AccumIter }

// PeakLR is the learning rate after warmup: LR if set, else
// blr × effective batch / 256 as main_pretrain.py computes it.
func (r Recipe) PeakLR() float64 {
	if r.LR > 0 {
		return r.LR
	}
	return r.BLR * float64(r.EffectiveBatch()) / 256
}

// lrSource says where PeakLR comes from, for messages.
func (r Recipe) lrSource() string {
	if r.LR > 0 {
		return "--lr"
	}
	return fmt.Sprintf("--blr %v × effective batch %d / 256", r.BLR, r.EffectiveBatch())
}

// LRAt is the learning rate of an iteration at fractional epoch e.
func (r Recipe) LRAt(e float64) float64 {
	return LR(e, r.PeakLR(), r.MinLR, r.WarmupEpochs, float64(r.Epochs))
}

// Validate checks the recipe; errors name the pretrain flag (the
// main_pretrain.py argument with dashes) and the accepted range.
func (r Recipe) Validate() error {
	switch {
	case r.Epochs < 1:
		return fmt.Errorf("--epochs %d: want 1 or more", r.Epochs)
	case !(r.WarmupEpochs >= 0) || r.WarmupEpochs >= float64(r.Epochs) && r.WarmupEpochs > 0:
		return fmt.Errorf("--warmup-epochs %v: want 0 <= warmup < --epochs (%d): pass --warmup-epochs %v (a tenth of the epochs) or 0 for none",
			r.WarmupEpochs, r.Epochs, float64(r.Epochs)/10)
	case r.BatchSize < 1:
		return fmt.Errorf("--batch-size %d: want 1 or more", r.BatchSize)
	case r.AccumIter < 1:
		return fmt.Errorf("--accum-iter %d: want 1 or more", r.AccumIter)
	case r.LR < 0 || math.IsNaN(r.LR):
		return fmt.Errorf("--lr %v: want a positive number (or 0 for --blr)", r.LR)
	case !(r.PeakLR() > 0) || math.IsInf(r.PeakLR(), 1):
		return fmt.Errorf("--blr %v: the learning rate %v must be positive", r.BLR, r.PeakLR())
	case !(r.MinLR >= 0):
		return fmt.Errorf("--min-lr %v: want 0 or more", r.MinLR)
	case r.MinLR > r.PeakLR():
		// The cosine would climb from lr to min-lr instead of decaying.
		return fmt.Errorf("--min-lr %v is above the learning rate %v (%s): want --min-lr <= the learning rate", r.MinLR, r.PeakLR(), r.lrSource())
	case !(r.WeightDecay >= 0):
		return fmt.Errorf("--weight-decay %v: want 0 or more", r.WeightDecay)
	case !(r.MaskRatio > 0 && r.MaskRatio < 1):
		return fmt.Errorf("--mask-ratio %v: want a value in (0, 1)", r.MaskRatio)
	}
	return nil
}

// ScaleWarmup returns r with the default warmup (DefaultRecipe's 40
// epochs) cut to a tenth of the epochs when it would not fit in them
// (epochs <= 40), and whether it did: a short trial run needs no
// --warmup-epochs. A warmup the user chose (chosen: given as a flag or a
// config-file key, even if 40) is never changed. The MAE recipe warms up
// 40 of 800 epochs (5 %); a tenth keeps short runs warming up for a few
// steps. It is a function of the options alone, so --resume with the
// same options finds the same recipe in the checkpoint.
func (r Recipe) ScaleWarmup(chosen bool) (Recipe, bool) {
	if def := DefaultRecipe().WarmupEpochs; !chosen && r.WarmupEpochs == def && float64(r.Epochs) <= def && r.Epochs >= 1 {
		r.WarmupEpochs = float64(r.Epochs) / 10
		return r, true
	}
	return r, false
}

// Trainer holds a model, its trainable parameters and the optimiser.
type Trainer struct {
	Model  *mae.Model
	Params []mae.NamedParam
	Opt    *AdamW
	Recipe Recipe
}

// NewTrainer prepares m (which must have a decoder) for training.
func NewTrainer(m *mae.Model, r Recipe) (*Trainer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if m.Config.NumKeep(r.MaskRatio) < 1 || m.Config.NumKeep(r.MaskRatio) >= m.Config.NumPatches() {
		return nil, fmt.Errorf("mask ratio %v keeps %d of %d patches: want at least one kept and one removed", r.MaskRatio, m.Config.NumKeep(r.MaskRatio), m.Config.NumPatches())
	}
	ps, err := m.TrainableParams()
	if err != nil {
		return nil, err
	}
	return &Trainer{Model: m, Params: ps, Opt: NewAdamW(ps, r.WeightDecay), Recipe: r}, nil
}

// Accumulate runs forward and backward on one batch (engine_pretrain.py's
// loop body up to loss_scaler): patches [n·L × p·p·3] of normalised images,
// noise [n·L] for random_masking. The gradients of loss/AccumIter are added
// to the parameters' gradients. It returns the batch loss; a non-finite
// loss is returned with no gradient added.
func (t *Trainer) Accumulate(patches, noise []float32, n int) (float64, error) {
	c := t.Model.Config
	mk := mae.NewMasking(noise, n, c.NumPatches(), c.NumKeep(t.Recipe.MaskRatio))
	y, err := t.Model.PretrainLoss(patches, mk, t.Recipe.NormPixLoss)
	if err != nil {
		return 0, err
	}
	loss := float64(mat.Data[float32](y.Value())[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, nil
	}
	// loss /= accum_iter before backward: its gradient is 1/accum_iter.
	y.AccGrad(mat.Scalar(float32(1 / float64(t.Recipe.AccumIter))))
	if err := ag.Backward(y); err != nil {
		return loss, err
	}
	return loss, nil
}

// ZeroGrad drops the accumulated gradients.
func (t *Trainer) ZeroGrad() {
	for _, p := range t.Params {
		p.Param.ZeroGrad()
	}
}
