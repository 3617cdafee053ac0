package mae

import (
	"fmt"
	"math"
)

// Embedder is the embedding model stage: normalised CHW images in, one
// embedding per image out. Patchify stays inside: callers hand images as
// the preprocessing writes them (float32 [3,S,S], S = Config.ImageSize).
// It reuses one patch buffer, so one goroutine uses it at a time.
type Embedder struct {
	m       *Model
	pool    Pool
	dim     int
	patches []float32
}

// NewEmbedder checks that m can pool with pool and sizes the buffers for
// batches of up to maxBatch images.
func NewEmbedder(m *Model, pool Pool, maxBatch int) (*Embedder, error) {
	if err := m.CheckPool(pool); err != nil {
		return nil, err
	}
	c := m.Config
	return &Embedder{m: m, pool: pool, dim: m.EmbedDim(pool), patches: make([]float32, maxBatch*c.NumPatches()*c.PatchDim())}, nil
}

// Dim is the number of values per image: D, or (1+L)·D for PoolTokens.
func (e *Embedder) Dim() int { return e.dim }

// Embed writes the embeddings of images into dst, len(images)·Dim() values
// in image order.
func (e *Embedder) Embed(dst []float32, images [][]float32) error {
	n := len(images)
	pp, err := e.patchify(images)
	if err != nil {
		return err
	}
	if len(dst) < n*e.dim {
		return fmt.Errorf("mae: embed output has %d values, want %d", len(dst), n*e.dim)
	}
	return e.m.Embed(dst[:n*e.dim], pp, n, e.pool)
}

func (e *Embedder) patchify(images [][]float32) ([]float32, error) {
	return patchifyBatch(e.m.Config, e.patches, images)
}

// patchifyBatch lays images out in patch order into buf (grown if needed).
func patchifyBatch(c Config, buf []float32, images [][]float32) ([]float32, error) {
	per := c.NumPatches() * c.PatchDim()
	want := 3 * c.ImageSize * c.ImageSize
	if cap(buf) < len(images)*per {
		return nil, fmt.Errorf("mae: batch of %d images exceeds the %d the stage was made for", len(images), cap(buf)/per)
	}
	pp := buf[:len(images)*per]
	for i, img := range images {
		if len(img) != want {
			return nil, fmt.Errorf("mae: image %d has %d values, want 3·%d·%d", i, len(img), c.ImageSize, c.ImageSize)
		}
		Patchify(pp[i*per:], img, 1, c.ImageSize, c.PatchSize)
	}
	return pp, nil
}

// Noise gives the masking noise of one input: L values in [0, 1) whose
// argsort decides which patches are removed (the reference's random_masking).
type Noise interface {
	// Fill writes the noise of the input at position index (its ordinal in
	// the input sequence) into dst.
	Fill(dst []float32, index int64) error
}

// SeededNoise draws each input's noise from the seed and its position
// (NoiseRow), so a mask does not depend on batching or sharding.
type SeededNoise uint64

// Fill implements Noise.
func (s SeededNoise) Fill(dst []float32, index int64) error {
	NoiseRow(dst, uint64(s), index)
	return nil
}

// NoiseRows is noise given as rows, one per input in input order (the
// reference's own draws, e.g. from a float32 .npy [N, L]).
type NoiseRows struct {
	Name string    // for errors: where the rows came from
	L    int       // values per row
	Data []float32 // N·L values
}

// Check refuses rows holding NaN or ±Inf. No draw of the reference's
// noise holds one (torch.rand is in [0, 1)): such a file is broken (a
// failed computation, values beyond float32's range), and although
// NewMasking orders NaN as torch.argsort does, the masks would not be the
// ones meant. The error names the row and column (0-based) of the first.
func (r NoiseRows) Check() error {
	for i, v := range r.Data {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: row %d, column %d ([%d, %d], 0-based) is %v as float32: mask noise must be finite (the reference draws it in [0, 1))",
				r.Name, i/r.L, i%r.L, i/r.L, i%r.L, v)
		}
	}
	return nil
}

// Fill implements Noise.
func (r NoiseRows) Fill(dst []float32, index int64) error {
	if err := r.Has(index); err != nil {
		return err
	}
	copy(dst, r.Data[index*int64(r.L):(index+1)*int64(r.L)])
	return nil
}

// Has tells whether r holds the row of the input at position index (its
// error is Fill's).
func (r NoiseRows) Has(index int64) error {
	if n := int64(len(r.Data) / r.L); index < 0 || index >= n {
		return fmt.Errorf("mask noise %s has %d rows, input is number %d", r.Name, n, index)
	}
	return nil
}

// Reconstructor is the reconstruction model stage: normalised CHW images
// in, masked by Noise at Ratio, encoder and decoder run, predictions, masks
// and losses out. One goroutine uses it at a time.
type Reconstructor struct {
	m       *Model
	ratio   float64
	normPix bool
	noise   Noise
	patches []float32
	nbuf    []float32
}

// NewReconstructor needs a model with a decoder and a ratio that keeps at
// least one patch (Config.CheckMaskRatio).
func NewReconstructor(m *Model, ratio float64, normPix bool, noise Noise, maxBatch int) (*Reconstructor, error) {
	if m.Decoder == nil {
		return nil, fmt.Errorf("the checkpoint has no decoder: reconstruction needs a model with decoder weights (e.g. mae_visualize_vit_base.pth)")
	}
	c := m.Config
	if err := c.CheckMaskRatio(ratio); err != nil {
		return nil, err
	}
	return &Reconstructor{m: m, ratio: ratio, normPix: normPix, noise: noise,
		patches: make([]float32, maxBatch*c.NumPatches()*c.PatchDim()), nbuf: make([]float32, maxBatch*c.NumPatches())}, nil
}

// CheckInput tells whether the noise has a row for the input at position
// index (noise given as rows, NoiseRows, may end before the inputs do), so
// that such an input fails on its own rather than its whole batch in
// Reconstruct.
func (r *Reconstructor) CheckInput(index int64) error {
	if h, ok := r.noise.(interface{ Has(int64) error }); ok {
		return h.Has(index)
	}
	return nil
}

// Reconstruct runs images; index[i] is image i's position in the input
// sequence, which picks its noise.
func (r *Reconstructor) Reconstruct(images [][]float32, index []int64) (*Reconstruction, error) {
	pp, err := patchifyBatch(r.m.Config, r.patches, images)
	if err != nil {
		return nil, err
	}
	l := r.m.Config.NumPatches()
	nb := r.nbuf[:len(images)*l]
	for i := range images {
		if err := r.noise.Fill(nb[i*l:(i+1)*l], index[i]); err != nil {
			return nil, err
		}
	}
	return r.m.Reconstruct(pp, nb, len(images), r.ratio, r.normPix)
}
