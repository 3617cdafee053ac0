package mae

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/mae/weights"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// Linear is y = x·Wᵀ + b with W in PyTorch's [out, in] layout. The weight
// is held once, packed for the GEMM kernel; W is materialised from it only
// when asked for (export, training): a ViT-B must not sit in memory twice.
type Linear struct {
	nn.Module
	W      *nn.Param // nil until Weight is called
	B      *nn.Param
	In     int
	Out    int
	packed *kernels.Packed
}

// Weight returns W as a spago parameter, unpacking it on first use. After
// changing it (an optimiser step), call Model.Repack.
func (l *Linear) Weight() *nn.Param {
	if l.W == nil {
		w := make([]float32, l.Out*l.In)
		kernels.UnpackLinear(l.packed, w)
		l.W = param(w, l.Out, l.In)
	}
	return l.W
}

// LayerNorm normalises rows with a learned scale and shift.
type LayerNorm struct {
	nn.Module
	W, B *nn.Param
	Eps  float32
}

// apply computes y = act(x·Wᵀ + b) (+ residual) for rows inputs on th.
func (l *Linear) apply(th kernels.Threads, y, x []float32, rows int, act kernels.Activation, residual []float32) {
	th.Linear(y, x, rows, l.packed, paramData(l.B), act, residual)
}

// apply normalises rows of x into y (y may be x) on th.
func (n *LayerNorm) apply(th kernels.Threads, y, x []float32, rows int) {
	th.LayerNorm(y, x, rows, len(paramData(n.W)), paramData(n.W), paramData(n.B), n.Eps)
}

// applyNormed is n.apply(th, h, x, rows) then l.apply(th, y, h, rows, act,
// nil), in one parallel call (kernels.NormLinear).
func (l *Linear) applyNormed(th kernels.Threads, y, h, x []float32, rows int, n *LayerNorm, act kernels.Activation) {
	th.NormLinear(y, h, x, rows, kernels.Norm{Gamma: paramData(n.W), Beta: paramData(n.B), Eps: n.Eps},
		l.packed, paramData(l.B), act)
}

// Block is the pre-norm transformer block of timm's VisionTransformer:
// x + Attn(LN1(x)), then x + MLP(LN2(x)).
type Block struct {
	nn.Module
	Norm1 *LayerNorm
	QKV   *Linear // fused q, k, v: [3D, D], output rows [3][heads][headDim]
	Proj  *Linear
	Norm2 *LayerNorm
	FC1   *Linear
	FC2   *Linear
	Heads int
}

// Encoder is the MAE ViT encoder.
type Encoder struct {
	nn.Module
	PatchEmbed *Linear   // conv p×p stride p as a matmul; W columns in (p, q, c) order
	ClsToken   *nn.Param // [D]
	PosEmbed   *nn.Param // [1+L, D]
	Blocks     []*Block
	Norm       *LayerNorm // nil in fine-tuned checkpoints
	FCNorm     *LayerNorm // fine-tuned checkpoints only (global pool)
	Head       *Linear    // fine-tuned checkpoints only
}

// Decoder is the MAE decoder that predicts the pixels of masked patches.
type Decoder struct {
	nn.Module
	Embed     *Linear
	MaskToken *nn.Param // [Dd]
	PosEmbed  *nn.Param // [1+L, Dd]
	Blocks    []*Block
	Norm      *LayerNorm
	Pred      *Linear
}

// Model is a MAE: an encoder and, when the weights have one, a decoder.
type Model struct {
	nn.Module
	Config  Config
	Encoder *Encoder
	Decoder *Decoder // nil when the checkpoint has no decoder
	// Fingerprint identifies the loaded weights (weights.Checkpoint.
	// Fingerprint); empty for a model not read by Load.
	Fingerprint string

	ws workspace
}

