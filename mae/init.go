package mae

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/maeembed/maeembed/mae/weights"
)

// New makes a freshly initialised model the way the reference does
// (initialize_weights): xavier-uniform Linear and patch-embedding weights,
// zero biases, unit LayerNorms, N(0, 0.02) cls and mask tokens, fixed sin-cos
// position embeddings. withDecoder adds the decoder.
func New(cfg Config, withDecoder bool, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	r := rand.New(rand.NewPCG(seed, 0x4d4145))
	t := map[string]*weights.Tensor{}
	xavier := func(out, in int) []float32 {
		a := math.Sqrt(6 / float64(in+out))
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32((2*r.Float64() - 1) * a)
		}
		return w
	}
	normal := func(n int, std float64) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(r.NormFloat64() * std)
		}
		return w
	}
	fill := func(n int, v float32) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = v
		}
		return w
	}
	layout(cfg, parts{norm: true, decoder: withDecoder}, func(name string, init tensorInit, shape ...int) {
		var data []float32
		switch init {
		case initXavier:
			data = xavier(shape[0], numel(shape[1:]))
		case initZero:
			data = fill(numel(shape), 0)
		case initOne:
			data = fill(numel(shape), 1)
		case initToken:
			data = normal(numel(shape), 0.02)
		case initPos:
			data = SinCosPosEmbed(shape[len(shape)-1], cfg.Grid())
		}
		t[name] = &weights.Tensor{Shape: shape, Data: data}
	})
	return FromTensors(cfg, t, "new model")
}

// tensorInit is how New initialises a tensor of the layout.
type tensorInit int

const (
	initXavier tensorInit = iota // Linear and patch-embedding weights: xavier-uniform over [out, in...]
	initZero                     // biases
	initOne                      // LayerNorm weights
	initToken                    // the cls and mask tokens: N(0, 0.02)
	initPos                      // the position embeddings: fixed sin-cos
)

// layout calls put for each tensor of a checkpoint of architecture cfg in
// the reference naming, with parts p (the encoder norm; fc_norm and the
// head of the 1000 ImageNet-1k classes, as the official fine-tuned files
// hold them; the decoder): its name, how New initialises it and its
// shape, in a fixed order (New's random draws follow it). New builds a
// model from it, and a dry run the tensor headers a model not on this
// machine yet is known to hold (knownTensors).
func layout(cfg Config, p parts, put func(name string, init tensorInit, shape ...int)) {
	lin := func(name string, in, out int) {
		put(name+".weight", initXavier, out, in)
		put(name+".bias", initZero, out)
	}
	norm := func(name string, d int) {
		put(name+".weight", initOne, d)
		put(name+".bias", initZero, d)
	}
	block := func(prefix string, d, mlp int) {
		norm(prefix+".norm1", d)
		lin(prefix+".attn.qkv", d, 3*d)
		lin(prefix+".attn.proj", d, d)
		norm(prefix+".norm2", d)
		lin(prefix+".mlp.fc1", d, mlp)
		lin(prefix+".mlp.fc2", mlp, d)
	}
	d, ps, l := cfg.Dim, cfg.PatchSize, cfg.NumPatches()
	put("patch_embed.proj.weight", initXavier, d, 3, ps, ps)
	put("patch_embed.proj.bias", initZero, d)
	put("cls_token", initToken, 1, 1, d)
	put("pos_embed", initPos, 1, 1+l, d)
	for i := 0; i < cfg.Depth; i++ {
		block("blocks."+strconv.Itoa(i), d, cfg.MLPDim)
	}
	if p.norm {
		norm("norm", d)
	}
	if p.fcNorm {
		norm("fc_norm", d)
		lin("head", d, 1000)
	}
	if p.decoder {
		dd := cfg.DecDim
		lin("decoder_embed", d, dd)
		put("mask_token", initToken, 1, 1, dd)
		put("decoder_pos_embed", initPos, 1, 1+l, dd)
		for i := 0; i < cfg.DecDepth; i++ {
			block("decoder_blocks."+strconv.Itoa(i), dd, cfg.DecMLPDim)
		}
		norm("decoder_norm", dd)
		lin("decoder_pred", dd, cfg.PatchDim())
	}
}
