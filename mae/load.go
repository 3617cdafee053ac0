package mae

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/mae/weights"
	"github.com/nlpodyssey/spago/nn"
)

// Load reads a checkpoint (official .pth, .safetensors, .bin, or a Hugging
// Face directory) and builds the model. configPath, when not empty, is an
// HF-style config.json that overrides what the checkpoint says; otherwise
// the config comes from the HF directory or is inferred from tensor shapes.
func Load(path, configPath string) (*Model, error) {
	ck, err := weights.Load(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFor(ck, configPath)
	if err != nil {
		return nil, err
	}
	fp := ck.Fingerprint() // before FromTensors takes the tensors over
	m, err := FromTensors(cfg, ck.Tensors, path)
	if err != nil {
		return nil, err
	}
	m.Fingerprint = fp
	return m, nil
}

// ConfigFor picks the config of a loaded checkpoint: configPath (an HF-style
// config.json) when given, else the checkpoint's own config.json, else what
// the tensor shapes say.
func ConfigFor(ck *weights.Checkpoint, configPath string) (Config, error) {
	switch {
	case configPath != "":
		h, err := weights.ReadHFConfig(configPath)
		if err != nil {
			return Config{}, err
		}
		return FromHF(h), nil
	case ck.HF != nil:
		return FromHF(ck.HF), nil
	}
	cfg, err := InferConfig(ck.Tensors)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", ck.Path, err)
	}
	return cfg, nil
}

// InferConfig reads the architecture off the tensor shapes of a checkpoint in
// the reference naming. Head counts are not in the shapes: they come from the
// matching preset, else head_dim 64 (encoder) and 32 (decoder) is assumed,
// with a warning, and a config.json should be given.
func InferConfig(t map[string]*weights.Tensor) (Config, error) {
	shape := func(name string) []int {
		if x, ok := t[name]; ok {
			s := x.Shape
			for len(s) > 1 && s[0] == 1 {
				s = s[1:]
			}
			return s
		}
		return nil
	}
	pw := shape("patch_embed.proj.weight")
	if len(pw) != 4 || pw[1] != 3 || pw[2] != pw[3] {
		return Config{}, fmt.Errorf("not an MAE ViT checkpoint: patch_embed.proj.weight has shape %v, want [D,3,p,p] (tensors: %s)", pw, someNames(t))
	}
	pos := shape("pos_embed")
	if len(pos) != 2 {
		return Config{}, fmt.Errorf("not an MAE ViT checkpoint: pos_embed has shape %v, want [1,1+L,D]", pos)
	}
	g := int(math.Round(math.Sqrt(float64(pos[0] - 1))))
	if g*g != pos[0]-1 {
		return Config{}, fmt.Errorf("pos_embed has %d patch rows, not a square grid", pos[0]-1)
	}
	c := Config{ImageSize: g * pw[2], PatchSize: pw[2], Channels: 3, Dim: pw[0], Eps: 1e-6, MaskRatio: 0.75}
	c.Depth = countBlocks(t, "blocks.")
	if fc1 := shape("blocks.0.mlp.fc1.weight"); len(fc1) == 2 {
		c.MLPDim = fc1[0]
	}
	if de := shape("decoder_embed.weight"); len(de) == 2 {
		c.DecDim = de[0]
		c.DecDepth = countBlocks(t, "decoder_blocks.")
		if fc1 := shape("decoder_blocks.0.mlp.fc1.weight"); len(fc1) == 2 {
			c.DecMLPDim = fc1[0]
		}
	}
	for _, p := range Presets {
		if p.Dim == c.Dim && p.Depth == c.Depth && p.PatchSize == c.PatchSize {
			c.Name, c.Heads = p.Name, p.Heads
			if c.DecDim == p.DecDim {
				c.DecHeads = p.DecHeads
			}
		}
	}
	if c.Heads == 0 {
		c.Heads = max(1, c.Dim/64)
		slog.Warn("head count not in the checkpoint; assuming head_dim 64: pass --config config.json if that is wrong", "heads", c.Heads)
	}
	if c.DecDim > 0 && c.DecHeads == 0 {
		c.DecHeads = max(1, c.DecDim/32)
		slog.Warn("decoder head count not in the checkpoint; assuming head_dim 32: pass --config config.json if that is wrong", "heads", c.DecHeads)
	}
	return c, nil
}

