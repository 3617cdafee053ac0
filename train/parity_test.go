package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
	"github.com/nlpodyssey/spago/mat"
)

// The PyTorch reference of a training step is
// mae/testdata/reference/train_ref.py (torch.optim.AdamW, timm's weight-decay
// groups, util/lr_sched). Its small committed output (train*.json: noise,
// losses, lrs, groups, per-tensor sums) is checked always; with torch
// installed (CI) the test also runs it and compares every gradient and
// every parameter element by element.

const fixtures = "../mae/testdata/fixtures"

type refRun struct {
	Config      string             `json:"config"`
	NormPix     bool               `json:"norm_pix_loss"`
	Steps       int                `json:"steps"`
	ItersPerEp  int                `json:"iters_per_epoch"`
	Losses      []float64          `json:"losses"`
	LRs         []float64          `json:"lrs"`
	Decay       []string           `json:"decay"`
	NoDecay     []string           `json:"no_decay"`
	Noise       []float64          `json:"noise"`
	NoiseShape  []int              `json:"noise_shape"`
	GradSum     map[string]float64 `json:"grad_sum"`
	GradAbsSum  map[string]float64 `json:"grad_abs_sum"`
	ParamSum    map[string]float64 `json:"param_sum"`
	ParamAbsSum map[string]float64 `json:"param_abs_sum"`
	Recipe      struct {
		LR          float64 `json:"lr"`
		MinLR       float64 `json:"min_lr"`
		Warmup      float64 `json:"warmup_epochs"`
		Epochs      int     `json:"epochs"`
		WeightDecay float64 `json:"weight_decay"`
		AccumIter   int     `json:"accum_iter"`
		MaskRatio   float64 `json:"mask_ratio"`
	} `json:"recipe"`
}

// goRun is what the Go trainer did on the reference's inputs.
type goRun struct {
	losses, lrs []float64
	grads       map[string][]float32 // first iteration, reference layout
	params      map[string][]float32 // after the last step, reference layout
}

func loadRef(t *testing.T, config, file string) *refRun {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, config, file))
	if err != nil {
		t.Fatal(err)
	}
	var r refRun
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (r *refRun) recipe() Recipe {
	return Recipe{Epochs: r.Recipe.Epochs, WarmupEpochs: r.Recipe.Warmup, BatchSize: r.NoiseShape[1],
		AccumIter: r.Recipe.AccumIter, LR: r.Recipe.LR, MinLR: r.Recipe.MinLR, WeightDecay: r.Recipe.WeightDecay,
		MaskRatio: r.Recipe.MaskRatio, NormPixLoss: r.NormPix}
}

