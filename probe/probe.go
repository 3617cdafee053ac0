// Package probe measures what an encoder learned, from the embeddings
// maeembed wrote: on a labelled set (labels from folder names or a Parquet
// column) it reports the top-1 accuracy of DINO's weighted k-NN classifier
// and of a linear probe trained as MAE's linear probing does, on a seeded
// stratified train/test split, next to the majority-class baseline, and
// can train the same probes on raw pixels of the same images for
// comparison.
//
// Data flow: Load (embeddings) → NewDataset (labels) → Evaluate (Split,
// KNN.Predict, TrainLinear, Head.Predict) → Report.
package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
)

// Options of Evaluate. Zero fields take the defaults.
// The YAML keys are the command's flag names in snake case.
type Options struct {
	KNN          KNN           `yaml:",inline"`       // default DefaultKNN (k 20, T 0.07)
	Linear       LinearOptions `yaml:",inline"`       // Linear.Seed is set from Seed
	TestFraction float64       `yaml:"test_fraction"` // default 0.2
	Seed         uint64        `yaml:"seed"`          // split, head initialisation and shuffles
}

// Features are vectors for the rows of a Dataset, in its row order, to be
// probed on the same split (e.g. raw pixels of the same images).
type Features struct {
	Name string
	X    []float32 // [N×D]
	D    int
}

// Result is what the probes measured on one set of features.
type Result struct {
	Name       string  `json:"name"`
	Dim        int     `json:"dim"`
	KNNTop1    float64 `json:"knn_top1"`
	LinearTop1 float64 `json:"linear_top1"`
	// Head is the trained linear probe.
	Head *Head `json:"-"`
}

// Report is the outcome of Evaluate. Accuracies are fractions in [0, 1] of
// the test rows.
type Report struct {
	Model        string   `json:"model,omitempty"` // from the embeddings' metadata
	Pool         string   `json:"pool,omitempty"`
	Images       int      `json:"images"`     // labelled rows
	Unlabelled   int      `json:"unlabelled"` // rows left out for want of a label
	Classes      []string `json:"classes"`
	Train        int      `json:"train"`
	Test         int      `json:"test"`
	TestFraction float64  `json:"test_fraction"`
	Seed         uint64   `json:"seed"`
	K            int      `json:"k"`
	Temperature  float64  `json:"temperature"`
	Epochs       int      `json:"epochs"`
	LR           float64  `json:"lr"`
	// MajorityTop1 is the accuracy of always answering the most frequent
	// training class: the floor any probe must beat.
	MajorityTop1 float64  `json:"majority_top1"`
	Results      []Result `json:"results"`
}

func (o Options) withDefaults() Options {
	if o.KNN == (KNN{}) {
		o.KNN = DefaultKNN
	}
	if o.TestFraction == 0 {
		o.TestFraction = 0.2
	}
	o.Linear = o.Linear.withDefaults()
	o.Linear.Seed = o.Seed
	return o
}

// Evaluate splits ds (stratified, seeded) and measures the k-NN and linear
// probes on ds's embeddings, then on each extra feature set with the same
// split. Results come in that order; Results[0].Head is the head trained on
// the embeddings.
func Evaluate(ds *Dataset, o Options, extra ...Features) (*Report, error) {
	o = o.withDefaults()
	train, test, err := Split(ds.Y, len(ds.Classes), o.TestFraction, o.Seed)
	if err != nil {
		return nil, err
	}
	if o.KNN.K > len(train) {
		// The vote can take no more neighbours than there are training
		// rows: report the k it used, not the one asked for.
		slog.Warn("probe: k is more than the training rows; the kNN vote uses all of them", "k", o.KNN.K, "train", len(train))
		o.KNN.K = len(train)
	}
	r := &Report{
		Images: ds.N, Unlabelled: ds.Unlabelled, Classes: ds.Classes,
		Train: len(train), Test: len(test), TestFraction: o.TestFraction, Seed: o.Seed,
		K: o.KNN.K, Temperature: o.KNN.T, Epochs: o.Linear.Epochs, LR: o.Linear.LR,
	}
	trainY, testY := pick(ds.Y, train), pick(ds.Y, test)
	r.MajorityTop1 = accuracy(make([]int, len(test)), testY, majority(trainY, len(ds.Classes)))
	sets := append([]Features{{Name: "embeddings", X: ds.X, D: ds.D}}, extra...)
	for _, f := range sets {
		if f.D < 1 || len(f.X) != ds.N*f.D {
			return nil, fmt.Errorf("features %s: %d values do not hold %d rows of %d", f.Name, len(f.X), ds.N, f.D)
		}
		trX, teX := gatherRows(f.X, f.D, train), gatherRows(f.X, f.D, test)
		knn, err := o.KNN.Predict(trX, trainY, len(ds.Classes), teX, f.D)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		h, err := TrainLinear(trX, trainY, f.D, ds.Classes, o.Linear)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		r.Results = append(r.Results, Result{
			Name: f.Name, Dim: f.D, Head: h,
			KNNTop1:    accuracy(knn, testY, -1),
			LinearTop1: accuracy(h.Predict(teX), testY, -1),
		})
	}
	return r, nil
}

// accuracy is the fraction of pred equal to want; a constant ≥ 0 replaces
// every prediction.
func accuracy(pred, want []int, constant int) float64 {
	ok := 0
	for i, w := range want {
		p := pred[i]
		if constant >= 0 {
			p = constant
		}
		if p == w {
			ok++
		}
	}
	return float64(ok) / float64(len(want))
}

// majority is the most frequent class (the lowest on ties).
func majority(y []int, numClasses int) int {
	n := make([]int, numClasses)
	best := 0
	for _, c := range y {
		n[c]++
	}
	for c := range n {
		if n[c] > n[best] {
			best = c
		}
	}
	return best
}

func pick(y []int, rows []int) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = y[r]
	}
	return out
}

func gatherRows(x []float32, d int, rows []int) []float32 {
	out := make([]float32, len(rows)*d)
	for i, r := range rows {
		copy(out[i*d:(i+1)*d], x[r*d:(r+1)*d])
	}
	return out
}

// WriteText writes the report as a small table.
func (r *Report) WriteText(w io.Writer) error {
	src := ""
	if r.Model != "" {
		src = fmt.Sprintf(" (model %s, pool %s)", r.Model, r.Pool)
	}
	fmt.Fprintf(w, "probe%s: %d images in %d classes, train %d / test %d (test fraction %g, seed %d)\n",
		src, r.Images, len(r.Classes), r.Train, r.Test, r.TestFraction, r.Seed)
	if r.Unlabelled > 0 {
		fmt.Fprintf(w, "%d embeddings without a label were left out\n", r.Unlabelled)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "features\tdim\tkNN top-1 (k %d, T %g)\tlinear top-1 (%d epochs)\n", r.K, r.Temperature, r.Epochs)
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\n", x.Name, x.Dim, 100*x.KNNTop1, 100*x.LinearTop1)
	}
	fmt.Fprintf(tw, "majority class\t\t%.1f%%\t%.1f%%\n", 100*r.MajorityTop1, 100*r.MajorityTop1)
	return tw.Flush()
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
