package stages

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
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
	fs.Int64Var(&o.MaxPixels, "max-pixels", o.MaxPixels, "refuse images with more pixels than this (0 = 178956970, as PIL)")
	fs.StringVar(&o.MemBudget, "memory-budget", o.MemBudget, "bound on the bytes of images read and being decoded, all workers together; one batch's tensors must fit in it too; e.g. 512MiB (default 1GiB)")
}

// Preprocess is the preprocessing stage of o, with its budget; the model
// sets Size. Errors name the flag.
func (o PreprocessOptions) Preprocess() (Preprocess, error) {
	mode, err := ParseResizeMode(o.Resize)
	if err != nil {
		return Preprocess{}, fmt.Errorf("--resize: %w", err)
	}
	budget := DefaultMemoryBudget
	if o.MemBudget != "" {
		if budget, err = parseBytes(o.MemBudget); err != nil {
			return Preprocess{}, fmt.Errorf("--memory-budget: %w", err)
		}
		if budget <= 0 {
			return Preprocess{}, fmt.Errorf("--memory-budget %q: must be positive", o.MemBudget)
		}
	}
	return Preprocess{Mode: mode, MaxPixels: o.MaxPixels, Budget: NewBudget(budget)}, nil
}

// parseBytes reads a size such as 1073741824, 512MiB, 2GiB or 100MB.
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBb")
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "KB": 1e3, "M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9, "T": 1 << 40, "TiB": 1 << 40, "TB": 1e12}[s[len(num):]]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want bytes, optionally with KiB, MiB, GiB (or KB, MB, GB)", s)
	}
	return n * mult, nil
}
