package stages

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
)

// PreprocessOptions are the preprocessing a command takes from flags and
// config-file keys alike (package config): the resize mode, the pixel
// limit and the memory budget of reading and decoding ("512MiB"; ""
// = DefaultMemoryBudget).
type PreprocessOptions struct {
	Resize    string `yaml:"resize"`
	MaxPixels int64  `yaml:"max_pixels"`
	MemBudget string `yaml:"memory_budget"`
}

// AddFlags adds --resize, --max-pixels and --memory-budget.
func (o *PreprocessOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Resize, "resize", o.Resize, "center-crop | squash | none")
	fs.Int64Var(&o.MaxPixels, "max-pixels", o.MaxPixels, "refuse images with more pixels than this (0 = the default, 178956970: PIL's MAX_IMAGE_PIXELS, above which PIL warns; it refuses above twice that)")
	fs.StringVar(&o.MemBudget, "memory-budget", o.MemBudget, "bound on the bytes of images read and being decoded, all workers together; the tensors queued for the model (up to 8 batches + --workers + 1 images) must fit in it too; e.g. 512MiB or 1.5GiB, at most the machine's memory (default 1GiB)")
}

// Preprocess is the preprocessing stage of o, with its budget; the model
// sets Size. Errors name the flag.
func (o PreprocessOptions) Preprocess() (Preprocess, error) {
	mode, err := ParseResizeMode(o.Resize)
	if err != nil {
		return Preprocess{}, fmt.Errorf("--resize: %w", err)
	}
	if o.MaxPixels < 0 {
		return Preprocess{}, fmt.Errorf("--max-pixels %d: want 0 (the default, 178956970) or more", o.MaxPixels)
	}
	budget := DefaultMemoryBudget
	if o.MemBudget != "" {
		// Unlike the other sizes, 0 is not "the default" here, so a
		// negative budget must not be told so (ParseSize's message).
		if strings.HasPrefix(strings.TrimSpace(o.MemBudget), "-") {
			return Preprocess{}, fmt.Errorf("--memory-budget %q: must be positive", o.MemBudget)
		}
		if budget, err = config.ParseSize(o.MemBudget); err != nil {
			return Preprocess{}, fmt.Errorf("--memory-budget: %w", err)
		}
		if budget <= 0 {
			return Preprocess{}, fmt.Errorf("--memory-budget %q: must be positive", o.MemBudget)
		}
		// A budget past the memory there is could not stop one decode
		// from exhausting it (the runtime then aborts the process).
		if limit, from := MachineMemory(); limit > 0 && budget > limit {
			return Preprocess{}, fmt.Errorf("--memory-budget %s: more than this machine's memory (%s, %s): want at most that, and less to leave room for the model",
				o.MemBudget, FormatBytes(limit), from)
		}
	}
	return Preprocess{Mode: mode, MaxPixels: o.MaxPixels, Budget: NewBudget(budget)}, nil
}
