package mae

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/maeembed/maeembed/config"
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
	Name   string `yaml:"model" config:"path"`
	Config string `yaml:"config" config:"path"` // HF-style config.json for a bare weights file
	// CacheDir is where presets are downloaded and the built-in model is
	// unpacked (default $MAEEMBED_CACHE or the user cache dir);
	// $MAEEMBED_HUB_URL names a mirror of the official download site.
	CacheDir string `yaml:"cache_dir" config:"path"`
	// NeedDecoder picks, for an architecture preset, the official
	// checkpoint that carries a decoder, and refuses one without.
	NeedDecoder bool `yaml:"-"`
	// Precision is the arithmetic of the Linear layers (Model.SetPrecision);
	// the zero value is kernels.FP32.
	Precision kernels.Precision `yaml:"-"`
}

// Resolve turns s.Name into a local path: an existing file or directory as
// it is, else a preset downloaded (once, checked) into the cache. A name
// that is neither a path nor builtin nor a preset is a usage error
// (config.ErrUsage); a missing path is not. A name that does not exist is
// taken for a path when it holds a "/" or "\" or ends in a checkpoint's
// extension (IsModelPath).
func Resolve(ctx context.Context, s Source) (string, error) {
	path, _, err := locate(ctx, s, true)
	return path, err
}

