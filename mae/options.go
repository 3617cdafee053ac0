package mae

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/mae/builtin"
	"github.com/maeembed/maeembed/mae/kernels"
)

// ModelOptions are how a command picks and runs its model, from flags and
// config-file keys alike (package config): the checkpoint (model, config,
// cache_dir) and, for the commands that run it on images, the arithmetic
// of its linear layers (precision: fp32, bf16 or int8).
type ModelOptions struct {
	Model     Source        `yaml:",inline"`
	Precision PrecisionName `yaml:"precision"`
}

// PrecisionName is a precision as given (--precision, or the config key
// precision). A config file's value is checked as the file is read, so
// its error names the key and the file (config.Load), as other bad values
// of a file do; the flag's value is checked when the model is opened
// (ModelOptions.Validate), naming the flag.
type PrecisionName string

// UnmarshalYAML reads a precision name and refuses an unknown one.
func (p *PrecisionName) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if s != "" {
		if _, err := kernels.ParsePrecision(s); err != nil {
			return err
		}
	}
	*p = PrecisionName(s)
	return nil
}

// DefaultModelOptions are the built-in model in float32.
func DefaultModelOptions() ModelOptions {
	return ModelOptions{Model: Source{Name: builtin.Name}, Precision: PrecisionName(kernels.FP32.String())}
}

// AddFlags adds --model/-m, --config and --cache-dir.
func (o *ModelOptions) AddFlags(fs *pflag.FlagSet) {
	s := &o.Model
	fs.StringVarP(&s.Name, "model", "m", s.Name, "builtin (the built-in ViT-Tiny MAE), preset name, checkpoint file (.pth, .safetensors, .bin) or Hugging Face directory; a value with a / or one of those extensions is a path (missing: exit status 1), any other must exist or be a name (else 2)")
	fs.StringVar(&s.Config, "config", s.Config, "HF-style config.json for a bare weights file")
	fs.StringVar(&s.CacheDir, "cache-dir", s.CacheDir, "where presets are downloaded and the built-in model is unpacked, in builtin-HASH/ (default $MAEEMBED_CACHE or the user cache dir)")
}

// AddPrecisionFlag adds --precision, for the commands that run the model
// on images (inspecting or converting keeps the weights as they are).
func (o *ModelOptions) AddPrecisionFlag(fs *pflag.FlagSet) {
	fs.StringVar((*string)(&o.Precision), "precision", string(o.Precision), "arithmetic of the model's linear layers: "+strings.Join(kernels.PrecisionNames(), " | "))
}

// Validate checks what o says without loading anything: an unknown
// precision is a usage error naming --precision.
func (o ModelOptions) Validate() error {
	_, err := o.precision()
	return err
}

// precision is o.Precision parsed (FP32 when empty).
func (o ModelOptions) precision() (kernels.Precision, error) {
	if o.Precision == "" {
		return kernels.FP32, nil
	}
	p, err := kernels.ParsePrecision(string(o.Precision))
	if err != nil {
		return p, fmt.Errorf("%w: --precision: %v", config.ErrUsage, err)
	}
	return p, nil
}

// Open loads the model of o (Open) in o.Precision, with a decoder if
// needDecoder. An unknown precision is an error naming --precision.
func (o ModelOptions) Open(ctx context.Context, needDecoder bool) (*Model, error) {
	s := o.Model
	s.NeedDecoder = needDecoder
	p, err := o.precision()
	if err != nil {
		return nil, err
	}
	s.Precision = p
	return Open(ctx, s)
}

// Check is Open's Check: the model o names, checked from its headers
// (mae.Check), with --precision parsed as Open parses it.
func (o ModelOptions) Check(ctx context.Context, needDecoder bool) (*Spec, kernels.Precision, error) {
	s := o.Model
	s.NeedDecoder = needDecoder
	p, err := o.precision()
	if err != nil {
		return nil, 0, err
	}
	spec, err := Check(ctx, s)
	return spec, p, err
}

// MaskOptions are how reconstruct masks its inputs: the fraction of
// patches removed, the seed of the per-input noise (or the file it is read
// from), and whether the loss targets are normalised per patch (default:
// the model config's norm_pix_loss).
type MaskOptions struct {
	MaskRatio   float64         `yaml:"mask_ratio"`
	Seed        uint64          `yaml:"seed"`
	MaskNoise   string          `yaml:"mask_noise" config:"path"`
	NormPixLoss config.AutoBool `yaml:"norm_pix_loss"`
}

// AddFlags adds --mask-ratio, --seed, --mask-noise and --norm-pix-loss.
func (o *MaskOptions) AddFlags(fs *pflag.FlagSet) {
	fs.Float64Var(&o.MaskRatio, "mask-ratio", o.MaskRatio, "fraction of patches removed")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the random masks (each image's mask depends on the seed and its input position)")
	fs.StringVar(&o.MaskNoise, "mask-noise", o.MaskNoise, "float32 .npy [N, L] (float64 is read rounded to float32, as numpy's astype(float32)): the masking noise, one finite row per input in input order")
	fs.VarPF(o.NormPixLoss.Flag(), "norm-pix-loss", "", "compute the loss against per-patch normalised targets (auto: as the model config's norm_pix_loss says)").NoOptDefVal = "true"
}

// EmbedOptions are how an embedding is taken from the encoder: the pool
// (cls, mean, tokens or global; ParsePool).
type EmbedOptions struct {
	Pool string `yaml:"pool"`
}

// AddFlags adds --pool.
func (o *EmbedOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Pool, "pool", o.Pool, "cls | mean | tokens | global")
}
