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
	put := func(name string, data []float32, shape ...int) { t[name] = &weights.Tensor{Shape: shape, Data: data} }
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
	lin := func(name string, in, out int) {
		put(name+".weight", xavier(out, in), out, in)
		put(name+".bias", fill(out, 0), out)
	}
	norm := func(name string, d int) {
		put(name+".weight", fill(d, 1), d)
		put(name+".bias", fill(d, 0), d)
	}
	block := func(prefix string, d, mlp int) {
		norm(prefix+".norm1", d)
		lin(prefix+".attn.qkv", d, 3*d)
		lin(prefix+".attn.proj", d, d)
		norm(prefix+".norm2", d)
		lin(prefix+".mlp.fc1", d, mlp)
		lin(prefix+".mlp.fc2", mlp, d)
	}
	d, p, g := cfg.Dim, cfg.PatchSize, cfg.Grid()
	put("patch_embed.proj.weight", xavier(d, 3*p*p), d, 3, p, p)
	put("patch_embed.proj.bias", fill(d, 0), d)
	put("cls_token", normal(d, 0.02), 1, 1, d)
	put("pos_embed", SinCosPosEmbed(d, g), 1, 1+g*g, d)
	for i := 0; i < cfg.Depth; i++ {
		block("blocks."+strconv.Itoa(i), d, cfg.MLPDim)
	}
	norm("norm", d)
	if withDecoder {
		dd := cfg.DecDim
		lin("decoder_embed", d, dd)
		put("mask_token", normal(dd, 0.02), 1, 1, dd)
		put("decoder_pos_embed", SinCosPosEmbed(dd, g), 1, 1+g*g, dd)
		for i := 0; i < cfg.DecDepth; i++ {
			block("decoder_blocks."+strconv.Itoa(i), dd, cfg.DecMLPDim)
		}
		norm("decoder_norm", dd)
		lin("decoder_pred", dd, cfg.PatchDim())
	}
	return FromTensors(cfg, t, "new model")
}
