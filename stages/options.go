package stages

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
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
	fs.Int64Var(&o.MaxPixels, "max-pixels", o.MaxPixels, "refuse images with more pixels than this (0 = the default, 178956970, as PIL)")
	fs.StringVar(&o.MemBudget, "memory-budget", o.MemBudget, "bound on the bytes of images read and being decoded, all workers together; one batch's tensors must fit in it too; e.g. 512MiB or 1.5GiB, at most the machine's memory (default 1GiB)")
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
		if budget, err = parseBytes(o.MemBudget); err != nil {
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

// parseBytes reads a size such as 1073741824, 512MiB, 1.5GiB, 1TiB or
// 100MB (a number without a unit must be whole) (go-humanize's ParseBytes: KiB, MiB... are powers of 1024, KB,
// MB... of 1000); a bare K, M, G or T is binary, as in earlier versions.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if n := len(t); n > 0 && strings.ContainsRune("KMGTkmgt", rune(t[n-1])) {
		t += "iB"
	}
	// Without a unit it is a count of bytes: 1.5 would otherwise be 1 byte.
	if t != "" && !strings.ContainsFunc(t, unicode.IsLetter) {
		if _, err := strconv.ParseUint(t, 10, 63); err != nil {
			return 0, fmt.Errorf("size %q: a size without a unit is a whole number of bytes; give a unit for a fraction, e.g. 1.5GiB", s)
		}
	}
	n, err := humanize.ParseBytes(t)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("size %q: want bytes, optionally with KiB, MiB, GiB, TiB (or KB, MB, GB, TB), e.g. 512MiB or 1.5GiB", s)
	}
	return int64(n), nil
}
