package mae

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maeembed/maeembed/mae/weights"
)

var checkFixtures = []string{
	"tiny32/model.pth", "tiny32/model_legacy.pth", "tiny32/encoder.pth", "tiny32/finetuned.pth",
	"tiny32/finetuned_learnedpos.pth", "tiny32/hf", "tiny32/hf_bin", "small48/model.pth", "small48/finetuned.pth",
}

// Check says of each fixture what Open's model says: config, decoder,
// the pools it supports, and for reconstruct the decoder it needs.
func TestCheckAgreesWithOpen(t *testing.T) {
	for _, name := range checkFixtures {
		for _, needDecoder := range []bool{false, true} {
			src := Source{Name: filepath.Join("testdata", "fixtures", name), NeedDecoder: needDecoder}
			m, openErr := Open(context.Background(), src)
			spec, err := Check(context.Background(), src)
			if (err == nil) != (openErr == nil) || err != nil && err.Error() != openErr.Error() {
				t.Errorf("%s (decoder %v): Check: %v; Open: %v", name, needDecoder, err, openErr)
				continue
			}
			if err != nil {
				continue
			}
			if spec.Config != m.Config || spec.HasDecoder() != m.HasDecoder() {
				t.Errorf("%s: Check %+v decoder %v; Open %+v decoder %v", name, spec.Config, spec.HasDecoder(), m.Config, m.HasDecoder())
			}
			for _, p := range []Pool{PoolCLS, PoolMean, PoolTokens, PoolGlobal} {
				if a, b := spec.CheckPool(p), m.CheckPool(p); (a == nil) != (b == nil) {
					t.Errorf("%s: pool %s: Check %v, Open %v", name, p, a, b)
				}
			}
			if fp, err := spec.Fingerprint(); err != nil || fp != m.Fingerprint {
				t.Errorf("%s: fingerprint %s (%v), Open's %s", name, fp, err, m.Fingerprint)
			}
		}
	}
}

// On a header's tensors (no data), the check refuses what FromTensors
// refuses, with the same words: a tensor missing, unexpected or
// mis-shaped anywhere, a half fc_norm, a patch embedding without bias.
func TestFromTensorsCheckMatchesBuild(t *testing.T) {
	for _, name := range []string{"tiny32/model.pth", "tiny32/finetuned.pth"} {
		path := filepath.Join("testdata", "fixtures", name)
		ck, err := weights.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ConfigFor(ck, "")
		if err != nil {
			t.Fatal(err)
		}
		edits := map[string]func(map[string]*weights.Tensor){"none": func(map[string]*weights.Tensor) {}}
		for _, n := range slices.Sorted(maps.Keys(ck.Tensors)) {
			edits["drop "+n] = func(m map[string]*weights.Tensor) { delete(m, n) }
			edits["reshape "+n] = func(m map[string]*weights.Tensor) {
				t := m[n]
				m[n] = &weights.Tensor{Shape: append([]int{len(t.Data)}, 1, 1, 1, 1), Data: t.Data}
			}
		}
		edits["extra"] = func(m map[string]*weights.Tensor) {
			m["blocks.0.attn.extra"] = &weights.Tensor{Shape: []int{2}, Data: make([]float32, 2)}
		}
		for what, edit := range edits {
			full := map[string]*weights.Tensor{}
			for n, t := range ck.Tensors {
				full[n] = &weights.Tensor{Shape: t.Shape, Data: slices.Clone(t.Data)}
			}
			edit(full)
			header := map[string]*weights.Tensor{}
			for n, t := range full {
				header[n] = &weights.Tensor{Shape: t.Shape}
			}
			_, has, checkErr := fromTensors(cfg, header, path, true)
			m, buildErr := FromTensors(cfg, full, path)
			if (checkErr == nil) != (buildErr == nil) || checkErr != nil && checkErr.Error() != buildErr.Error() {
				t.Errorf("%s, %s: check %v; build %v", name, what, checkErr, buildErr)
				continue
			}
			if m != nil && (has.decoder != m.HasDecoder() || has.fcNorm != (m.Encoder.FCNorm != nil) || has.norm != (m.Encoder.Norm != nil)) {
				t.Errorf("%s, %s: check says %+v", name, what, has)
			}
		}
	}
}
