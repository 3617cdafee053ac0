package probe

import (
	"fmt"
	"math"

	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/train"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers/adam"
)

// LinearOptions configure the linear probe. Zero fields take the defaults.
type LinearOptions struct {
	Epochs    int     `yaml:"epochs"`     // passes over the training rows; default 100
	LR        float64 `yaml:"lr"`         // peak Adam learning rate; default 1e-2
	BatchSize int     `yaml:"batch_size"` // rows per step; default 256
	Seed      uint64  `yaml:"-"`          // head initialisation and epoch shuffles
}

func (o LinearOptions) withDefaults() LinearOptions {
	if o.Epochs == 0 {
		o.Epochs = 100
	}
	if o.LR == 0 {
		o.LR = 1e-2
	}
	if o.BatchSize == 0 {
		o.BatchSize = 256
	}
	return o
}

// bnEps is the eps of MAE's linear-probe BatchNorm1d (main_linprobe.py).
const bnEps = 1e-6

// TrainLinear trains a linear probe as MAE's linear probing does
// (main_linprobe.py): the features stay frozen, are standardised per
// dimension (MAE puts BatchNorm1d(affine=False, eps=1e-6) before the head;
// here with the statistics of the whole training set, which is what that
// BatchNorm computes at evaluation) and feed one Linear layer trained with
// softmax cross-entropy. The head starts as MAE's (weight normal with
// std 0.01, bias 0); the optimizer is spago's Adam (MAE uses LARS, which
// spago does not have) with MAE's half-cycle cosine learning-rate decay over
// all steps and no weight decay, as MAE's probe. x is [n×d], y[i] in
// [0, len(classes)). Deterministic for a given seed.
func TrainLinear(x []float32, y []int, d int, classes []string, o LinearOptions) (*Head, error) {
	o = o.withDefaults()
	n, c := len(y), len(classes)
	switch {
	case d < 1 || len(x) != n*d:
		return nil, fmt.Errorf("linear probe: %d values do not hold %d rows of %d", len(x), n, d)
	case n == 0 || c < 2:
		return nil, fmt.Errorf("linear probe: %d rows and %d classes: need rows and two classes", n, c)
	case o.Epochs < 0 || o.BatchSize < 1 || !(o.LR > 0):
		return nil, fmt.Errorf("linear probe: epochs %d, batch size %d and learning rate %g must be positive", o.Epochs, o.BatchSize, o.LR)
	}
	for i, v := range y {
		if v < 0 || v >= c {
			return nil, fmt.Errorf("linear probe: row %d: class %d outside [0, %d)", i, v, c)
		}
	}
	h := &Head{D: d, Classes: classes, Bias: make([]float32, c), Weight: make([]float32, c*d)}
	h.Mean, h.Std = standardization(x, d)
	xn := make([]float32, len(x))
	h.normalize(xn, x)

	r := newRand(o.Seed, streamInit)
	for i := range h.Weight {
		h.Weight[i] = float32(r.NormFloat64() * 0.01) // trunc_normal_(std=0.01): its ±2 bounds never bind
	}
	// The parameters share the head's slices: the optimizer updates them in place.
	w := nn.NewParam(mat.NewDense[float32](mat.WithShape(c, d), mat.WithBacking(h.Weight)))
	b := nn.NewParam(mat.NewDense[float32](mat.WithShape(c), mat.WithBacking(h.Bias)))
	h.Weight, h.Bias = mat.Data[float32](w.Matrix), mat.Data[float32](b.Matrix)
	opt := adam.New(adam.NewConfig(o.LR, 0.9, 0.999, 1e-8))

	bs := min(o.BatchSize, n)
	ce := newSoftmaxCE(bs, c, d)
	xb := make([]float32, bs*d)
	yb := make([]int, bs)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	shuffle := newRand(o.Seed, streamShuffle)
	steps := o.Epochs * ((n + bs - 1) / bs)
	step := 0
	for e := 0; e < o.Epochs; e++ {
		shuffle.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for s := 0; s < n; s += bs {
			m := min(bs, n-s)
			for i, row := range order[s : s+m] {
				copy(xb[i*d:(i+1)*d], xn[row*d:(row+1)*d])
				yb[i] = y[row]
			}
			loss := ce.graph(mat.NewDense[float32](mat.WithShape(m, d), mat.WithBacking(xb[:m*d])), w, b, yb[:m])
			if err := ag.Backward(loss); err != nil {
				return nil, fmt.Errorf("linear probe: step %d: %w", step, err)
			}
			if l := mat.Data[float32](loss.Value())[0]; math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
				return nil, fmt.Errorf("linear probe: loss %g at step %d (epoch %d): lower --lr", l, step, e)
			}
			// Half-cycle cosine from LR to 0 (the pretraining schedule
			// without warmup); IncExample recomputes Adam's bias-corrected
			// step for this step number and rate.
			opt.StepSize = train.LR(float64(step), o.LR, 0, 0, float64(steps))
			opt.TimeStep = step
			opt.IncExample()
			// The strategy is applied directly: spago's optimizers.Optimizer
			// returns before its per-parameter goroutines finish (v1.1.0).
			for _, p := range []*nn.Param{w, b} {
				if err := opt.OptimizeParams(p); err != nil {
					return nil, fmt.Errorf("linear probe: step %d: %w", step, err)
				}
			}
			step++
		}
	}
	return h, nil
}

