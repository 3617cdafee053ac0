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
	case c.MaskRatio < 0 || c.MaskRatio >= 1:
		return fmt.Errorf("mask ratio %v outside [0, 1)", c.MaskRatio)
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