func countBlocks(t map[string]*weights.Tensor, prefix string) int {
	n, _ := blockIndices(t, prefix)
	return n
}

// blockIndices returns one more than the largest block index under prefix
// and how many distinct indices there are (equal when none is missing).
func blockIndices(t map[string]*weights.Tensor, prefix string) (n, distinct int) {
	seen := map[int]bool{}
	for name := range t {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if i := strings.IndexByte(rest, '.'); i > 0 {
				if k, err := strconv.Atoi(rest[:i]); err == nil && k >= 0 {
					seen[k] = true
					n = max(n, k+1)
				}
			}
		}
	}
	return n, len(seen)
}

func someNames(t map[string]*weights.Tensor) string {
	var names []string
	for n := range t {
		names = append(names, n)
		if len(names) == 5 {
			break
		}
	}
	return strings.Join(names, ", ")
}

// Tensors returns the model's weights in the reference naming, sharing the
// model's memory (Linear weights are unpacked on first use, the patch
// embedding is reordered back to the conv layout).
func (m *Model) Tensors() map[string]*weights.Tensor {
	c := m.Config
	out := map[string]*weights.Tensor{}
	put := func(name string, data []float32, shape ...int) { out[name] = &weights.Tensor{Shape: shape, Data: data} }
	add := func(name string, p *nn.Param, shape ...int) { put(name, paramData(p), shape...) }
	lin := func(name string, l *Linear) { linearParams(name, l, add) }
	norm := func(name string, n *LayerNorm) { normParams(name, n, add) }
	blocks := func(prefix string, bs []*Block) { blockParams(prefix, bs, add) }
	e := m.Encoder
	d, p, l := c.Dim, c.PatchSize, c.NumPatches()
	w := paramData(e.PatchEmbed.Weight())
	conv := make([]float32, len(w))
	convLayout(conv, w, d, p, false)
	put("patch_embed.proj.weight", conv, d, 3, p, p)
	put("patch_embed.proj.bias", paramData(e.PatchEmbed.B), d)
	put("cls_token", paramData(e.ClsToken), 1, 1, d)
	put("pos_embed", paramData(e.PosEmbed), 1, 1+l, d)
	blocks("blocks.", e.Blocks)
	if e.Norm != nil {
		norm("norm", e.Norm)
	}
	if e.FCNorm != nil {
		norm("fc_norm", e.FCNorm)
	}
	if e.Head != nil {
		lin("head", e.Head)
	}
	if dec := m.Decoder; dec != nil {
		dd := c.DecDim
		lin("decoder_embed", dec.Embed)
		put("mask_token", paramData(dec.MaskToken), 1, 1, dd)
		put("decoder_pos_embed", paramData(dec.PosEmbed), 1, 1+l, dd)
		blocks("decoder_blocks.", dec.Blocks)
		norm("decoder_norm", dec.Norm)
		lin("decoder_pred", dec.Pred)
	}
	return out
}

// linearParams, normParams and blockParams name the parameters of a layer
// as the reference's state_dict does, in its order (Linear weights are
// unpacked on first use).
func linearParams(name string, l *Linear, add func(string, *nn.Param, ...int)) {
	add(name+".weight", l.Weight(), l.Out, l.In)
	add(name+".bias", l.B, l.Out)
}

func normParams(name string, n *LayerNorm, add func(string, *nn.Param, ...int)) {
	d := len(paramData(n.W))
	add(name+".weight", n.W, d)
	add(name+".bias", n.B, d)
}

func blockParams(prefix string, bs []*Block, add func(string, *nn.Param, ...int)) {
	for i, b := range bs {
		p := prefix + strconv.Itoa(i)
		normParams(p+".norm1", b.Norm1, add)
		linearParams(p+".attn.qkv", b.QKV, add)
		linearParams(p+".attn.proj", b.Proj, add)
		normParams(p+".norm2", b.Norm2, add)
		linearParams(p+".mlp.fc1", b.FC1, add)
		linearParams(p+".mlp.fc2", b.FC2, add)
	}
}
