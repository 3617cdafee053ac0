package probe

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/mae/weights"
)

// Head is a trained linear probe:
// logits = ((x − Mean) / Std) · Weightᵀ + Bias, predicted class = argmax.
type Head struct {
	D       int
	Classes []string  // C class names; class i is row i of Weight
	Weight  []float32 // [C×D]
	Bias    []float32 // [C]
	Mean    []float32 // [D], training-set mean of each dimension
	Std     []float32 // [D], sqrt(training-set variance + 1e-6)
}

// normalize writes (x − Mean)/Std of each row of x into dst.
func (h *Head) normalize(dst, x []float32) {
	d := h.D
	for r := 0; r+d <= len(x); r += d {
		for j, v := range x[r : r+d] {
			dst[r+j] = (v - h.Mean[j]) / h.Std[j]
		}
	}
}

// predictChunk bounds the scratch of Predict (rows at a time).
const predictChunk = 1024

// Predict returns the class of each row of x ([n×D] raw embeddings, as
// written by maeembed). Ties go to the lower class index.
func (h *Head) Predict(x []float32) []int {
	c, d := len(h.Classes), h.D
	n := len(x) / d
	pred := make([]int, n)
	rows := min(n, predictChunk)
	xn := make([]float32, rows*d)
	logits := make([]float32, rows*c)
	for r0 := 0; r0 < n; r0 += rows {
		m := min(rows, n-r0)
		h.normalize(xn[:m*d], x[r0*d:(r0+m)*d])
		for i := 0; i < m; i++ {
			copy(logits[i*c:(i+1)*c], h.Bias)
		}
		kernels.Gemm(false, true, m, c, d, 1, xn, d, h.Weight, d, 1, logits, c)
		for i := 0; i < m; i++ {
			row := logits[i*c : (i+1)*c]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			pred[r0+i] = best
		}
	}
	return pred
}

// Tensor names and metadata keys of a saved head.
const (
	headWeight  = "weight"
	headBias    = "bias"
	headMean    = "mean"
	headStd     = "std"
	metaClasses = "classes"
)

// Save writes the head as one safetensors file, published atomically:
// tensors weight [C, D], bias [C], mean [D] and std [D] (float32), and in
// the metadata "classes" (a JSON array of the C class names, in row order)
// plus the given extra entries (e.g. the embeddings' model and the measured
// accuracy). In PyTorch: logits = ((x - mean) / std) @ weight.T + bias.
func (h *Head) Save(path string, extra map[string]string) error {
	c := len(h.Classes)
	cls, err := json.Marshal(h.Classes)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "pt"}
	maps.Copy(meta, extra)
	meta[metaClasses] = string(cls)
	return weights.SaveSafetensors(path, map[string]*weights.Tensor{
		headWeight: {Shape: []int{c, h.D}, Data: h.Weight},
		headBias:   {Shape: []int{c}, Data: h.Bias},
		headMean:   {Shape: []int{h.D}, Data: h.Mean},
		headStd:    {Shape: []int{h.D}, Data: h.Std},
	}, meta)
}

// LoadHead reads a head written by Save, checking that the shapes agree.
func LoadHead(path string) (*Head, error) {
	ck, err := weights.Load(path)
	if err != nil {
		return nil, err
	}
	meta, err := weights.SafetensorsMetadata(path)
	if err != nil {
		return nil, err
	}
	h := &Head{}
	if err := json.Unmarshal([]byte(meta[metaClasses]), &h.Classes); err != nil {
		return nil, fmt.Errorf("head %s: metadata %q: %w", path, metaClasses, err)
	}
	w := ck.Tensors[headWeight]
	if w == nil || len(w.Shape) != 2 {
		return nil, fmt.Errorf("head %s: no 2-D tensor %q", path, headWeight)
	}
	c := w.Shape[0]
	h.D = w.Shape[1]
	if c != len(h.Classes) || c < 1 {
		return nil, fmt.Errorf("head %s: weight has %d rows but metadata names %d classes", path, c, len(h.Classes))
	}
	h.Weight = w.Data
	for _, t := range []struct {
		name string
		n    int
		dst  *[]float32
	}{{headBias, c, &h.Bias}, {headMean, h.D, &h.Mean}, {headStd, h.D, &h.Std}} {
		v := ck.Tensors[t.name]
		if v == nil || len(v.Shape) != 1 || v.Shape[0] != t.n {
			return nil, fmt.Errorf("head %s: tensor %q missing or not of shape [%d]", path, t.name, t.n)
		}
		*t.dst = v.Data
	}
	return h, nil
}