// trainLikeRef runs the reference's schedule with the Go trainer: the
// fixture images as every batch, the reference's noise, the same lr calls.
// mutate, if set, changes the trainer before the first step.
func trainLikeRef(t *testing.T, ref *refRun, mutate func(*Trainer)) *goRun {
	t.Helper()
	dir := filepath.Join(fixtures, ref.Config)
	tr := fixtureTrainer(t, ref)
	m := tr.Model
	if mutate != nil {
		mutate(tr)
	}
	xs, x, err := sinks.ReadNpyFloat32(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	n := xs[0]
	patches := make([]float32, n*c.NumPatches()*c.PatchDim())
	mae.Patchify(patches, x, n, c.ImageSize, c.PatchSize)
	noise := make([]float32, len(ref.Noise))
	for i, v := range ref.Noise {
		noise[i] = float32(v)
	}
	per := n * c.NumPatches()
	r := tr.Recipe
	out := &goRun{grads: map[string][]float32{}, params: map[string][]float32{}}
	var lr float64
	for it := 0; it < ref.Steps*r.AccumIter; it++ {
		epoch, i := it/ref.ItersPerEp, it%ref.ItersPerEp
		if i%r.AccumIter == 0 {
			lr = r.LRAt(float64(i)/float64(ref.ItersPerEp) + float64(epoch))
			out.lrs = append(out.lrs, lr)
		}
		loss, err := tr.Accumulate(patches, noise[it*per:(it+1)*per], n)
		if err != nil {
			t.Fatal(err)
		}
		out.losses = append(out.losses, loss)
		if it == 0 {
			for _, p := range tr.Params {
				g := make([]float32, len(mat.Data[float32](p.Param.Value())))
				p.ToReference(g, mat.Data[float32](p.Param.Grad()))
				out.grads[p.Name] = g
			}
		}
		if (i+1)%r.AccumIter == 0 {
			tr.Opt.Update(lr)
		}
	}
	for _, p := range tr.Params {
		v := make([]float32, len(mat.Data[float32](p.Param.Value())))
		p.ToReference(v, mat.Data[float32](p.Param.Value()))
		out.params[p.Name] = v
	}
	return out
}

// compareSmall checks the Go run against the committed reference output:
// losses (1e-6), lrs, and the float64 sums of every gradient and parameter.
func compareSmall(ref *refRun, g *goRun) []string {
	var errs []string
	for i, want := range ref.Losses {
		if d := math.Abs(g.losses[i] - want); d > 1e-6 {
			errs = append(errs, fmt.Sprintf("iteration %d: loss %.9g, reference %.9g (diff %.3g)", i, g.losses[i], want, d))
		}
	}
	for i, want := range ref.LRs {
		if math.Abs(g.lrs[i]-want) > 1e-15 {
			errs = append(errs, fmt.Sprintf("step %d: lr %g, reference %g", i, g.lrs[i], want))
		}
	}
	sums := func(kind string, got map[string][]float32, sum, abs map[string]float64, tol float64) {
		for name, want := range sum {
			v, ok := got[name]
			if !ok {
				errs = append(errs, kind+" "+name+": missing in Go")
				continue
			}
			var s, a float64
			for i, x := range v {
				if isKeyBias(name, i, len(v)) {
					continue
				}
				s += float64(x)
				a += math.Abs(float64(x))
			}
			if math.Abs(s-want) > tol*float64(len(v)) || math.Abs(a-abs[name]) > tol*float64(len(v)) {
				errs = append(errs, fmt.Sprintf("%s %s: sum %.9g |sum| %.9g, reference %.9g %.9g", kind, name, s, a, want, abs[name]))
			}
		}
	}
	sums("param", g.params, ref.ParamSum, ref.ParamAbsSum, 1e-5)
	return errs
}

// isKeyBias tells whether element i of a tensor is in the key third of a
// qkv bias. Its gradient is analytically zero (softmax ignores a constant
// added to a row of scores), so both implementations see float32 rounding
// noise there, which Adam turns into O(lr) steps of either sign: those
// elements are held to that bound instead of 1e-5.
func isKeyBias(name string, i, n int) bool {
	return strings.HasSuffix(name, "attn.qkv.bias") && i >= n/3 && i < 2*n/3
}

// gradTol is the element tolerance of the gradients: 1e-5 of the largest.
func maxAbs(m map[string][]float32) float64 {
	var x float64
	for _, v := range m {
		for _, a := range v {
			x = math.Max(x, math.Abs(float64(a)))
		}
	}
	return x
}

func TestTrainingParity(t *testing.T) {
	for _, c := range []struct {
		config, file string
		normPix      bool
		accum        int
	}{
		{"tiny32", "train.json", false, 1},
		{"tiny32", "train_normpix.json", true, 1},
		{"small48", "train.json", false, 1},
		{"small48", "train_normpix.json", true, 1},
		{"tiny32", "train_accum2.json", false, 2}, // loss/accum_iter, lr at multiples of accum_iter
	} {
		t.Run(c.config+"/"+c.file, func(t *testing.T) {
			ref := loadRef(t, c.config, c.file)
			if ref.NormPix != c.normPix || ref.Recipe.AccumIter != c.accum {
				t.Fatalf("%s: norm_pix_loss %v, accum_iter %d; want %v, %d", c.file, ref.NormPix, ref.Recipe.AccumIter, c.normPix, c.accum)
			}
			checkGroups(t, ref)
			g := trainLikeRef(t, ref, nil)
			for _, e := range compareSmall(ref, g) {
				t.Error(e)
			}
			var lossDiff float64
			for i := range ref.Losses {
				lossDiff = math.Max(lossDiff, math.Abs(g.losses[i]-ref.Losses[i]))
			}
			t.Logf("max loss diff %.3g", lossDiff)
			args := []string{c.config, "--accum-iter", strconv.Itoa(c.accum)}
			if c.normPix {
				args = append(args, "--norm-pix")
			}
			full := runTorchRef(t, args...)
			if full == nil {
				return
			}
			gd, pd, errs := compareFull(full, g)
			for _, e := range errs {
				t.Error(e)
			}
			t.Logf("max gradient diff %.3g of the largest gradient, max parameter diff %.3g after %d steps", gd, pd, ref.Steps)
		})
	}
}

// fullRef is the reference's element-wise output.
type fullRef struct{ grads, params map[string][]float32 }

// runTorchRef runs train_ref.py into a temporary directory; nil (test
// skipped part) without torch unless MAEEMBED_REQUIRE_TOOLS=1.
func runTorchRef(t *testing.T, args ...string) *fullRef {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		if os.Getenv("MAEEMBED_REQUIRE_TOOLS") == "1" {
			t.Fatalf("torch missing (apt-get install -y python3-torch): %v", err)
		}
		t.Log("torch missing: element-wise comparison skipped")
		return nil
	}
	out := t.TempDir()
	args = append([]string{"../mae/testdata/reference/train_ref.py", "--out", out}, args...)
	if b, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("train_ref.py: %v\n%s", err, b)
	}
	f := &fullRef{grads: map[string][]float32{}, params: map[string][]float32{}}
	for kind, dst := range map[string]map[string][]float32{"grad": f.grads, "param": f.params} {
		files, _ := filepath.Glob(filepath.Join(out, kind, "*.npy"))
		for _, p := range files {
			_, v, err := sinks.ReadNpyFloat32(p)
			if err != nil {
				t.Fatal(err)
			}
			dst[filepath.Base(p[:len(p)-4])] = v
		}
	}
	return f
}