// param wraps data without copying it: spago's NewParam clones, and a ViT-B
// checkpoint must not be held twice.
func param(data []float32, shape ...int) *nn.Param {
	p := &nn.Param{Matrix: mat.NewDense[float32](mat.WithShape(shape...), mat.WithBacking(data))}
	p.SetRequiresGrad(false)
	return p
}

func paramData(p *nn.Param) []float32 { return mat.Data[float32](p.Matrix) }

// tensorSet hands out checkpoint tensors by name, checking shapes, and
// remembers what was taken so leftovers can be reported.
type tensorSet struct {
	t     map[string]*weights.Tensor
	taken map[string]bool
	errs  []string
	// check: the tensors are a header's (Data nil): take checks names and
	// shapes only and hands out nothing, so nothing is built.
	check bool

	sinceGC int // bytes packed since the last collection
}

func (s *tensorSet) has(name string) bool { _, ok := s.t[name]; return ok }

// take returns the tensor's data if its element count and trailing shape
// match; leading 1-sized dimensions (cls_token [1,1,D]) are ignored.
func (s *tensorSet) take(name string, shape ...int) []float32 {
	t, ok := s.t[name]
	if !ok {
		s.errs = append(s.errs, fmt.Sprintf("missing tensor %s %v", name, shape))
		return nil
	}
	s.taken[name] = true
	got := slices.Clone(t.Shape)
	for len(got) > len(shape) && got[0] == 1 {
		got = got[1:]
	}
	if !slices.Equal(got, shape) {
		// Say what is wanted with the leading 1-sized dimensions the
		// checkpoint has ([1 1 D] wants [1 1 D'], not [D']).
		want := append(slices.Clone(t.Shape[:len(t.Shape)-len(got)]), shape...)
		s.errs = append(s.errs, fmt.Sprintf("tensor %s has shape %v, want %v", name, t.Shape, want))
		return nil
	}
	if s.check {
		return nil
	}
	if n := numel(shape); len(t.Data) != n {
		s.errs = append(s.errs, fmt.Sprintf("tensor %s holds %d values, shape %v needs %d", name, len(t.Data), t.Shape, n))
		return nil
	}
	return t.Data
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// param takes a tensor as a parameter (nil, with the error recorded, when
// it is missing or mis-shaped).
func (s *tensorSet) param(name string, shape ...int) *nn.Param {
	if v := s.take(name, shape...); v != nil {
		return param(v, shape...)
	}
	return nil
}

func (s *tensorSet) linear(prefix string, in, out int) *Linear {
	w := s.take(prefix+".weight", out, in)
	b := s.take(prefix+".bias", out)
	if w == nil || b == nil {
		return nil
	}
	return s.packed(prefix+".weight", w, b, in, out)
}

// packed builds a Linear holding only the packed weight and drops the
// checkpoint's copy, so that at most one tensor is held twice while loading.
func (s *tensorSet) packed(name string, w, b []float32, in, out int) *Linear {
	if len(s.errs) > 0 {
		return &Linear{B: param(b, out), In: in, Out: out} // will fail anyway; skip the work
	}
	l := &Linear{B: param(b, out), In: in, Out: out, packed: kernels.PackLinear(w, out, in)}
	delete(s.t, name)
	// Collect now and then so the dropped checkpoint tensors are reused for
	// the next packed ones: with the default GOGC the heap would otherwise
	// grow to twice the weights before the first collection.
	if s.sinceGC += len(w) * 4; s.sinceGC > 64<<20 {
		runtime.GC()
		s.sinceGC = 0
	}
	return l
}

func (s *tensorSet) norm(prefix string, d int, eps float64) *LayerNorm {
	w := s.take(prefix+".weight", d)
	b := s.take(prefix+".bias", d)
	if w == nil || b == nil {
		return nil
	}
	return &LayerNorm{W: param(w, d), B: param(b, d), Eps: float32(eps)}
}

func (s *tensorSet) block(prefix string, d, mlp, heads int, eps float64) *Block {
	return &Block{
		Norm1: s.norm(prefix+".norm1", d, eps),
		QKV:   s.linear(prefix+".attn.qkv", d, 3*d),
		Proj:  s.linear(prefix+".attn.proj", d, d),
		Norm2: s.norm(prefix+".norm2", d, eps),
		FC1:   s.linear(prefix+".mlp.fc1", d, mlp),
		FC2:   s.linear(prefix+".mlp.fc2", mlp, d),
		Heads: heads,
	}
}

// FromTensors builds a model from tensors in the reference naming. It is
// strict: a missing, unexpected or mis-shaped tensor is an error naming it.
// A checkpoint without any decoder tensor gives a model without decoder.
// It takes ownership of the tensors: small ones are kept without copying,
// Linear weights are packed and their entries removed from the map, so the
// weights are never held twice.
func FromTensors(cfg Config, tensors map[string]*weights.Tensor, src string) (*Model, error) {
	m, _, err := fromTensors(cfg, tensors, src, false)
	return m, err
}

// parts says which optional parts a checkpoint has, as FromTensors builds
// them.
type parts struct{ decoder, fcNorm, norm bool }

// fromTensors is FromTensors; with check, tensors are a header's (Data
// nil) and it makes every check FromTensors makes, with the same errors,
// but builds nothing: it returns a nil model and the parts it would have.
func fromTensors(cfg Config, tensors map[string]*weights.Tensor, src string, check bool) (*Model, parts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, parts{}, fmt.Errorf("%s: config: %w", src, err)
	}
	s := &tensorSet{t: tensors, taken: map[string]bool{}, check: check}
	// built reports whether the part just taken with s.norm, s.linear...
	// (got, nil in check mode) is there, as a build would have it: taken
	// without a new error.
	built := func(got bool, errsBefore int) bool { return got || check && len(s.errs) == errsBefore }
	var has parts
	// The config's block counts come from an untrusted config.json: build
	// no more blocks than the checkpoint has (distinct indices, so one
	// tensor named blocks.999999999.* does not count for a billion), so
	// num_hidden_layers 1e9 is one error, not a billion blocks with a
	// "missing tensor" message each.
	depth, decDepth := cfg.Depth, cfg.DecDepth
	if _, n := blockIndices(tensors, "blocks."); depth > n {
		s.errs = append(s.errs, fmt.Sprintf("config has %d encoder blocks (num_hidden_layers), the checkpoint %d", depth, n))
		depth = n
	}
	if _, n := blockIndices(tensors, "decoder_blocks."); decDepth > n && hasDecoder(tensors) {
		s.errs = append(s.errs, fmt.Sprintf("config has %d decoder blocks (decoder_num_hidden_layers), the checkpoint %d", decDepth, n))
		decDepth = n
	}
	d, p, l := cfg.Dim, cfg.PatchSize, cfg.NumPatches()
	enc := &Encoder{}
	n := len(s.errs)
	// Both are taken before either is checked, as s.linear does: a
	// mis-shaped weight must not leave its bias to be reported as an
	// "unexpected tensor".
	w := s.take("patch_embed.proj.weight", d, 3, p, p)
	b := s.take("patch_embed.proj.bias", d)
	if built(w != nil, n) {
		if b != nil {
			re := make([]float32, len(w))
			convLayout(re, w, d, p, true)
			enc.PatchEmbed = s.packed("patch_embed.proj.weight", re, b, p*p*3, d)
		}
	}
	enc.ClsToken = s.param("cls_token", d)
	enc.PosEmbed = s.param("pos_embed", 1+l, d)
	for i := 0; i < depth; i++ {
		enc.Blocks = append(enc.Blocks, s.block("blocks."+strconv.Itoa(i), d, cfg.MLPDim, cfg.Heads, cfg.Eps))
	}
	if s.has("fc_norm.weight") {
		n := len(s.errs)
		enc.FCNorm = s.norm("fc_norm", d, cfg.Eps)
		has.fcNorm = built(enc.FCNorm != nil, n)
		if s.has("head.weight") {
			nc := 0
			if t := tensors["head.bias"]; t != nil && len(t.Shape) == 1 {
				nc = t.Shape[0]
			}
			enc.Head = s.linear("head", d, nc)
		}
	}
	if s.has("norm.weight") || !has.fcNorm {
		n := len(s.errs)
		enc.Norm = s.norm("norm", d, cfg.Eps)
		has.norm = built(enc.Norm != nil, n)
	}
	var dec *Decoder
	if hasDecoder(tensors) {
		if cfg.DecDim <= 0 || cfg.DecDepth <= 0 {
			s.errs = append(s.errs, "checkpoint has decoder tensors but the config has no decoder")
		} else {
			dd := cfg.DecDim
			has.decoder = true
			dec = &Decoder{Embed: s.linear("decoder_embed", d, dd)}
			dec.MaskToken = s.param("mask_token", dd)
			dec.PosEmbed = s.param("decoder_pos_embed", 1+l, dd)
			for i := 0; i < decDepth; i++ {
				dec.Blocks = append(dec.Blocks, s.block("decoder_blocks."+strconv.Itoa(i), dd, cfg.DecMLPDim, cfg.DecHeads, cfg.Eps))
			}
			dec.Norm = s.norm("decoder_norm", dd, cfg.Eps)
			dec.Pred = s.linear("decoder_pred", dd, cfg.PatchDim())
		}
	}
	var extra []string
	for name := range tensors {
		if !s.taken[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		s.errs = append(s.errs, "unexpected tensor "+name)
	}
	if len(s.errs) > 0 {
		if len(s.errs) > 6 {
			s.errs = append(s.errs[:6], fmt.Sprintf("and %d more", len(s.errs)-6))
		}
		return nil, parts{}, fmt.Errorf("%s: does not match %s: %s", src, cfg.describe(), strings.Join(s.errs, "; "))
	}
	if check {
		return nil, has, nil
	}
	return &Model{Config: cfg, Encoder: enc, Decoder: dec}, has, nil
}

// convLayout moves the patch-embedding weight [d, ...] between the conv
// layout (c, p, q) of checkpoints and the patchify layout (p, q, c) the
// matmul uses: toPatch reads conv and writes patch order, else the reverse.
func convLayout(dst, src []float32, d, p int, toPatch bool) {
	pp := p * p
	for o := 0; o < d; o++ {
		for c := 0; c < 3; c++ {
			for i := 0; i < pp; i++ {
				conv, patch := o*3*pp+c*pp+i, o*pp*3+i*3+c
				if toPatch {
					dst[patch] = src[conv]
				} else {
					dst[conv] = src[patch]
				}
			}
		}
	}
}

func hasDecoder(t map[string]*weights.Tensor) bool {
	for name := range t {
		if strings.HasPrefix(name, "decoder_") || name == "mask_token" {
			return true
		}
	}
	return false
}

func (c Config) describe() string {
	s := fmt.Sprintf("MAE ViT (image %d, patch %d, dim %d, depth %d, heads %d", c.ImageSize, c.PatchSize, c.Dim, c.Depth, c.Heads)
	if c.DecDim > 0 {
		s += fmt.Sprintf("; decoder dim %d, depth %d, heads %d", c.DecDim, c.DecDepth, c.DecHeads)
	}
	return s + ")"
}

// linears lists every Linear of the model.
func (m *Model) linears() []*Linear {
	e := m.Encoder
	out := []*Linear{e.PatchEmbed}
	addBlocks := func(bs []*Block) {
		for _, b := range bs {
			out = append(out, b.QKV, b.Proj, b.FC1, b.FC2)
		}
	}
	addBlocks(e.Blocks)
	if e.Head != nil {
		out = append(out, e.Head)
	}
	if d := m.Decoder; d != nil {
		out = append(out, d.Embed, d.Pred)
		addBlocks(d.Blocks)
	}
	return out
}

// Repack packs again every weight that was materialised with Weight (and
// possibly changed since, e.g. by an optimiser), so inference sees it, in
// the model's precision.
func (m *Model) Repack() {
	for _, l := range m.linears() {
		if l.W != nil {
			l.packed = kernels.PackLinear(paramData(l.W), l.Out, l.In).Convert(l.packed.Precision())
			l.packed.Prepare()
		}
	}
}

// SetPrecision sets the arithmetic of every Linear layer (patch embedding,
// attention projections, MLPs, decoder embedding and prediction, head):
// kernels.FP32 (the default, exact float32), kernels.BF16 (weights and
// activations rounded to bfloat16, float32 accumulation) or kernels.Int8
// (dynamic quantisation: weights per output channel, activations per token,
// int32 accumulation). LayerNorm, softmax, GELU and residuals stay
// float32, and so does attention but for Int8 on the AVX2 int8 kernel,
// where its two products are int8 too (kernels.AttentionIn). Reduced precision is
// one-way: the float32 weights are dropped (a ViT-B must not sit in memory
// twice), so going back to FP32 needs a reload and is an error here.
// Weight then returns the rounded weights.
func (m *Model) SetPrecision(p kernels.Precision) error {
	cur := m.Precision()
	if p == cur {
		m.prepare()
		return nil
	}
	if cur != kernels.FP32 {
		return fmt.Errorf("set precision %v: the model is already %v (reload it for another precision)", p, cur)
	}
	for _, l := range m.linears() {
		l.packed = l.packed.Convert(p)
		l.W = nil // would hold the unrounded weights
	}
	m.prepare()
	return nil
}

// prepare packs ahead what the kernels would pack on the first batch (see
// kernels.Packed.Prepare). It runs once the precision is set, so a model
// loaded for bf16 or int8 never holds float32 extras beside its weights.
func (m *Model) prepare() {
	for _, l := range m.linears() {
		l.packed.Prepare()
	}
}

// Precision is the arithmetic of the model's Linear layers.
func (m *Model) Precision() kernels.Precision { return m.Encoder.PatchEmbed.packed.Precision() }

// Kernel names the kernels the model runs on in its precision
// (kernels.Arithmetic), e.g. "avx512+strassen" or "avx2-int8"; a float32
// model none of whose layers is large enough for Strassen–Winograd (the
// built-in one) gives the path alone.
func (m *Model) Kernel() string {
	if m.Precision() == kernels.FP32 {
		for _, l := range m.linears() {
			if l.packed.Strassen() {
				return kernels.Arithmetic(kernels.FP32)
			}
		}
		return kernels.Path()
	}
	return kernels.Arithmetic(m.Precision())
}

// HasDecoder tells whether the model can reconstruct.
func (m *Model) HasDecoder() bool { return m.Decoder != nil }

// NumParams counts the parameters (without unpacking any weight).
func (m *Model) NumParams() int {
	c := m.Config
	l := c.NumPatches()
	n := (2 + l) * c.Dim // cls token, pos embed
	for _, lin := range m.linears() {
		n += lin.In*lin.Out + lin.Out
	}
	norms := []*LayerNorm{m.Encoder.Norm, m.Encoder.FCNorm}
	for _, b := range m.Encoder.Blocks {
		norms = append(norms, b.Norm1, b.Norm2)
	}
	if d := m.Decoder; d != nil {
		n += (2 + l) * c.DecDim // mask token, decoder pos embed
		norms = append(norms, d.Norm)
		for _, b := range d.Blocks {
			norms = append(norms, b.Norm1, b.Norm2)
		}
	}
	for _, ln := range norms {
		if ln != nil {
			n += 2 * len(paramData(ln.W))
		}
	}
	return n
}
