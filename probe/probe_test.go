package probe

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maeembed/maeembed/mae/weights"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"gopkg.in/yaml.v3"
)

// A case small enough to compute by hand. Train rows (class): the query
// directions below see similarities of 1, 0.8, 0.6, 0 or −1, with ties
// that exercise both tie rules.
func TestKNNHandComputed(t *testing.T) {
	train := []float32{
		2, 0, 0, // 0: class 0, normalised (1, 0, 0)
		0, 1, 0, // 1: class 1
		3, 4, 0, // 2: class 1, normalised (0.6, 0.8, 0)
		3, 4, 0, // 3: class 2, the same vector
		-1, 0, 0, // 4: class 2
		0, 0, 5, // 5: class 0
	}
	trainY := []int{0, 1, 1, 2, 2, 0}
	e := func(s float64) float64 { return math.Exp(s / 0.07) }
	cases := []struct {
		name  string
		k     int
		query []float32
		want  int
		votes [3]float64
	}{
		// sims 1, 0, .6, .6, −1, 0: rows 0, 2, 3.
		{"x axis", 3, []float32{5, 0, 0}, 0, [3]float64{e(1), e(0.6), e(0.6)}},
		// sims 0, 1, .8, .8, 0, 0: rows 1, 2, 3.
		{"y axis", 3, []float32{0, 0.5, 0}, 1, [3]float64{0, e(1) + e(0.8), e(0.8)}},
		// sims 0, 0, 0, 0, 0, 1: row 5, then the earliest of the equal rows 0, 1.
		{"equal sims: earlier rows", 3, []float32{0, 0, 1}, 0, [3]float64{e(1) + e(0), e(0), 0}},
		// rows 1 (class 1) and 4 (class 2) both at cos 45°: equal votes, lower class.
		{"equal votes: lower class", 2, []float32{-1, 1, 0}, 1, [3]float64{0, e(math.Sqrt(0.5)), e(math.Sqrt(0.5))}},
		// k above the training set: all six vote.
		{"k > n", 50, []float32{1, 0, 0}, 0, [3]float64{e(1) + e(0), e(0) + e(0.6), e(0.6) + e(-1)}},
	}
	for _, c := range cases {
		pred := make([]int, 1)
		votes := make([]float64, 3)
		if err := (KNN{K: c.k, T: 0.07}).classify(train, trainY, 3, c.query, 3, pred, votes); err != nil {
			t.Fatal(err)
		}
		if pred[0] != c.want {
			t.Errorf("%s: predicted %d, want %d (votes %v)", c.name, pred[0], c.want, votes)
		}
		for i, w := range c.votes {
			// float32 similarities: exp(s/T) is off by |Δs|/T ≈ 1e-6 relative.
			if math.Abs(votes[i]-w) > 1e-5*w {
				t.Errorf("%s: votes for class %d = %g, want %g", c.name, i, votes[i], w)
			}
		}
	}
	if _, err := (KNN{K: 0, T: 0.07}).Predict(train, trainY, 3, train, 3); err == nil {
		t.Error("k 0: no error")
	}
}

// descending is the indices of v by decreasing value, the earlier first
// among equal values.
func descending[T float32 | float64](v []T) []int {
	order := make([]int, len(v))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case v[a] > v[b]:
			return -1
		case v[a] < v[b]:
			return 1
		}
		return 0
	})
	return order
}

// topK against sorting: the same set, descending, earlier index first on ties.
func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n, k := 1+r.IntN(60), 1+r.IntN(25)
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(r.IntN(8)) // many ties
		}
		order := descending(row)
		idx, val := make([]int, k), make([]float32, k)
		got := topK(idx, val, row)
		want := order[:min(k, n)]
		if got != len(want) || !slices.Equal(idx[:got], want) {
			t.Fatalf("row %v k %d: got %v, want %v", row, k, idx[:got], want)
		}
	}
}

