package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/builtin"
	"github.com/maeembed/maeembed/mae/weights"
)

// decoderCheckpoint maps an architecture preset to the official checkpoint
// that carries a decoder, for reconstruct.
var decoderCheckpoint = map[string]string{
	"mae_vit_base_patch16":  "mae_visualize_vit_base",
	"mae_vit_large_patch16": "mae_visualize_vit_large",
}

// resolveModel turns --model into a local path: an existing file or
// directory as it is, else a preset downloaded into the cache.
func (e *env) resolveModel(o *Options, needDecoder bool) (string, error) {
	name := o.Model
	if name == builtin.Name {
		slog.Info("model: "+builtin.Description+"; for the paper's ViT-B pass --model mae_vit_base_patch16", "model", name)
		return builtin.Dir(o.CacheDir)
	}
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	if strings.ContainsAny(name, `/\`) || strings.HasSuffix(name, ".pth") || strings.HasSuffix(name, ".safetensors") {
		return "", fmt.Errorf("model %s: no such file or directory", name)
	}
	if needDecoder {
		if alt, ok := decoderCheckpoint[name]; ok {
			slog.Info("reconstruct needs a decoder: using the official visualize checkpoint", "preset", name, "checkpoint", alt)
			name = alt
		} else if name == "mae_vit_huge_patch14" {
			return "", fmt.Errorf("model %s: no official checkpoint with a decoder exists for ViT-H; pass --model with your own weights", name)
		}
	}
	hub := weights.NewHub(o.CacheDir)
	if u := os.Getenv("MAEEMBED_HUB_URL"); u != "" {
		hub.BaseURL = u // a mirror of the official download site
	}
	return hub.Resolve(e.ctx, name)
}

// openModel resolves and loads the model of a run.
func (e *env) openModel(o *Options, needDecoder bool) (*mae.Model, error) {
	path, err := e.resolveModel(o, needDecoder)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := mae.Load(path, o.Config)
	if err != nil {
		return nil, err
	}
	if needDecoder && !m.HasDecoder() {
		return nil, fmt.Errorf("model %s has no decoder weights: reconstruct needs a checkpoint with a decoder (e.g. mae_visualize_vit_base)", path)
	}
	setMemoryLimit()
	slog.Info("model loaded", "path", path, "params", m.NumParams(), "decoder", m.HasDecoder(),
		"image", m.Config.ImageSize, "patch", m.Config.PatchSize, "dim", m.Config.Dim, "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// setMemoryLimit gives the garbage collector a soft limit of what is live
// after loading (mostly the weights) plus room for a run's buffers, unless
// GOMEMLIMIT is set. Without it the heap may grow to twice the weights
// before a collection (GOGC=100): a ViT-B run would peak near 1 GB instead
// of ~0.7 GB. A soft limit never fails an allocation; past it the collector
// just runs more often.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + 384<<20)
}