// IsModelPath reports whether a --model value that names nothing on
// disk was meant as a path (missing: the run fails, exit status 1) rather
// than as a name (builtin or a preset; another is a usage error): it
// holds a "/" or "\", or ends in a checkpoint's extension (.pth,
// .safetensors, .bin).
func IsModelPath(name string) bool {
	return strings.ContainsAny(name, `/\`) || strings.HasSuffix(name, ".pth") || strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".bin")
}

// Pending is a model that is not on this machine yet: a run would first
// download it (a preset) or unpack it (the built-in model) into the
// cache. A dry run reports it instead of doing it.
type Pending struct {
	// Download is the preset's download; nil for the built-in model.
	Download *weights.Download
	Path     string // where the run would put it
	Size     int64  // its bytes, -1 when unknown
}

var builtinNote sync.Once

// locate is Resolve; without fetch it downloads and writes nothing, and
// returns a model not yet in the cache as Pending (with the path it
// would have).
func locate(ctx context.Context, s Source, fetch bool) (string, *Pending, error) {
	name := s.Name
	if name == builtin.Name {
		// A command may check the model before it loads it (stream
		// does): one line says what the built-in model is.
		builtinNote.Do(func() {
			slog.Info("model: "+builtin.Description+"; for the paper's ViT-B pass --model mae_vit_base_patch16", "model", name)
		})
		if fetch {
			dir, err := builtin.Dir(s.CacheDir)
			return dir, nil, err
		}
		dir, size, ok, err := builtin.Unpacked(s.CacheDir)
		if err != nil || ok {
			return dir, nil, err
		}
		return dir, &Pending{Path: dir, Size: size}, nil
	}
	if _, err := os.Stat(name); err == nil {
		return name, nil, nil
	}
	if IsModelPath(name) {
		return "", nil, fmt.Errorf("model %s: no such file or directory", name)
	}
	if s.NeedDecoder {
		if alt, ok := decoderCheckpoint[name]; ok {
			slog.Info("a decoder is needed: using the official visualize checkpoint", "preset", name, "checkpoint", alt)
			name = alt
		} else if name == "mae_vit_huge_patch14" {
			return "", nil, fmt.Errorf("model %s: no official checkpoint with a decoder exists for ViT-H; pass --model with your own weights", name)
		}
	}
	if _, ok := weights.PresetFile(name); !ok {
		return "", nil, fmt.Errorf("%w: model %q: no such file or directory, and not %s (the built-in model) nor a preset (presets: %s)",
			config.ErrUsage, name, builtin.Name, strings.Join(weights.Presets(), ", "))
	}
	hub := weights.NewHub(s.CacheDir)
	if u := os.Getenv("MAEEMBED_HUB_URL"); u != "" {
		hub.BaseURL = u // a mirror of the official download site
	}
	if fetch {
		path, err := hub.Resolve(ctx, name)
		return path, nil, err
	}
	path, dl, err := hub.Locate(ctx, name)
	if err != nil || dl == nil {
		return path, nil, err
	}
	return path, &Pending{Download: dl, Path: dl.Path, Size: dl.Size}, nil
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
	if err := checkDecoder(s, path, m.HasDecoder()); err != nil {
		return nil, err
	}
	if err := m.SetPrecision(s.Precision); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	slog.Info("model loaded", "path", path, "params", m.NumParams(), "decoder", m.HasDecoder(),
		"image", m.Config.ImageSize, "patch", m.Config.PatchSize, "dim", m.Config.Dim, "precision", s.Precision, "kernel", m.Kernel(), "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

func checkDecoder(s Source, path string, has bool) error {
	if s.NeedDecoder && !has {
		return fmt.Errorf("model %s has no decoder weights: reconstruct needs a checkpoint with a decoder (e.g. mae_visualize_vit_base)", path)
	}
	return nil
}

// Spec is a model checked as Open checks it, but from its checkpoint's
// headers only: what a dry run needs to know without loading the weights.
type Spec struct {
	Path   string // the checkpoint, resolved (where it would be, if Pending)
	Config Config
	// Pending, if set, says that the model is not on this machine yet
	// (the run would download or unpack it first): Config and the parts
	// are what the preset or the built-in model is known to hold, not
	// read from a file.
	Pending *Pending
	has     parts
}

// Check resolves the model s names and makes the checks Open makes, with
// its errors, reading only what describes the tensors (weights.LoadHeader):
// the format, the config, the names and shapes against the architecture,
// the decoder reconstruct needs, and a file shorter than its header says.
// It reads no tensor data, builds nothing and sets no precision, so the
// only failures of Open it cannot see are in the data (a zip record's
// checksum). It downloads and writes nothing: a preset not yet in the
// cache, or the built-in model not yet unpacked, is checked from what it
// is known to hold (its architecture, its parts: Spec.Pending says so).
func Check(ctx context.Context, s Source) (*Spec, error) {
	path, pending, err := locate(ctx, s, false)
	if err != nil {
		return nil, err
	}
	if pending != nil {
		return checkPending(s, path, pending)
	}
	ck, err := weights.LoadHeader(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFor(ck, s.Config)
	if err != nil {
		return nil, err
	}
	_, has, err := fromTensors(cfg, ck.Tensors, path, true)
	if err != nil {
		return nil, err
	}
	if err := checkDecoder(s, path, has.decoder); err != nil {
		return nil, err
	}
	slog.Info("model checked (headers only)", "path", path, "image", cfg.ImageSize, "patch", cfg.PatchSize, "dim", cfg.Dim, "decoder", has.decoder)
	return &Spec{Path: path, Config: cfg, has: has}, nil
}

// checkPending is Check of a model not on this machine yet: the built-in
// model's embedded config, or a preset's architecture (from its name) and
// parts (from its kind: a pretrained encoder has the encoder norm, a
// visualize checkpoint also the decoder, a fine-tuned one fc_norm instead
// of the norm, as the official files do), with --config overriding the
// config as it would the file's and checked, as the run checks it, against
// the tensors the file is known to hold (knownTensors).
func checkPending(s Source, path string, p *Pending) (*Spec, error) {
	var cfg Config
	var has parts
	if dl := p.Download; dl == nil {
		h, err := builtin.Config()
		if err != nil {
			return nil, err
		}
		cfg, has = FromHF(h), parts{decoder: true, norm: true}
	} else {
		arch := ""
		for _, a := range []string{"base", "large", "huge"} {
			if strings.Contains(dl.Preset, "_vit_"+a) {
				arch = a
			}
		}
		c, ok := map[string]Config{"base": Presets["mae_vit_base_patch16"], "large": Presets["mae_vit_large_patch16"], "huge": Presets["mae_vit_huge_patch14"]}[arch]
		if !ok {
			return nil, fmt.Errorf("model %s: no known architecture for preset %s", s.Name, dl.Preset)
		}
		cfg = c
		switch dl.Kind {
		case "pretrain":
			has = parts{norm: true}
		case "visualize":
			has = parts{norm: true, decoder: true}
		case "finetune":
			has = parts{fcNorm: true}
		default:
			return nil, fmt.Errorf("model %s: unknown kind of preset file %s/%s", s.Name, dl.Kind, dl.Preset)
		}
	}
	// The run checks --config against the file's tensors: check it
	// against those the file is known to hold, with the run's errors (a
	// --config of another architecture is refused, not listed).
	known := knownTensors(cfg, has)
	if s.Config != "" {
		h, err := weights.ReadHFConfig(s.Config)
		if err != nil {
			return nil, err
		}
		cfg = FromHF(h)
	}
	_, has, err := fromTensors(cfg, known, path, true)
	if err != nil {
		return nil, err
	}
	if err := checkDecoder(s, path, has.decoder); err != nil {
		return nil, err
	}
	return &Spec{Path: path, Config: cfg, Pending: p, has: has}, nil
}

// knownTensors are the tensor headers (shapes, no data) of a checkpoint
// of architecture c with parts p, as the official files and the built-in
// model hold them (layout): what a model not on this machine yet is
// checked against.
func knownTensors(c Config, p parts) map[string]*weights.Tensor {
	t := map[string]*weights.Tensor{}
	layout(c, p, func(name string, _ tensorInit, shape ...int) { t[name] = &weights.Tensor{Shape: shape} })
	return t
}

// HasDecoder tells whether the model can reconstruct.
func (s *Spec) HasDecoder() bool { return s.has.decoder }

// CheckPool tells whether the weights support a pool, as Model.CheckPool.
func (s *Spec) CheckPool(p Pool) error { return checkPool(p, s.has) }

// Fingerprint reads every tensor of the checkpoint and returns the
// fingerprint Open's model would carry (Model.Fingerprint), without
// building the model.
func (s *Spec) Fingerprint() (string, error) {
	if s.Pending != nil {
		return "", fmt.Errorf("model %s: not on this machine yet, so its weights cannot be fingerprinted", s.Path)
	}
	ck, err := weights.Load(s.Path)
	if err != nil {
		return "", err
	}
	return ck.Fingerprint(), nil
}
