package stages

import (
	"bytes"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// Crops stay inside the image, cover 20–100% of its area with an aspect
// ratio in [3/4, 4/3] (up to rounding), and extreme images fall back to the
// centre crop clamped to the ratio bounds, as torchvision's get_params.
func TestRandomResizedCropRect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{640, 480}, {224, 224}, {300, 1000}, {57, 31}} {
		w, h := sz[0], sz[1]
		for range 2000 {
			c := RandomResizedCropRect(w, h, CropScale, CropRatio, r)
			if !c.In(image.Rect(0, 0, w, h)) || c.Empty() {
				t.Fatalf("%dx%d: crop %v outside the image", w, h, c)
			}
			area := float64(c.Dx()*c.Dy()) / float64(w*h)
			ar := float64(c.Dx()) / float64(c.Dy())
			slack := 2.5 / float64(min(c.Dx(), c.Dy())) // rounding of w and h
			if area < 0.2*(1-2*slack) || ar < 0.75*(1-slack) || ar > 4.0/3*(1+slack) {
				t.Fatalf("%dx%d: crop %v has area fraction %.3f, aspect %.3f", w, h, c, area, ar)
			}
		}
	}
	// 1000×10 fits no crop of ratio ≤ 4/3 and ≥ 20% area: the fallback is
	// the centre 13×10 (round(10·4/3)).
	if c := RandomResizedCropRect(1000, 10, CropScale, CropRatio, r); c != image.Rect(493, 0, 506, 10) {
		t.Errorf("fallback crop of 1000x10: %v", c)
	}
}

func gradientImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x * y) % 256), 255})
		}
	}
	return img
}

// The full-image crop is exactly the squash resize; the flip mirrors it;
// a sub-crop equals resizing the cut-out.
func TestResizedCrop(t *testing.T) {
	src := gradientImage(90, 60)
	squash, err := Preprocess{Size: 32, Mode: Squash}.Resize(src)
	if err != nil {
		t.Fatal(err)
	}
	want := squash.(*image.NRGBA)
	got := ResizedCrop(src, src.Rect, 32, false)
	if !bytes.Equal(got.Pix, want.Pix) {
		t.Fatal("full-image crop differs from the squash resize")
	}
	flipped := ResizedCrop(src, src.Rect, 32, true)
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			if flipped.NRGBAAt(x, y) != want.NRGBAAt(31-x, y) {
				t.Fatalf("flip: pixel (%d,%d) is not the mirror", x, y)
			}
		}
	}
	crop := image.Rect(10, 5, 70, 50)
	cut := image.NewNRGBA(image.Rect(0, 0, crop.Dx(), crop.Dy()))
	for y := 0; y < crop.Dy(); y++ {
		for x := 0; x < crop.Dx(); x++ {
			cut.SetNRGBA(x, y, src.NRGBAAt(crop.Min.X+x, crop.Min.Y+y))
		}
	}
	viaCut, _ := Preprocess{Size: 32, Mode: Squash}.Resize(cut)
	if !bytes.Equal(ResizedCrop(src, crop, 32, false).Pix, viaCut.(*image.NRGBA).Pix) {
		t.Error("sub-crop differs from resizing the cut-out")
	}
}

func TestShrinkTo(t *testing.T) {
	src := gradientImage(300, 200)
	if got := ShrinkTo(src, 100).Rect; got.Dx() != 150 || got.Dy() != 100 {
		t.Errorf("300x200 shrunk to shorter side 100: %v", got)
	}
	if got := ShrinkTo(src, 400); got != src {
		t.Error("an image already small enough should come back as it is")
	}
}
