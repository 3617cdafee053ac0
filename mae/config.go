// Package mae is the Masked Autoencoder ViT of He et al. (2021), built on
// spago parameters and the project's own kernels, numerically faithful to
// the reference implementation (models_mae.py).
package mae

import (
	"fmt"
	"math"

	"github.com/maeembed/maeembed/mae/weights"
)

// Config is the architecture of an MAE model.
type Config struct {
	Name        string  `json:"name,omitempty"`
	ImageSize   int     `json:"image_size"`
	PatchSize   int     `json:"patch_size"`
	Channels    int     `json:"num_channels"`
	Dim         int     `json:"hidden_size"`
	Depth       int     `json:"num_hidden_layers"`
	Heads       int     `json:"num_attention_heads"`
	MLPDim      int     `json:"intermediate_size"`
	DecDim      int     `json:"decoder_hidden_size"`
	DecDepth    int     `json:"decoder_num_hidden_layers"`
	DecHeads    int     `json:"decoder_num_attention_heads"`
	DecMLPDim   int     `json:"decoder_intermediate_size"`
	Eps         float64 `json:"layer_norm_eps"`
	NormPixLoss bool    `json:"norm_pix_loss"`
	MaskRatio   float64 `json:"mask_ratio"`
}

// Presets are the three architectures of the reference code, by its names.
var Presets = map[string]Config{
	"mae_vit_base_patch16":  preset("mae_vit_base_patch16", 16, 768, 12, 12),
	"mae_vit_large_patch16": preset("mae_vit_large_patch16", 16, 1024, 24, 16),
	"mae_vit_huge_patch14":  preset("mae_vit_huge_patch14", 14, 1280, 32, 16),
}

func preset(name string, patch, dim, depth, heads int) Config {
	return Config{
		Name: name, ImageSize: 224, PatchSize: patch, Channels: 3,
		Dim: dim, Depth: depth, Heads: heads, MLPDim: 4 * dim,
		DecDim: 512, DecDepth: 8, DecHeads: 16, DecMLPDim: 2048,
		Eps: 1e-6, MaskRatio: 0.75,
	}
}

// Grid is the number of patches per side.
func (c Config) Grid() int { return c.ImageSize / c.PatchSize }

// NumPatches is L, the number of patches of an image.
func (c Config) NumPatches() int { g := c.Grid(); return g * g }

// PatchDim is p·p·3, the length of a patchified patch.
func (c Config) PatchDim() int { return c.PatchSize * c.PatchSize * c.Channels }

// NumKeep is the number of patches the encoder sees at a mask ratio,
// int(L·(1−ratio)) computed in float64 as Python does.
func (c Config) NumKeep(ratio float64) int { return int(float64(c.NumPatches()) * (1 - ratio)) }

// CheckMaskRatio checks a mask ratio alone: it must be in [0, 1) (NaN is
// not). Config.CheckMaskRatio also checks that the model keeps a patch.
func CheckMaskRatio(ratio float64) error {
	if !(ratio >= 0 && ratio < 1) {
		return fmt.Errorf("mask ratio %v: must be in [0, 1)", ratio)
	}
	return nil
}

// CheckMaskRatio checks ratio for this model: in [0, 1), and leaving the
// encoder at least one of the L patches (NumKeep >= 1), without which
// every image would fail.
func (c Config) CheckMaskRatio(ratio float64) error {
	if err := CheckMaskRatio(ratio); err != nil {
		return err
	}
	if l := c.NumPatches(); c.NumKeep(ratio) < 1 {
		return fmt.Errorf("mask ratio %v keeps none of the model's %d patches (int(%d·(1−ratio)) = 0; the largest ratio that keeps one is 1−1/%d ≈ %.4f)", ratio, l, l, l, math.Floor((1-1/float64(l))*1e4)/1e4)
	}
	return nil
}

// EmbedDim is the length of one image's embedding for a pool: D, or
// (1+L)·D for PoolTokens.
func (c Config) EmbedDim(p Pool) int {
	if p == PoolTokens {
		return (1 + c.NumPatches()) * c.Dim
	}
	return c.Dim
}

