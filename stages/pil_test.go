package stages

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// pilRGB reads a .pil.png reference (PIL's decoding) as the opaque RGB
// maeembed must produce: RGBA references are composited on white with the
// same rounding as Decode.
func pilRGB(t *testing.T, path string) *image.NRGBA {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// PNGs written by PIL decode as *image.RGBA (RGB, opaque) or
	// *image.NRGBA (RGBA): both hold the file's 8-bit values unchanged.
	var pix []uint8
	straight := false
	switch m := src.(type) {
	case *image.RGBA:
		pix = m.Pix
	case *image.NRGBA:
		pix, straight = m.Pix, true
	default:
		t.Fatalf("%s: reference decodes as %T", path, src)
	}
	out := image.NewNRGBA(image.Rect(0, 0, src.Bounds().Dx(), src.Bounds().Dy()))
	for i := 0; i < len(pix); i += 4 {
		a := pix[i+3]
		if !straight {
			a = 255
		}
		out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = overWhite(pix[i], a), overWhite(pix[i+1], a), overWhite(pix[i+2], a), 255
	}
	return out
}

// TestDecodeMatchesPIL: files Go's standard decoders refuse or decode
// differently (animated WebP, lossy WebP colours, a GIF frame larger than
// its screen, EXIF orientation outside JPEG, fax and CMYK TIFFs, 16-bit and
// run-length BMPs) come out as PIL decodes them,
// pixel for pixel. References: testdata/gen_odd.py and gen_cases.py.
func TestDecodeMatchesPIL(t *testing.T) {
	tests := []struct {
		file, ref string
		tol       int // JPEG: Go's IDCT differs from libjpeg's islow by up to 3 levels here
	}{
		{file: "cases/exif6.png", ref: "cases/base.png"},
		{file: "cases/exif6.png", ref: "cases/exif6.png.pil.png"},
		{file: "cases/exif6.jpg", ref: "cases/exif6.jpg.pil.png", tol: 3},
		{file: "cases/animated.webp", ref: "cases/animated.webp.pil.png"},
		{file: "cases/frame_larger_than_screen.gif", ref: "cases/frame_larger_than_screen.gif.pil.png"},
		{file: "odd/lossy.webp", ref: "odd/lossy.webp.pil.png"},
		{file: "odd/lossy-alpha.webp", ref: "odd/lossy-alpha.webp.pil.png"},
		{file: "odd/animated.webp", ref: "odd/animated.webp.pil.png"},
		{file: "odd/animated-alpha.webp", ref: "odd/animated-alpha.webp.pil.png"},
		{file: "odd/animated-offset.webp", ref: "odd/animated-offset.webp.pil.png"},
		{file: "odd/animated-offset-alpha.webp", ref: "odd/animated-offset-alpha.webp.pil.png"},
		{file: "odd/frame-larger-than-screen.gif", ref: "odd/frame-larger-than-screen.gif.pil.png"},
		{file: "odd/gif-stray-byte.gif", ref: "odd/gif-stray-byte.gif.pil.png"},
		{file: "odd/bmp-565.bmp", ref: "odd/bmp-565.bmp.pil.png"},
		{file: "odd/bmp-555.bmp", ref: "odd/bmp-555.bmp.pil.png"},
		{file: "odd/bmp-555-rgb.bmp", ref: "odd/bmp-555-rgb.bmp.pil.png"},
		{file: "odd/bmp-rle8.bmp", ref: "odd/bmp-rle8.bmp.pil.png"},
		{file: "odd/bmp-rle4.bmp", ref: "odd/bmp-rle4.bmp.pil.png"},
		{file: "odd/cmyk.tiff", ref: "odd/cmyk.tiff.pil.png"},
		{file: "odd/cmyk-lzw.tiff", ref: "odd/cmyk-lzw.tiff.pil.png"},
		{file: "odd/cmyk-deflate.tiff", ref: "odd/cmyk-deflate.tiff.pil.png"},
		{file: "odd/fax-group3.tiff", ref: "odd/fax-group3.tiff.pil.png"},
		{file: "odd/fax-group4.tiff", ref: "odd/fax-group4.tiff.pil.png"},
		{file: "odd/fax-group4-miniswhite.tiff", ref: "odd/fax-group4-miniswhite.tiff.pil.png"},
		{file: "odd/jpeg.tiff", ref: "odd/jpeg.tiff.pil.png", tol: 3},
		{file: "odd/jpeg-strips.tiff", ref: "odd/jpeg-strips.tiff.pil.png", tol: 3},
		{file: "odd/jpeg-tiles.tiff", ref: "odd/jpeg-tiles.tiff.pil.png", tol: 3},
		{file: "odd/jpeg-ycbcr.tiff", ref: "odd/jpeg-ycbcr.tiff.pil.png", tol: 3},
		{file: "odd/jpeg-orientation-6.tiff", ref: "odd/jpeg-orientation-6.tiff.pil.png", tol: 3},
		{file: "odd/jpeg-gray.tiff", ref: "odd/jpeg-gray.tiff.pil.png", tol: 3},
	}
	for _, tc := range tests {
		t.Run(tc.file+"~"+filepath.Base(tc.ref), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			img, w, h, err := Preprocess{}.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			want := pilRGB(t, filepath.Join("testdata", tc.ref))
			if img.Bounds() != want.Rect || w != want.Rect.Dx() || h != want.Rect.Dy() {
				t.Fatalf("size %v (%dx%d), PIL %v", img.Bounds(), w, h, want.Rect)
			}
			got := img.(*image.NRGBA)
			worst, where := 0, 0
			for i := range want.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d < 0 {
					d = -d
				}
				if d > worst {
					worst, where = d, i
				}
			}
			if worst > tc.tol {
				t.Errorf("max |Δ| %d > %d at pixel (%d,%d) channel %d: got %v, PIL %v", worst, tc.tol,
					where/4%want.Rect.Dx(), where/4/want.Rect.Dx(), where%4, got.Pix[where&^3:where&^3+3], want.Pix[where&^3:where&^3+3])
			}
		})
	}
}