// standardization returns the per-dimension mean of x ([n×d]) and
// sqrt(var + eps) with the biased variance, as BatchNorm1d normalises.
func standardization(x []float32, d int) (mean, std []float32) {
	n := len(x) / d
	s, ss := make([]float64, d), make([]float64, d)
	for r := 0; r < n; r++ {
		for j, v := range x[r*d : (r+1)*d] {
			s[j] += float64(v)
		}
	}
	mean, std = make([]float32, d), make([]float32, d)
	for j := range s {
		s[j] /= float64(n)
		mean[j] = float32(s[j])
	}
	for r := 0; r < n; r++ {
		for j, v := range x[r*d : (r+1)*d] {
			dv := float64(v) - s[j]
			ss[j] += dv * dv
		}
	}
	for j := range ss {
		std[j] = float32(math.Sqrt(ss[j]/float64(n) + bnEps))
	}
	return mean, std
}

// softmaxCE is the fused training op of the probe: the mean softmax
// cross-entropy of logits = x·Wᵀ + b over a batch, one spago autograd
// function whose forward and backward run on the project's GEMM. Its
// buffers are reused from step to step (spago copies gradients it is given).
type softmaxCE struct {
	c, d   int
	p      []float32 // [m×C]: logits, then softmax probabilities, then dL/dlogits
	gw, gb []float32
}

func newSoftmaxCE(maxRows, c, d int) *softmaxCE {
	return &softmaxCE{c: c, d: d, p: make([]float32, maxRows*c), gw: make([]float32, c*d), gb: make([]float32, c)}
}

// graph returns the scalar loss node for a batch x [m×d] with classes y.
func (s *softmaxCE) graph(x mat.Tensor, w, b *nn.Param, y []int) mat.Tensor {
	return ag.NewOperator(&softmaxCEFn{s: s, x: x, w: w, b: b, y: y}).Run()
}

type softmaxCEFn struct {
	s       *softmaxCE
	x, w, b mat.Tensor
	y       []int
}

func (f *softmaxCEFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.w, f.b} }

func (f *softmaxCEFn) Forward() (mat.Tensor, error) {
	s, m := f.s, len(f.y)
	p, bias := s.p[:m*s.c], mat.Data[float32](f.b.Value())
	for i := 0; i < m; i++ {
		copy(p[i*s.c:(i+1)*s.c], bias)
	}
	kernels.Gemm(false, true, m, s.c, s.d, 1, mat.Data[float32](f.x.Value()), s.d, mat.Data[float32](f.w.Value()), s.d, 1, p, s.c)
	var loss float64
	for i, t := range f.y {
		row := p[i*s.c : (i+1)*s.c]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - mx))
		}
		// −log softmax_t = logsumexp(l) − l_t, exact even where p_t underflows.
		loss += math.Log(sum) + float64(mx-row[t])
		for j, v := range row {
			row[j] = float32(math.Exp(float64(v-mx)) / sum)
		}
	}
	return mat.Scalar(float32(loss / float64(m))), nil
}

// Backward: dL/dlogits = (softmax − onehot(y))·g/m; dW = Gᵀ·x, db = Σ rows of G.
func (f *softmaxCEFn) Backward(gy mat.Tensor) error {
	s, m := f.s, len(f.y)
	g := float32(float64(mat.Data[float32](gy)[0]) / float64(m))
	p := s.p[:m*s.c]
	for i, t := range f.y {
		p[i*s.c+t] -= 1
	}
	for i := range p {
		p[i] *= g
	}
	if f.w.RequiresGrad() {
		kernels.Gemm(true, false, s.c, s.d, m, 1, p, s.c, mat.Data[float32](f.x.Value()), s.d, 0, s.gw, s.d)
		f.w.AccGrad(mat.NewDense[float32](mat.WithShape(s.c, s.d), mat.WithBacking(s.gw)))
	}
	if f.b.RequiresGrad() {
		clear(s.gb)
		for i := 0; i < m; i++ {
			for j, v := range p[i*s.c : (i+1)*s.c] {
				s.gb[j] += v
			}
		}
		f.b.AccGrad(mat.NewDense[float32](mat.WithShape(s.c), mat.WithBacking(s.gb)))
	}
	return nil
}
