package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/maeembed/maeembed/stages"
)

// DefaultPixelSize is the side of the raw-pixel baseline: images resized to
// 16×16 and flattened (768 values).
const DefaultPixelSize = 16

// PixelPreprocess is the preprocessing of the raw-pixel baseline: the
// embeddings' own resize mode (read from their maeembed.preprocess
// metadata; center-crop when absent) at size×size, so that the baseline
// sees the same part of each image as the encoder did.
func PixelPreprocess(meta map[string]string, size int) stages.Preprocess {
	mode := stages.CenterCrop
	for _, f := range strings.Fields(meta["maeembed.preprocess"]) {
		if v, ok := strings.CutPrefix(f, "resize="); ok {
			if m, err := stages.ParseResizeMode(v); err == nil && m != stages.NoResize {
				mode = m
			}
		}
	}
	return stages.Preprocess{Size: size, Mode: mode}
}

// PixelFeatures is the raw-pixel baseline of the probes: for each id (a
// path relative to root, as maeembed writes ids for directory inputs) the
// image root/id decoded and resized as p says (PIL-exact bicubic),
// normalised with the ImageNet mean and std and flattened in CHW order:
// [len(ids) × 3·Size·Size]. An unreadable image is an error naming it.
func PixelFeatures(root string, ids []string, p stages.Preprocess) ([]float32, int, error) {
	d := 3 * p.Size * p.Size
	x := make([]float32, len(ids)*d)
	workers := max(1, min(runtime.GOMAXPROCS(0), len(ids)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(ids); i += workers {
				path := filepath.Join(root, filepath.FromSlash(ids[i]))
				data, err := os.ReadFile(path)
				if err == nil {
					_, _, err = p.Tensor(x[i*d:(i+1)*d], data)
				}
				if err != nil {
					errs[w] = fmt.Errorf("pixels of %s: %w", ids[i], err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, 0, err
		}
	}
	return x, d, nil
}
