package stages

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"testing"
)

// TestJPEGMatchesLibjpeg: our colour conversion and chroma upsampling give
// libjpeg-turbo's (PIL's) pixels for every subsampling, up to IDCT rounding
// (Go's IDCT is not libjpeg's islow). Replicated chroma and Go's
// color.YCbCrToRGB are measured too, to show the test can tell them apart.
func TestJPEGMatchesLibjpeg(t *testing.T) {
	for _, name := range []string{"sub-444", "sub-422", "sub-420", "sub-440", "progressive", "cmyk", "cmyk-420", "cmyk-420-transform0"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/odd/" + name + ".jpg")
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.ReadFile("testdata/odd/" + name + ".pil.png")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := png.Decode(bytes.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			want := asNRGBA(ref)
			got, _, _, err := Preprocess{}.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			mean, maxd := pixelDiff(got.(*image.NRGBA), want)

			raw, _ := jpeg.Decode(bytes.NewReader(data))
			s, ok := raw.(*image.YCbCr)
			if !ok { // CMYK and YCCK: decodeJPEG4, libjpeg's upsampling and PIL's cmyk2rgb
				t.Logf("%s: %T mean|Δ| %.3f max %d levels", name, raw, mean, maxd)
				if mean > 0.5 || maxd > 2 {
					t.Errorf("differs from PIL: mean %.3f max %d", mean, maxd)
				}
				return
			}
			naive := image.NewNRGBA(raw.Bounds())
			for y := 0; y < naive.Rect.Dy(); y++ {
				for x := 0; x < naive.Rect.Dx(); x++ {
					c := s.YCbCrAt(x, y)
					r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
					naive.SetNRGBA(x, y, color.NRGBA{r, g, b, 255})
				}
			}
			nmean, nmax := pixelDiff(naive, want)
			t.Logf("%s: ours mean|Δ| %.3f max %d levels; Go default mean %.3f max %d", name, mean, maxd, nmean, nmax)
			if mean > 0.1 || maxd > 2 {
				t.Errorf("differs from libjpeg-turbo: mean %.3f max %d", mean, maxd)
			}
		})
	}
}

func pixelDiff(a, b *image.NRGBA) (mean float64, maxd int) {
	var sum, n int
	for y := 0; y < a.Rect.Dy(); y++ {
		for x := 0; x < a.Rect.Dx(); x++ {
			for c := 0; c < 3; c++ {
				d := int(a.Pix[a.PixOffset(x, y)+c]) - int(b.Pix[b.PixOffset(x, y)+c])
				if d < 0 {
					d = -d
				}
				sum += d
				n++
				maxd = max(maxd, d)
			}
		}
	}
	return float64(sum) / float64(n), maxd
}
