package engine

import (
	"math/bits"
	"sync"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

// Embeddings is the embed stage's result for a batch: Dim values per
// image, in image order, in a pooled buffer.
type Embeddings struct {
	Vals []float32
	Dim  int
}

// Vector is image i's embedding.
func (e Embeddings) Vector(i int) []float32 { return e.Vals[i*e.Dim : (i+1)*e.Dim] }

// EmbeddingsBytes is the size of one batch's Embeddings: batch·dim
// float32 (dim: mae.Config.EmbedDim), for ModelMemory.Result.
func EmbeddingsBytes(batch, dim int) int64 { return 4 * int64(batch) * int64(dim) }

// EmbedModel runs a mae.Embedder as the engine's model stage.
type EmbedModel struct {
	emb    *mae.Embedder
	images [][]float32
	vals   sync.Pool
}

// NewEmbedModel wraps emb for batches of up to batch images.
func NewEmbedModel(emb *mae.Embedder, batch int) *EmbedModel {
	m := &EmbedModel{emb: emb, images: make([][]float32, 0, batch)}
	m.vals.New = func() any { return make([]float32, batch*emb.Dim()) }
	return m
}

// Run implements Model.
func (m *EmbedModel) Run(imgs []*Image) (Embeddings, error) {
	m.images = m.images[:0]
	for _, im := range imgs {
		m.images = append(m.images, im.CHW)
	}
	out := Embeddings{Vals: m.vals.Get().([]float32)[:len(imgs)*m.emb.Dim()], Dim: m.emb.Dim()}
	if err := m.emb.Embed(out.Vals, m.images); err != nil {
		m.Release(out)
		return Embeddings{}, err
	}
	return out, nil
}

// Release implements Model.
func (m *EmbedModel) Release(e Embeddings) {
	if e.Vals != nil {
		m.vals.Put(e.Vals[:cap(e.Vals)])
	}
}

// EmbeddingOutput writes embeddings to one or more writers (a tee: a row's
// input is acked once every writer has its row durable).
type EmbeddingOutput struct {
	ws   []sinks.Writer[sinks.Row]
	rows []sinks.Row
}

// NewEmbeddingOutput writes to every writer in ws.
func NewEmbeddingOutput(ws ...sinks.Writer[sinks.Row]) *EmbeddingOutput {
	return &EmbeddingOutput{ws: ws}
}

// Write implements Output.
func (o *EmbeddingOutput) Write(imgs []*Image, r Embeddings) error {
	o.rows = o.rows[:0]
	for i, im := range imgs {
		o.rows = append(o.rows, sinks.Row{ID: im.Item.ID, Width: int32(im.Width), Height: int32(im.Height),
			Embedding: r.Vector(i), Source: im.Item.Pos.String(), Ack: sinks.JoinAck(len(o.ws), im.Item.Ack)})
	}
	for _, w := range o.ws {
		if err := w.Write(o.rows); err != nil {
			return err
		}
	}
	return nil
}

// Flush implements Output.
func (o *EmbeddingOutput) Flush() error { return each(o.ws, sinks.Writer[sinks.Row].Flush) }

// Close implements Output.
func (o *EmbeddingOutput) Close() error { return each(o.ws, sinks.Writer[sinks.Row].Close) }

// Abort implements Output.
func (o *EmbeddingOutput) Abort() error { return each(o.ws, sinks.Writer[sinks.Row].Abort) }

// each calls f on every writer, even after a failure, and returns the first error.
func each[W any](ws []W, f func(W) error) error {
	var first error
	for _, w := range ws {
		if err := f(w); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ReconstructModel runs a mae.Reconstructor as the engine's model stage.
// With KeepImages, the result also keeps a copy of each model input (the
// PNG panels need it after the engine reuses the CHW buffers).
type ReconstructModel struct {
	rec        *mae.Reconstructor
	keepImages bool
	images     [][]float32
	index      []int64
	imgPool    sync.Pool
	predPool   sync.Pool
	maskPool   sync.Pool
}

// Reconstruction is the reconstruct stage's result for a batch.
type Reconstruction struct {
	*mae.Reconstruction
	// With KeepImages: each image's model input (CHW), its prediction as
	// an image (CHW) and its mask per pixel ([S,S]), for the PNG panels.
	Images, PredImages, PixelMasks []float32
}

// ReconstructionBytes is the size of one batch's Reconstruction, for
// ModelMemory.Result: for batch images of a model c at mask ratio ratio,
// the predictions [n,L,p·p·3] (an image's worth each), the encoder's
// output [n,1+keep,D], the masks, the shuffle and restore indices and the
// losses; with keepImages (NewReconstructModel's), each input's copy, its
// prediction as an image and its mask per pixel.
func ReconstructionBytes(c mae.Config, batch int, ratio float64, keepImages bool) int64 {
	n, l := int64(batch), int64(c.NumPatches())
	floats := n*l*int64(c.PatchDim()) + n*int64(1+c.NumKeep(ratio))*int64(c.Dim) + n*l + n
	ints := 2 * n * l
	if keepImages {
		px := int64(c.ImageSize) * int64(c.ImageSize)
		floats += n * (2*3*px + px)
	}
	return 4*floats + bits.UintSize/8*ints
}

// NewReconstructModel wraps rec for batches of up to batch images of
// imageSize pixels square.
func NewReconstructModel(rec *mae.Reconstructor, batch, imageSize int, keepImages bool) *ReconstructModel {
	m := &ReconstructModel{rec: rec, keepImages: keepImages, images: make([][]float32, 0, batch), index: make([]int64, 0, batch)}
	n := 3 * imageSize * imageSize
	m.imgPool.New = func() any { return make([]float32, batch*n) }
	m.predPool.New = func() any { return make([]float32, batch*n) }
	m.maskPool.New = func() any { return make([]float32, batch*n/3) }
	return m
}

// CheckImage implements ImageChecker: an input the masking noise has no
// row for (--mask-noise shorter than the inputs) fails alone.
func (m *ReconstructModel) CheckImage(im *Image) error {
	return m.rec.CheckInput(im.Item.Pos.Index)
}

// Run implements Model.
func (m *ReconstructModel) Run(imgs []*Image) (Reconstruction, error) {
	m.images, m.index = m.images[:0], m.index[:0]
	for _, im := range imgs {
		m.images = append(m.images, im.CHW)
		m.index = append(m.index, im.Item.Pos.Index)
	}
	rec, err := m.rec.Reconstruct(m.images, m.index)
	if err != nil {
		return Reconstruction{}, err
	}
	out := Reconstruction{Reconstruction: rec}
	if m.keepImages {
		out.Images = m.imgPool.Get().([]float32)[:0]
		for _, im := range imgs {
			out.Images = append(out.Images, im.CHW...)
		}
		out.PredImages, out.PixelMasks = rec.Images(m.predPool.Get().([]float32), m.maskPool.Get().([]float32))
	}
	return out, nil
}

// Release implements Model.
func (m *ReconstructModel) Release(r Reconstruction) {
	if r.Images != nil {
		m.imgPool.Put(r.Images[:cap(r.Images)])
		m.predPool.Put(r.PredImages[:cap(r.PredImages)])
		m.maskPool.Put(r.PixelMasks[:cap(r.PixelMasks)])
	}
}

// ReconstructionOutput writes reconstructions to w.
type ReconstructionOutput struct {
	w    sinks.Writer[sinks.ReconRow]
	rows []sinks.ReconRow
}

// NewReconstructionOutput writes to w.
func NewReconstructionOutput(w sinks.Writer[sinks.ReconRow]) *ReconstructionOutput {
	return &ReconstructionOutput{w: w}
}

// Write implements Output.
func (o *ReconstructionOutput) Write(imgs []*Image, r Reconstruction) error {
	o.rows = o.rows[:0]
	l := r.L
	pd := len(r.Pred) / (r.N * l)
	img := 0
	if r.Images != nil {
		img = len(r.Images) / len(imgs)
	}
	for i, im := range imgs {
		row := sinks.ReconRow{ID: im.Item.ID, Width: int32(im.Width), Height: int32(im.Height),
			Pred: r.Pred[i*l*pd : (i+1)*l*pd], Mask: r.Masking.Mask[i*l : (i+1)*l], Loss: r.Loss[i], Ack: im.Item.Ack}
		if r.Images != nil {
			row.Image = r.Images[i*img : (i+1)*img]
			row.PredImage = r.PredImages[i*img : (i+1)*img]
			row.PixelMask = r.PixelMasks[i*img/3 : (i+1)*img/3]
		}
		o.rows = append(o.rows, row)
	}
	return o.w.Write(o.rows)
}

// Flush implements Output.
func (o *ReconstructionOutput) Flush() error { return o.w.Flush() }

// Close implements Output.
func (o *ReconstructionOutput) Close() error { return o.w.Close() }

// Abort implements Output.
func (o *ReconstructionOutput) Abort() error { return o.w.Abort() }
