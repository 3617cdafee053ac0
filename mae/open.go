package mae

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/maeembed/maeembed/mae/builtin"
	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/mae/weights"
)

// decoderCheckpoint maps an architecture preset to the official checkpoint
// that carries a decoder, for reconstruction.
var decoderCheckpoint = map[string]string{
	"mae_vit_base_patch16":  "mae_visualize_vit_base",
	"mae_vit_large_patch16": "mae_visualize_vit_large",
}

// Source names a model: Name is "builtin" (the built-in model), a preset name, a checkpoint file or a
// Hugging Face directory. The YAML keys are those of the commands' flags.
type Source struct {
	Name   string `yaml:"model"`
	Config string `yaml:"config"` // HF-style config.json for a bare weights file
	// CacheDir is where presets are downloaded (default $MAEEMBED_CACHE or
	// the user cache dir); $MAEEMBED_HUB_URL names a mirror of the
	// official download site.
	CacheDir string `yaml:"cache_dir"`
	// NeedDecoder picks, for an architecture preset, the official
	// checkpoint that carries a decoder, and refuses one without.
	NeedDecoder bool `yaml:"-"`
	// Precision is the arithmetic of the Linear layers (Model.SetPrecision);
	// the zero value is kernels.FP32.
	Precision kernels.Precision `yaml:"-"`
}

// Resolve turns s.Name into a local path: an existing file or directory as
// it is, else a preset downloaded (once, checked) into the cache.
func Resolve(ctx context.Context, s Source) (string, error) {
	name := s.Name
	if name == builtin.Name {
		slog.Info("model: "+builtin.Description+"; for the paper's ViT-B pass --model mae_vit_base_patch16", "model", name)
		return builtin.Dir(s.CacheDir)
	}
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	if strings.ContainsAny(name, `/\`) || strings.HasSuffix(name, ".pth") || strings.HasSuffix(name, ".safetensors") {
		return "", fmt.Errorf("model %s: no such file or directory", name)
	}
	if s.NeedDecoder {
		if alt, ok := decoderCheckpoint[name]; ok {
			slog.Info("reconstruct needs a decoder: using the official visualize checkpoint", "preset", name, "checkpoint", alt)
			name = alt
		} else if name == "mae_vit_huge_patch14" {
			return "", fmt.Errorf("model %s: no official checkpoint with a decoder exists for ViT-H; pass --model with your own weights", name)
		}
	}
	if _, ok := weights.PresetFile(name); !ok {
		return "", fmt.Errorf("model %q: no such file or directory, and not %s (the built-in model) nor a preset (presets: %s)",
			name, builtin.Name, strings.Join(weights.Presets(), ", "))
	}
	hub := weights.NewHub(s.CacheDir)
	if u := os.Getenv("MAEEMBED_HUB_URL"); u != "" {
		hub.BaseURL = u // a mirror of the official download site
	}
	return hub.Resolve(ctx, name)
}

// Open resolves and loads the model s names.
func Open(ctx context.Context, s Source) (*Model, error) {
	path, err := Resolve(ctx, s)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := Load(path, s.Config)
	if err != nil {
		return nil, err
	}
	if s.NeedDecoder && !m.HasDecoder() {
		return nil, fmt.Errorf("model %s has no decoder weights: reconstruct needs a checkpoint with a decoder (e.g. mae_visualize_vit_base)", path)
	}
	if err := m.SetPrecision(s.Precision); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	slog.Info("model loaded", "path", path, "params", m.NumParams(), "decoder", m.HasDecoder(),
		"image", m.Config.ImageSize, "patch", m.Config.PatchSize, "dim", m.Config.Dim, "precision", s.Precision, "kernel", m.Kernel(), "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}