// compareFull compares every element: gradients within 1e-5 of the largest
// reference gradient, parameters within 1e-5.
func compareFull(ref *fullRef, g *goRun) (gradDiff, paramDiff float64, errs []string) {
	gmax := maxAbs(ref.grads)
	var lrSum float64
	for _, lr := range g.lrs {
		lrSum += lr
	}
	for _, kind := range []string{"grad", "param"} {
		want, got, tol := ref.grads, g.grads, 1e-5*gmax
		if kind == "param" {
			want, got, tol = ref.params, g.params, 1e-5
		}
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range want {
				if !yield(k) {
					return
				}
			}
		})
		if len(got) != len(want) {
			errs = append(errs, fmt.Sprintf("%s: Go has %d tensors, reference %d", kind, len(got), len(want)))
		}
		for _, name := range names {
			v, ok := got[name]
			if !ok || len(v) != len(want[name]) {
				errs = append(errs, fmt.Sprintf("%s %s: missing or mis-sized in Go", kind, name))
				continue
			}
			var worst float64
			at := 0
			for i, w := range want[name] {
				d := math.Abs(float64(v[i]) - float64(w))
				if kind == "param" && isKeyBias(name, i, len(v)) {
					if d > 2*lrSum {
						errs = append(errs, fmt.Sprintf("param %s[%d] (key bias): Go %.9g, reference %.9g: more than two Adam steps apart", name, i, v[i], w))
					}
					continue
				}
				if d > worst {
					worst, at = d, i
				}
			}
			if kind == "grad" {
				gradDiff = math.Max(gradDiff, worst/gmax)
			} else {
				paramDiff = math.Max(paramDiff, worst)
			}
			if worst > tol {
				errs = append(errs, fmt.Sprintf("%s %s[%d]: Go %.9g, reference %.9g (diff %.3g > %.3g)", kind, name, at, v[at], want[name][at], worst, tol))
			}
		}
	}
	return gradDiff, paramDiff, errs
}

// checkGroups compares the Go weight-decay groups with the reference's.
func checkGroups(t *testing.T, ref *refRun) {
	t.Helper()
	tr := fixtureTrainer(t, ref)
	var decay, noDecay []string
	for i, p := range tr.Params {
		if tr.Opt.WeightDecay[i] > 0 {
			decay = append(decay, p.Name)
		} else {
			noDecay = append(noDecay, p.Name)
		}
	}
	if !slices.Equal(decay, ref.Decay) {
		t.Errorf("decay group differs from the reference:\n go  %v\n ref %v", decay, ref.Decay)
	}
	if !slices.Equal(noDecay, ref.NoDecay) {
		t.Errorf("no-decay group differs from the reference:\n go  %v\n ref %v", noDecay, ref.NoDecay)
	}
}

// A parameter in the wrong weight-decay group makes the parity check fail:
// the comparison can see the groups, not just the gradients.
func TestTrainingParityCatchesWrongDecayGroup(t *testing.T) {
	ref := loadRef(t, "tiny32", "train.json")
	for _, name := range []string{"cls_token", "mask_token", "blocks.0.norm1.weight", "blocks.1.attn.proj.bias", "decoder_pred.weight"} {
		t.Run(name, func(t *testing.T) {
			g := trainLikeRef(t, ref, func(tr *Trainer) {
				for i, p := range tr.Params {
					if p.Name == name {
						if tr.Opt.WeightDecay[i] > 0 {
							tr.Opt.WeightDecay[i] = 0
						} else {
							tr.Opt.WeightDecay[i] = tr.Recipe.WeightDecay
						}
						return
					}
				}
				t.Fatalf("no parameter %s", name)
			})
			errs := compareSmall(ref, g)
			if len(errs) == 0 {
				t.Fatalf("moving %s to the other weight-decay group went unnoticed", name)
			}
			for _, e := range errs {
				// The changed parameter changes the later losses too.
				if !strings.Contains(e, " "+name+":") && !strings.Contains(e, ": loss ") {
					t.Errorf("unexpected difference besides %s: %s", name, e)
				}
			}
		})
	}
}

// fixtureTrainer is a trainer of the reference run's fixture model (the
// initial weights both sides start from) with its recipe.
func fixtureTrainer(t *testing.T, ref *refRun) *Trainer {
	t.Helper()
	dir := filepath.Join(fixtures, ref.Config)
	m, err := mae.Load(filepath.Join(dir, "model.pth"), filepath.Join(dir, "hf", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, ref.recipe())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