func TestSplit(t *testing.T) {
	// 3 classes of 10, 5 and 1 rows.
	var y []int
	for c, n := range []int{10, 5, 1} {
		for i := 0; i < n; i++ {
			y = append(y, c)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
	train, test, err := Split(y, 3, 0.3, 7)
	if err != nil {
		t.Fatal(err)
	}
	count := func(rows []int) [3]int {
		var n [3]int
		for _, i := range rows {
			n[y[i]]++
		}
		return n
	}
	// round(10·0.3) = 3, round(5·0.3) = 2 (1.5 rounds up), the single row stays in train.
	if got := count(test); got != [3]int{3, 2, 0} {
		t.Errorf("test classes %v, want [3 2 0]", got)
	}
	all := append(slices.Clone(train), test...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("train ∪ test is not a partition of the rows: %v", all)
		}
	}
	if !slices.IsSorted(train) || !slices.IsSorted(test) {
		t.Error("splits not in row order")
	}
	train2, test2, _ := Split(y, 3, 0.3, 7)
	if !slices.Equal(train, train2) || !slices.Equal(test, test2) {
		t.Error("same seed, different split")
	}
	_, test3, _ := Split(y, 3, 0.3, 8)
	if slices.Equal(test, test3) {
		t.Error("another seed, the same test rows")
	}
	for _, f := range []float64{0, 1, -0.1, math.NaN()} {
		if _, _, err := Split(y, 3, f, 1); err == nil {
			t.Errorf("test fraction %g: no error", f)
		}
	}
}

// blobs draws n rows per class around c random centres of norm `radius`
// with per-coordinate noise sigma.
func blobs(seed uint64, c, n, d int, radius, sigma float64) ([]float32, []int) {
	r := rand.New(rand.NewPCG(seed, 99))
	centres := make([]float64, c*d)
	for k := 0; k < c; k++ {
		var s float64
		for j := 0; j < d; j++ {
			v := r.NormFloat64()
			centres[k*d+j] = v
			s += v * v
		}
		for j := 0; j < d; j++ {
			centres[k*d+j] *= radius / math.Sqrt(s)
		}
	}
	x := make([]float32, 0, c*n*d)
	y := make([]int, 0, c*n)
	for i := 0; i < c*n; i++ {
		k := i % c
		for j := 0; j < d; j++ {
			x = append(x, float32(centres[k*d+j]+sigma*r.NormFloat64()))
		}
		y = append(y, k)
	}
	return x, y
}

func dataset(x []float32, y []int, d, c int) *Dataset {
	ds := &Dataset{X: x, N: len(y), D: d, Y: y}
	for k := 0; k < c; k++ {
		ds.Classes = append(ds.Classes, string(rune('a'+k)))
		ds.IDs = append(ds.IDs, "")
	}
	return ds
}

// Four well-separated clusters: the centres are ≥ 10 apart against noise
// of 0.5 per coordinate (the classes are 10σ from any boundary between
// them), so both probes must be exact.
func TestSeparable(t *testing.T) {
	const c, d = 4, 32
	x, y := blobs(1, c, 100, d, 10, 0.5)
	r, err := Evaluate(dataset(x, y, d, c), Options{Seed: 3, TestFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if r.Test != 100 || r.Train != 300 {
		t.Errorf("split %d/%d, want 300/100", r.Train, r.Test)
	}
	if got := r.Results[0]; got.KNNTop1 != 1 || got.LinearTop1 != 1 {
		t.Errorf("separable set: kNN %.3f, linear %.3f, want 1 and 1", got.KNNTop1, got.LinearTop1)
	}
	if r.MajorityTop1 != 0.25 {
		t.Errorf("majority %.3f, want 0.25 (balanced classes)", r.MajorityTop1)
	}
}

// A k above the training rows is what the vote can use, all of them, and
// the report says so rather than echo the k asked for.
func TestKAboveTrainingRows(t *testing.T) {
	const c, d = 4, 8
	x, y := blobs(1, c, 10, d, 10, 0.5)
	r, err := Evaluate(dataset(x, y, d, c), Options{Seed: 3, TestFraction: 0.25, KNN: KNN{K: 100000, T: 0.07}})
	if err != nil {
		t.Fatal(err)
	}
	if r.K != r.Train || r.Train == 0 {
		t.Errorf("report k %d with %d training rows, want k = the training rows", r.K, r.Train)
	}
}

// Labels independent of the features. Given the training rows, each test
// prediction depends on its own features only, which are independent of
// its label, and every class has the same number of test rows, so the
// number of correct answers is a sum of independent indicators with mean
// exactly n/C. Hoeffding's inequality bounds the deviation:
// P(|acc − 1/C| ≥ t) ≤ 2·exp(−2·n·t²); t is chosen for a probability of
// 1e-6. The seeds are fixed, so the outcome does not vary between runs.
func TestNonSeparable(t *testing.T) {
	const c, d, n = 4, 16, 5000
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int, n)
	for i := range y {
		y[i] = i % c
	}
	rep, err := Evaluate(dataset(x, y, d, c), Options{Seed: 11, TestFraction: 0.4, Linear: LinearOptions{Epochs: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Test != 2000 {
		t.Fatalf("%d test rows, want 2000", rep.Test)
	}
	bound := math.Sqrt(math.Log(2/1e-6) / (2 * float64(rep.Test)))
	for name, acc := range map[string]float64{"kNN": rep.Results[0].KNNTop1, "linear": rep.Results[0].LinearTop1} {
		if math.Abs(acc-1.0/c) > bound {
			t.Errorf("%s accuracy %.4f on random labels, want 0.25 ± %.4f", name, acc, bound)
		}
	}
}

// A saved head reloads with the same predictions, classes and statistics.
func TestHeadRoundTrip(t *testing.T) {
	const c, d = 3, 8
	x, y := blobs(2, c, 40, d, 6, 1)
	classes := []string{"cat", "dog", "ünïcode/slash"}
	h, err := TrainLinear(x, y, d, classes, LinearOptions{Epochs: 30, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	if err := h.Save(path, map[string]string{"maeembed.model": "m"}); err != nil {
		t.Fatal(err)
	}
	g, err := LoadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Classes, classes) || !slices.Equal(g.Weight, h.Weight) || !slices.Equal(g.Bias, h.Bias) ||
		!slices.Equal(g.Mean, h.Mean) || !slices.Equal(g.Std, h.Std) {
		t.Fatal("reloaded head differs")
	}
	if !slices.Equal(g.Predict(x), h.Predict(x)) {
		t.Error("reloaded head predicts differently")
	}
	ck, err := weights.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := ck.Tensors["weight"].Shape; !slices.Equal(s, []int{c, d}) {
		t.Errorf("weight shape %v, want [%d %d]", s, c, d)
	}
	meta, _ := weights.SafetensorsMetadata(path)
	if meta["maeembed.model"] != "m" {
		t.Errorf("metadata %v lacks the extra entry", meta)
	}
	// The same seed trains the same head.
	h2, _ := TrainLinear(x, y, d, classes, LinearOptions{Epochs: 30, Seed: 1})
	if !slices.Equal(h2.Weight, h.Weight) {
		t.Error("same seed, different head")
	}
}

// The training loss goes down and the standardisation is the training
// set's (BatchNorm's biased variance + 1e-6).
func TestLinearStandardisation(t *testing.T) {
	x := []float32{1, 10, 3, 10, 5, 10, 7, 10} // dim 0: mean 4, var 5; dim 1 constant
	h, err := TrainLinear(x, []int{0, 0, 1, 1}, 2, []string{"a", "b"}, LinearOptions{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if h.Mean[0] != 4 || h.Mean[1] != 10 {
		t.Errorf("mean %v, want [4 10]", h.Mean)
	}
	if want := float32(math.Sqrt(5 + 1e-6)); h.Std[0] != want || h.Std[1] != float32(math.Sqrt(1e-6)) {
		t.Errorf("std %v, want [%g %g]", h.Std, want, math.Sqrt(1e-6))
	}
}

// The blocked GEMM path (several chunks of test rows) against a float64
// brute force of DINO's rule: the same votes, hence the same predictions,
// wherever neither the k-th neighbour nor the best class is within
// rounding of the runner-up.
func TestKNNMatchesBruteForce(t *testing.T) {
	const nTrain, nTest, d, c = 5000, 1000, 16, 7 // 5000·1000 > simBudget: two chunks
	train, test := randMatrix(1, nTrain*d), randMatrix(2, nTest*d)
	y := make([]int, nTrain)
	for i := range y {
		y[i] = (i * 7919) % c
	}
	k := DefaultKNN
	pred := make([]int, nTest)
	votes := make([]float64, nTest*c)
	if err := k.classify(train, y, c, test, d, pred, votes); err != nil {
		t.Fatal(err)
	}
	norm := func(x []float32) []float64 {
		var s float64
		for _, v := range x {
			s += float64(v) * float64(v)
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = float64(v) / math.Sqrt(s)
		}
		return out
	}
	tn := make([][]float64, nTrain)
	for j := range tn {
		tn[j] = norm(train[j*d : (j+1)*d])
	}
	checked := 0
	for i := 0; i < nTest; i++ {
		q := norm(test[i*d : (i+1)*d])
		sims := make([]float64, nTrain)
		for j := range sims {
			for l := range q {
				sims[j] += q[l] * tn[j][l]
			}
		}
		order := descending(sims)
		if sims[order[k.K-1]]-sims[order[k.K]] < 1e-5 {
			continue // the k-th neighbour is within float32 rounding of the next
		}
		want := make([]float64, c)
		for _, j := range order[:k.K] {
			want[y[j]] += math.Exp(sims[j] / k.T)
		}
		best, second := 0, -1
		for cl := 1; cl < c; cl++ {
			if want[cl] > want[best] {
				best, second = cl, best
			} else if second < 0 || want[cl] > want[second] {
				second = cl
			}
		}
		for cl, w := range want {
			if math.Abs(votes[i*c+cl]-w) > 1e-4*max(w, 1) {
				t.Fatalf("test row %d class %d: votes %g, brute force %g", i, cl, votes[i*c+cl], w)
			}
		}
		if want[best]-want[second] > 1e-3*want[best] {
			checked++
			if pred[i] != best {
				t.Fatalf("test row %d: predicted %d, brute force %d", i, pred[i], best)
			}
		}
	}
	t.Logf("%d of %d rows compared", checked, nTest)
	if checked < nTest*9/10 {
		t.Errorf("only %d of %d rows had clear neighbours and a clear winner", checked, nTest)
	}
}

// The fused loss's analytic gradients against central differences of its
// forward pass (float64 loss of float32 logits: steps of 1e-2 keep the
// truncation error well under the tolerance).
func TestSoftmaxCEGradient(t *testing.T) {
	const m, c, d = 5, 3, 4
	x := randMatrix(4, m*d)
	wv, bv := randMatrix(5, c*d), randMatrix(6, c)
	y := []int{0, 2, 1, 1, 0}
	loss := func() float64 {
		f := &softmaxCEFn{s: newSoftmaxCE(m, c, d), x: denseOf(x, m, d), w: denseOf(wv, c, d), b: denseOf(bv, c), y: y}
		v, _ := f.Forward()
		return float64(mat.Data[float32](v)[0])
	}
	w := nn.NewParam(denseOf(wv, c, d))
	b := nn.NewParam(denseOf(bv, c))
	l := newSoftmaxCE(m, c, d).graph(denseOf(x, m, d), w, b, y)
	if err := ag.Backward(l); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name string
		v    []float32
		g    []float32
	}{{"weight", wv, mat.Data[float32](w.Grad())}, {"bias", bv, mat.Data[float32](b.Grad())}} {
		for i := range p.v {
			const h = 1e-2
			old := p.v[i]
			p.v[i] = old + h
			lp := loss()
			p.v[i] = old - h
			lm := loss()
			p.v[i] = old
			num := (lp - lm) / (2 * h)
			if math.Abs(num-float64(p.g[i])) > 2e-3 {
				t.Errorf("d loss / d %s[%d]: analytic %g, numeric %g", p.name, i, p.g[i], num)
			}
		}
	}
}

func denseOf(v []float32, shape ...int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(shape...), mat.WithBacking(v))
}

// Options decode from YAML under the command's flag names in snake case,
// flat, as the other commands' config files.
func TestOptionsYAML(t *testing.T) {
	var o Options
	src := "k: 5\ntemperature: 0.1\nepochs: 3\nlr: 0.5\nbatch_size: 9\ntest_fraction: 0.3\nseed: 4\n"
	if err := yaml.Unmarshal([]byte(src), &o); err != nil {
		t.Fatal(err)
	}
	want := Options{KNN: KNN{K: 5, T: 0.1}, Linear: LinearOptions{Epochs: 3, LR: 0.5, BatchSize: 9}, TestFraction: 0.3, Seed: 4}
	if o != want {
		t.Errorf("decoded %+v, want %+v", o, want)
	}
}