// BatchBytes estimates the bytes of the float32 tensors a batch of n
// images holds in a forward pass: the images [n,3,S,S] twice (the CHW
// inputs and their patchified copy) and the activation buffers of the
// encoder over all 1+L tokens (x, norm, qkv, attention and MLP hidden:
// n·(1+L)·(6·D + MLPDim), plus the position-embedded patches n·L·D); with
// decoder, the decoder's buffers over 1+L tokens (which share the
// encoder's, so the larger of the two counts) and its embedding and
// prediction. Attention scores are computed in tiles and not counted.
func (c Config) BatchBytes(n int, decoder bool) int64 {
	n64, l := int64(n), int64(c.NumPatches())
	t := 1 + l
	floats := 2 * n64 * int64(c.Channels*c.ImageSize*c.ImageSize)
	shared := n64 * t * int64(6*c.Dim+c.MLPDim)
	floats += n64 * l * int64(c.Dim)
	if decoder {
		shared = max(shared, n64*t*int64(6*c.DecDim+c.DecMLPDim))
		floats += n64 * t * int64(c.DecDim+c.PatchDim())
	}
	return 4 * (floats + shared)
}

// Validate checks that the numbers fit together.
func (c Config) Validate() error {
	switch {
	case c.ImageSize <= 0 || c.PatchSize <= 0 || c.ImageSize%c.PatchSize != 0:
		return fmt.Errorf("image size %d is not a positive multiple of patch size %d", c.ImageSize, c.PatchSize)
	case c.Channels != 3:
		return fmt.Errorf("num_channels %d: only RGB (3) is supported", c.Channels)
	case c.Dim <= 0 || c.Heads <= 0 || c.Dim%c.Heads != 0:
		return fmt.Errorf("hidden size %d is not divisible by %d heads", c.Dim, c.Heads)
	case c.Dim%4 != 0:
		return fmt.Errorf("hidden size %d: the 2-D sin-cos position embedding needs a multiple of 4", c.Dim)
	case c.Depth <= 0 || c.MLPDim <= 0:
		return fmt.Errorf("depth %d and intermediate size %d must be positive", c.Depth, c.MLPDim)
	case c.DecDim > 0 && (c.DecHeads <= 0 || c.DecDim%c.DecHeads != 0 || c.DecDim%4 != 0):
		return fmt.Errorf("decoder hidden size %d does not fit %d heads (or is not a multiple of 4)", c.DecDim, c.DecHeads)
	case c.Eps <= 0 || math.IsNaN(c.Eps):
		return fmt.Errorf("layer_norm_eps %v must be positive", c.Eps)
	case CheckMaskRatio(c.MaskRatio) != nil:
		return fmt.Errorf("config mask_ratio: %w", CheckMaskRatio(c.MaskRatio))
	}
	return nil
}

// FromHF converts a Hugging Face ViTMAE config.
func FromHF(h *weights.HFConfig) Config {
	c := Config{
		ImageSize: h.ImageSize, PatchSize: h.PatchSize, Channels: h.NumChannels,
		Dim: h.HiddenSize, Depth: h.NumHiddenLayers, Heads: h.NumAttentionHeads, MLPDim: h.IntermediateSize,
		DecDim: h.DecoderHiddenSize, DecDepth: h.DecoderNumHiddenLayers, DecHeads: h.DecoderNumAttentionHeads,
		DecMLPDim: h.DecoderIntermediateSize, Eps: h.LayerNormEps, NormPixLoss: h.NormPixLoss, MaskRatio: h.MaskRatio,
	}
	if c.Channels == 0 {
		c.Channels = 3
	}
	if c.Eps == 0 {
		c.Eps = 1e-12 // the transformers default
	}
	if c.MaskRatio == 0 {
		c.MaskRatio = 0.75
	}
	return c
}

// HF converts the config to the Hugging Face ViTMAE form.
func (c Config) HF() *weights.HFConfig {
	return &weights.HFConfig{
		ImageSize: c.ImageSize, PatchSize: c.PatchSize, NumChannels: c.Channels,
		HiddenSize: c.Dim, NumHiddenLayers: c.Depth, NumAttentionHeads: c.Heads, IntermediateSize: c.MLPDim,
		DecoderHiddenSize: c.DecDim, DecoderNumHiddenLayers: c.DecDepth, DecoderNumAttentionHeads: c.DecHeads,
		DecoderIntermediateSize: c.DecMLPDim, LayerNormEps: c.Eps, NormPixLoss: c.NormPixLoss, MaskRatio: c.MaskRatio,
	}
}
