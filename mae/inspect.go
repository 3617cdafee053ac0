package mae

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/mae/weights"
)

// Inspect writes what the checkpoint at path holds to w: its format, the
// number of tensors and parameters, the config maeembed infers for it
// (configPath: an HF-style config.json for a bare weights file) and every
// tensor's shape. It returns why the checkpoint is not a loadable MAE, if
// it is not (after writing the rest).
func Inspect(w io.Writer, path, configPath string) error {
	start := time.Now()
	ck, err := weights.Load(path)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ck.Tensors))
	shapes := map[string][]int{} // FromTensors takes the tensors over
	total := 0
	for n, t := range ck.Tensors {
		names = append(names, n)
		shapes[n] = t.Shape
		total += len(t.Data)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "checkpoint  %s\nformat      %s\ntensors     %d\nparameters  %d (%.1fM)\nload time   %s\n",
		path, ck.Format, len(names), total, float64(total)/1e6, time.Since(start).Round(time.Millisecond))
	cfg, cfgErr := ConfigFor(ck, configPath)
	if cfgErr == nil {
		if _, err := FromTensors(cfg, ck.Tensors, path); err != nil {
			cfgErr = err
		}
	}
	if cfgErr != nil {
		fmt.Fprintf(w, "config      not a loadable MAE: %v\n", cfgErr)
	} else {
		b, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Fprintf(w, "config      %s\n", b)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%v\n", n, shapes[n])
	}
	tw.Flush()
	return cfgErr
}

// ConvertOptions are how a model is written in the Hugging Face layout
// (maeembed's own format), from flags and config-file keys alike: in
// float16 (half the size; loading upcasts), and whether the checkpoint
// files of an existing, non-empty directory may be replaced.
type ConvertOptions struct {
	Float16 bool `yaml:"float16"`
	Force   bool `yaml:"force"`
}

// AddFlags adds --float16 and --force.
func (o *ConvertOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Float16, "float16", o.Float16, "store the weights as float16 (half the size; loading upcasts)")
	fs.BoolVar(&o.Force, "force", o.Force, "replace the checkpoint files in an existing, non-empty --output directory")
}

// CheckOutput refuses dir if it exists and is not empty, unless Force: a
// new directory is written whole and renamed into place, an existing one
// would have its files replaced. The refusal is a run failure (exit 1), not
// a usage error: as with embed's output directory that refuses a run, the
// command line is right and the directory's contents are in the way.
func (o ConvertOptions) CheckOutput(dir string) error {
	if o.Force {
		return nil
	}
	switch ents, err := os.ReadDir(dir); {
	case err == nil && len(ents) > 0:
		return fmt.Errorf("--output %s exists and is not empty (--force replaces its checkpoint files)", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// Save writes m to dir in the Hugging Face layout.
func (o ConvertOptions) Save(m *Model, dir string) error {
	save := weights.SaveHF
	if o.Float16 {
		save = weights.SaveHFFloat16
	}
	return save(dir, m.Tensors(), m.Config.HF())
}
