package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestResizeExtremeAspect: strips one to three pixels thick (200000×1,
// 1×200000, 4000×3, 3×4000 PNGs in testdata/aspect) resize exactly as
// torchvision/PIL do (sha256 of the RGB bytes, from gen_aspect.py), and the
// resize keeps coefficient tables for its 224 output columns and rows
// only: center-crop resizes a 200000×1 strip to 51200000×256 in
// principle, whose tables would take 1.8 GB. What it keeps is within
// resizeBytes, the resize's share of the --memory-budget estimate, which
// stays small.
func TestResizeExtremeAspect(t *testing.T) {
	b, err := os.ReadFile("testdata/aspect/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Items map[string]struct {
			Size   [2]int `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(exp.Items))
	for k := range exp.Items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 8 {
		t.Fatalf("%d expectations, want 8", len(keys))
	}
	const S = 224
	for _, key := range keys {
		it := exp.Items[key]
		i := strings.LastIndex(key, ".")
		file, mode := key[:i], ResizeMode(key[i+1:])
		t.Run(key, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/aspect", file))
			if err != nil {
				t.Fatal(err)
			}
			p := Preprocess{Size: S, Mode: mode}
			dec, w, h, err := p.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if w != it.Size[0] || h != it.Size[1] {
				t.Fatalf("size %dx%d, PIL %dx%d", w, h, it.Size[0], it.Size[1])
			}
			outW, outH, win, err := p.plan(w, h)
			if err != nil {
				t.Fatal(err)
			}
			cs := new(coeffScratch)
			out := resample(cs, asNRGBA(dec), outW, outH, win)
			sum := sha256.Sum256(rgbBytes(out))
			if got := hex.EncodeToString(sum[:]); got != it.SHA256 {
				t.Errorf("RGB bytes differ from PIL's (sha256 %s, want %s)", got, it.SHA256)
			}
			viaResize, err := p.Resize(dec)
			if err != nil {
				t.Fatal(err)
			}
			if sum2 := sha256.Sum256(rgbBytes(viaResize.(*image.NRGBA))); sum2 != sum {
				t.Error("Resize (pooled scratch) differs from resample with a fresh scratch")
			}

			// Tables for the window only, whatever outW×outH is.
			kept := int64(cs.bytes())
			rows := S // source rows read by the horizontal pass
			for _, ax := range []struct {
				name           string
				c              *coeffs
				in, out, first int
			}{{"horizontal", &cs.h, w, outW, win.Min.X}, {"vertical", &cs.v, h, outH, win.Min.Y}} {
				if ax.in == ax.out {
					continue
				}
				ksize, _, _, _ := kernelSize(ax.in, ax.out)
				if len(ax.c.bounds) != 2*S || cap(ax.c.k) != ksize*S || ax.c.first != ax.first {
					t.Errorf("%s tables: %d bounds, %d weights from output pixel %d; want %d, %d (%d taps × %d) from %d (of %d output pixels)",
						ax.name, len(ax.c.bounds), cap(ax.c.k), ax.c.first, 2*S, ksize*S, ksize, S, ax.first, ax.out)
				}
			}
			if outH != h {
				first, last := h, 0
				for i := 0; i < S; i++ {
					first, last = min(first, cs.v.bounds[2*i]), max(last, cs.v.bounds[2*i]+cs.v.bounds[2*i+1])
				}
				rows = last - first
				kept += 4 * S * S // the result, beside the horizontal pass
			}
			kept += int64(4 * S * rows)
			est := p.resizeBytes(w, h)
			t.Logf("resized to %dx%d, window %v: keeps %d bytes, estimate %d", outW, outH, win, kept, est)
			if est < kept {
				t.Errorf("resizeBytes = %d, less than the %d bytes the resize keeps", est, kept)
			}
			// Center-crop reads about S·(S+4) source pixels whatever the
			// shape. Squash reads them all: PIL's horizontal pass comes
			// first, over every source row (4·S·h bytes), and a squash of
			// 200000 pixels weighs 3573 taps for each of the 224 outputs.
			limit := int64(1 << 20)
			if mode == Squash {
				limit = 4<<20 + 4*S*int64(h)
			}
			if est > limit {
				t.Errorf("resizeBytes = %d > %d", est, limit)
			}
		})
	}
}

// TestCoeffPoolDropsLargeTables: the tables of an extreme downscale are not
// kept in the pool for every later resize.
func TestCoeffPoolDropsLargeTables(t *testing.T) {
	big := new(coeffScratch)
	precompute(&big.h, &big.kk, 200000, 224, 0, 224) // 3573 taps per pixel
	if big.bytes() <= maxPooledCoeffBytes {
		t.Fatalf("squash of 200000 pixels keeps only %d bytes of tables", big.bytes())
	}
	putCoeffs(big)
	if got := coeffPool.Get().(*coeffScratch); got == big {
		t.Errorf("pool kept %d bytes of tables (limit %d)", big.bytes(), maxPooledCoeffBytes)
	}
}
