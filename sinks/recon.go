package sinks

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
)

// ReconMeta describes a reconstruct run.
type ReconMeta struct {
	Model, Preprocess, Version string
	MaskRatio                  float64
	Seed                       int64
	// Patches is L, Patch is p; a prediction row holds L·p·p·3 values.
	Patches, Patch int
	// NormPixLoss records whether the model was trained on per-patch
	// normalised targets (its predictions are then not pixels).
	NormPixLoss bool
	// Precision is the model's arithmetic, as in Meta.
	Precision string
	// Kernel names the kernels, as in Meta.
	Kernel string
	// Weights is the weights' fingerprint, as in Meta.
	Weights string
	// Inputs are the run's input roots, as in Meta.
	Inputs []string
	// MaskNoise fingerprints the --mask-noise rows the masks came from
	// (MaskNoiseFingerprint); empty for masks drawn from Seed. Recorded as
	// maeembed.mask_noise, so a resume cannot mix the two kinds of masks.
	MaskNoise string
	// IDColumn and ImageColumn are the run's Parquet columns, and
	// IDColumnAuto and ImageColumnAuto their automatic choice, as in Meta.
	IDColumn, ImageColumn         string
	IDColumnAuto, ImageColumnAuto string
}

// MaskNoiseFingerprint is ReconMeta.MaskNoise of noise rows: the first 16
// hex digits of a SHA-256 over their shape and little-endian float32s.
func MaskNoiseFingerprint(shape []int, data []float32) string {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	for _, n := range shape {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(n))
	}
	for _, v := range data { // in pieces: the rows may be large
		if len(buf)+4 > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (m ReconMeta) patchDim() int { return m.Patch * m.Patch * 3 }

func (m ReconMeta) validate() error {
	if m.Patches <= 0 || m.Patch <= 0 {
		return fmt.Errorf("sinks: reconstruct needs patches and patch size > 0, got L=%d p=%d", m.Patches, m.Patch)
	}
	return nil
}

func (m ReconMeta) keyValues() ([]string, []string) {
	keys := []string{"maeembed.model", "maeembed.preprocess", "maeembed.version", "maeembed.mask_ratio", "maeembed.seed", "maeembed.patches", "maeembed.patch_size", "maeembed.norm_pix_loss"}
	vals := []string{ModelName(m.Model), m.Preprocess, m.Version, strconv.FormatFloat(m.MaskRatio, 'g', -1, 64), strconv.FormatInt(m.Seed, 10),
		strconv.Itoa(m.Patches), strconv.Itoa(m.Patch), strconv.FormatBool(m.NormPixLoss)}
	if m.Precision != "" {
		keys = append(keys, "maeembed.precision")
		vals = append(vals, m.Precision)
	}
	if m.MaskNoise != "" {
		keys = append(keys, "maeembed.mask_noise")
		vals = append(vals, m.MaskNoise)
	}
	keys, vals = kernelKV(keys, vals, m.Kernel)
	keys, vals = weightsKV(keys, vals, m.Weights)
	keys, vals = columnsKV(keys, vals, m.IDColumn, m.ImageColumn, m.IDColumnAuto, m.ImageColumnAuto)
	return inputsKV(keys, vals, m.Inputs)
}

// ReconRow is one reconstructed image.
type ReconRow struct {
	ID            string
	Width, Height int32
	// Pred is the raw decoder output, L·p·p·3 values, patch layout
	// (h, w, p, q, c) with channels fastest, in normalised pixel space.
	Pred []float32
	// Mask holds L values, 1 for removed patches, in original patch order.
	Mask []float32
	Loss float32
	// Image is the normalised model input, CHW float32 [3,S,S] with
	// S = p·sqrt(L); PredImage is Pred laid out the same way and PixelMask
	// the mask per pixel [S,S] (mae.Reconstruction.Images). Only the PNG
	// writer needs these three.
	Image, PredImage, PixelMask []float32
	// Ack, if set, is called once: nil when the row is durable, else why not.
	Ack func(error)
}

// ReconWriter writes reconstructions (NewReconNpy, NewReconParquet,
// NewReconPNG).
type ReconWriter = Writer[ReconRow]

func checkRecon(rows []ReconRow, m ReconMeta, needImage bool) error {
	for i := range rows {
		r := &rows[i]
		if len(r.Pred) != m.Patches*m.patchDim() || len(r.Mask) != m.Patches {
			return fmt.Errorf("sinks: reconstruct row %q has pred %d and mask %d values, want %d and %d", r.ID, len(r.Pred), len(r.Mask), m.Patches*m.patchDim(), m.Patches)
		}
		if needImage {
			g := gridSide(m.Patches)
			if s := g * m.Patch; len(r.Image) != 3*s*s || len(r.PredImage) != 3*s*s || len(r.PixelMask) != s*s {
				return fmt.Errorf("sinks: reconstruct row %q has images of %d and %d values and a mask of %d, want 3·%d·%d and %d·%d",
					r.ID, len(r.Image), len(r.PredImage), len(r.PixelMask), s, s, s, s)
			}
		}
	}
	return nil
}

// ReconNpy writes pred.npy, mask.npy, loss.npy and metadata.parquet, published by Close.
type ReconNpy struct {
	meta ReconMeta
	set  *npySet
	loss [1]float32
}

// NewReconNpy writes DIR/pred.npy float32 [N,L,p·p·3] (raw decoder output),
// DIR/mask.npy [N,L] (1 = removed), DIR/loss.npy [N] and DIR/metadata.parquet
// (id, width, height; maeembed.* metadata incl. mask_ratio, seed, patches,
// patch_size). Published by Close; resumes like NewNpy.
func NewReconNpy(dir string, meta ReconMeta) (*ReconNpy, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	k, v := meta.keyValues()
	set, err := openNpySet(dir, reconNpyNames,
		[][]int{{meta.Patches, meta.patchDim()}, {meta.Patches}, {}}, k, v)
	if err != nil {
		return nil, err
	}
	return &ReconNpy{meta: meta, set: set}, nil
}

func reconAck(r *ReconRow) func(error) { return r.Ack }

func (w *ReconNpy) Write(rows []ReconRow) error {
	if w.set.done {
		return failRows(rows, reconAck, errWriteAfterClose)
	}
	if err := checkRecon(rows, w.meta, false); err != nil {
		return failRows(rows, reconAck, err)
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		w.set.held.hold(rows[i].Ack)
	}
	for i := range rows {
		w.loss[0] = rows[i].Loss
		for j, v := range [][]float32{rows[i].Pred, rows[i].Mask, w.loss[:]} {
			if err := w.set.files[j].appendRow(v); err != nil {
				return err
			}
		}
	}
	return w.set.writeMeta(len(rows), func(i int) string { return rows[i].ID },
		func(i int) (int32, int32) { return rows[i].Width, rows[i].Height })
}

func (w *ReconNpy) Flush() error { return nil } // only Close publishes the set
func (w *ReconNpy) Close() error { return w.set.close() }
func (w *ReconNpy) Abort() error { return w.set.abort() }

// ReconParts writes reconstructions to rolling Parquet part files.
type ReconParts struct {
	rolling
	meta    ReconMeta
	offsets []int32
	widths  []int32
	heights []int32
	pred    []float32
	mask    []float32
	loss    []float32
}

// NewReconParquet writes rolling DIR/part-NNNNN.parquet with columns id,
// width, height, pred fixed_size_list<fixed_size_list<float32>[p·p·3]>[L],
// mask fixed_size_list<float32>[L], loss float32, and the metadata of
// NewReconNpy.
func NewReconParquet(dir string, meta ReconMeta, opts ParquetOptions) (*ReconParts, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	k, v := meta.keyValues()
	schema := schemaWithMeta([]arrow.Field{
		field("id", arrow.BinaryTypes.String),
		field("width", arrow.PrimitiveTypes.Int32),
		field("height", arrow.PrimitiveTypes.Int32),
		field("pred", fslType(meta.Patches, meta.patchDim())),
		field("mask", fslType(meta.Patches)),
		field("loss", arrow.PrimitiveTypes.Float32),
	}, k, v)
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := newParts(dir, "parquet", schema, o, false, nil, func(path string) (recordFile, error) {
		return createParquet(path, schema, o.RowGroupBytes)
	})
	if err != nil {
		return nil, err
	}
	return &ReconParts{rolling: rolling{schema: schema, parts: p}, meta: meta}, nil
}

func (w *ReconParts) Write(rows []ReconRow) error {
	if w.done {
		return failRows(rows, reconAck, errWriteAfterClose)
	}
	if err := checkRecon(rows, w.meta, false); err != nil {
		return failRows(rows, reconAck, err)
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		w.parts.held.hold(rows[i].Ack)
	}
	n := len(rows)
	w.widths, w.heights, w.pred, w.mask, w.loss = w.widths[:0], w.heights[:0], w.pred[:0], w.mask[:0], w.loss[:0]
	var raw int64
	for i := range rows {
		r := &rows[i]
		w.widths = append(w.widths, r.Width)
		w.heights = append(w.heights, r.Height)
		w.pred = append(w.pred, r.Pred...)
		w.mask = append(w.mask, r.Mask...)
		w.loss = append(w.loss, r.Loss)
		raw += int64(len(r.ID) + 12 + 4*(len(r.Pred)+len(r.Mask)))
	}
	cols := []arrow.Array{
		stringColumn(&w.offsets, n, func(i int) string { return rows[i].ID }),
		int32Column(w.widths), int32Column(w.heights),
		fslColumn(w.pred, w.meta.Patches, w.meta.patchDim()),
		fslColumn(w.mask, w.meta.Patches),
		float32Column(w.loss),
	}
	return w.writeColumns(cols, n, raw)
}
