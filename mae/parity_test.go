package mae

import (
	"os"
	"path/filepath"
	"testing"
)

// The fixtures come from an independent PyTorch re-implementation of the
// reference model (testdata/reference/mae_ref.py); regenerate them with
// /usr/bin/python3 mae/testdata/reference/gen_fixtures.py.
const tol = 1e-4

func fixtureDirs(t *testing.T) []string {
	dirs, _ := filepath.Glob("testdata/fixtures/*")
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "model.pth")); err == nil && !st.IsDir() {
			out = append(out, d)
		}
	}
	if len(out) < 2 {
		t.Fatalf("want at least two fixture configs under testdata/fixtures, found %v", out)
	}
	return out
}

func loadFixtureModel(t *testing.T, dir, file string) *Model {
	t.Helper()
	m, err := Load(filepath.Join(dir, file), filepath.Join(dir, "hf", "config.json"))
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return m
}

func check(t *testing.T, what string, got any, wantFile string) {
	t.Helper()
	_, want := readNpy(t, wantFile)
	var d float64
	switch g := got.(type) {
	case []float32:
		d = maxDiff(t, what, g, want)
	case []int:
		d = maxDiff(t, what, g, want)
	}
	t.Logf("%-28s max |diff| %.3g", what, d)
	if d > tol {
		t.Errorf("%s: max abs diff %g > %g", what, d, tol)
	}
}

func TestParity(t *testing.T) {
	for _, dir := range fixtureDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadFixtureModel(t, dir, "model.pth")
			c := m.Config
			xs, x := readNpy(t, filepath.Join(dir, "x.npy"))
			n := xs[0]
			if xs[2] != c.ImageSize || xs[3] != c.ImageSize {
				t.Fatalf("x.npy shape %v does not fit image size %d", xs, c.ImageSize)
			}
			patches := make([]float32, n*c.NumPatches()*c.PatchDim())
			Patchify(patches, f32(x), n, c.ImageSize, c.PatchSize)
			check(t, "patchify", patches, filepath.Join(dir, "patches.npy"))
			back := make([]float32, len(x))
			Unpatchify(back, patches, n, c.ImageSize, c.PatchSize)
			if d := maxDiff(t, "unpatchify", back, x); d != 0 {
				t.Errorf("unpatchify does not invert patchify: %g", d)
			}
			check(t, "pos_embed", SinCosPosEmbed(c.Dim, c.Grid()), filepath.Join(dir, "pos_embed.npy"))
			check(t, "decoder_pos_embed", SinCosPosEmbed(c.DecDim, c.Grid()), filepath.Join(dir, "decoder_pos_embed.npy"))

			for _, pool := range []Pool{PoolTokens, PoolCLS, PoolMean} {
				out := make([]float32, n*m.EmbedDim(pool))
				if err := m.Embed(out, patches, n, pool); err != nil {
					t.Fatal(err)
				}
				check(t, "embed "+string(pool), out, filepath.Join(dir, "embed_"+string(pool)+".npy"))
			}
			ft := loadFixtureModel(t, dir, "finetuned.pth")
			out := make([]float32, n*c.Dim)
			if err := ft.Embed(out, patches, n, PoolGlobal); err != nil {
				t.Fatal(err)
			}
			check(t, "embed global (fine-tuned)", out, filepath.Join(dir, "embed_global.npy"))
			if _, err := os.Stat(filepath.Join(dir, "finetuned_learnedpos.pth")); err == nil {
				// Fine-tuned checkpoints learn pos_embed: it must be read, not recomputed.
				lp := loadFixtureModel(t, dir, "finetuned_learnedpos.pth")
				if err := lp.Embed(out, patches, n, PoolGlobal); err != nil {
					t.Fatal(err)
				}
				check(t, "embed global (learned pos)", out, filepath.Join(dir, "embed_global_learnedpos.npy"))
			}
			if err := ft.Embed(out, patches, n, PoolMean); err == nil {
				t.Error("pool mean on a fine-tuned checkpoint without norm should fail")
			}

			_, noise := readNpy(t, filepath.Join(dir, "noise.npy"))
			for _, normPix := range []bool{false, true} {
				r, err := m.Reconstruct(patches, f32(noise), n, 0.75, normPix)
				if err != nil {
					t.Fatal(err)
				}
				lossFile := "loss.npy"
				if normPix {
					lossFile = "loss_normpix.npy"
				}
				check(t, lossFile, r.Loss, filepath.Join(dir, lossFile))
				if normPix {
					continue
				}
				check(t, "latent", r.Latent, filepath.Join(dir, "latent.npy"))
				check(t, "mask", r.Masking.Mask, filepath.Join(dir, "mask.npy"))
				check(t, "ids_restore", r.Masking.IDsRestore, filepath.Join(dir, "ids_restore.npy"))
				check(t, "ids_shuffle", r.Masking.IDsShuffle, filepath.Join(dir, "ids_shuffle.npy"))
				check(t, "pred", r.Pred, filepath.Join(dir, "pred.npy"))
			}
			r, err := m.Reconstruct(patches, f32(noise), n, 0.5, false)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "pred r=0.5", r.Pred, filepath.Join(dir, "pred_r50.npy"))
			check(t, "mask r=0.5", r.Masking.Mask, filepath.Join(dir, "mask_r50.npy"))
			check(t, "loss r=0.5", r.Loss, filepath.Join(dir, "loss_r50.npy"))
		})
	}
}

// Every checkpoint format of the same weights gives the same model.
func TestFormatsAgree(t *testing.T) {
	for _, dir := range fixtureDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ref := loadFixtureModel(t, dir, "model.pth")
			xs, x := readNpy(t, filepath.Join(dir, "x.npy"))
			n, c := xs[0], ref.Config
			patches := make([]float32, n*c.NumPatches()*c.PatchDim())
			Patchify(patches, f32(x), n, c.ImageSize, c.PatchSize)
			want := make([]float32, n*c.Dim)
			if err := ref.Embed(want, patches, n, PoolMean); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name, path, config string
				decoder            bool
			}{
				{"legacy pth", "model_legacy.pth", "hf/config.json", true},
				{"encoder-only pth", "encoder.pth", "hf/config.json", false},
				{"hf safetensors dir", "hf", "", true},
				{"hf pytorch_model.bin dir", "hf_bin", "", true},
			}
			for _, tc := range cases {
				p := filepath.Join(dir, tc.path)
				if _, err := os.Stat(p); err != nil {
					continue // not every config carries every format
				}
				cfg := ""
				if tc.config != "" {
					cfg = filepath.Join(dir, tc.config)
				}
				m, err := Load(p, cfg)
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
					continue
				}
				if m.HasDecoder() != tc.decoder {
					t.Errorf("%s: decoder present = %v, want %v", tc.name, m.HasDecoder(), tc.decoder)
				}
				got := make([]float32, len(want))
				if err := m.Embed(got, patches, n, PoolMean); err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(t, tc.name, got, want); d != 0 {
					t.Errorf("%s: embeddings differ from model.pth by %g", tc.name, d)
				}
			}
		})
	}
}
