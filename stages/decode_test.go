package stages

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	red    = [3]uint8{255, 0, 0}
	green  = [3]uint8{0, 255, 0}
	blue   = [3]uint8{0, 0, 255}
	yellow = [3]uint8{255, 255, 0}
	white  = [3]uint8{255, 255, 255}
)

func rgbAt(img image.Image, x, y int) [3]uint8 {
	n := img.(*image.NRGBA)
	o := n.PixOffset(x, y)
	return [3]uint8{n.Pix[o], n.Pix[o+1], n.Pix[o+2]}
}

func near(a, b [3]uint8, tol int) bool {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < -tol || d > tol {
			return false
		}
	}
	return true
}

// TestDecodeOddFiles decodes the fixtures of testdata/gen_odd.py: each good
// file must come out upright 48x32 with the quadrant colours, each bad one
// must fail with a useful error.
func TestDecodeOddFiles(t *testing.T) {
	quads := [4][3]uint8{red, green, blue, yellow}
	tests := []struct {
		file    string
		quads   [4][3]uint8 // TL, TR, BL, BR
		tol     int
		wantErr string
	}{
		{file: "quadrants.png", quads: quads},
		{file: "quadrants.jpg", quads: quads, tol: 6},
		{file: "progressive.jpg", quads: quads, tol: 6},
		{file: "quadrants.bmp", quads: quads},
		{file: "quadrants.tiff", quads: quads},
		{file: "quadrants.webp", quads: quads},
		{file: "png-named.jpg", quads: quads},
		{file: "gray.png", quads: [4][3]uint8{{76, 76, 76}, {150, 150, 150}, {29, 29, 29}, {226, 226, 226}}},
		{file: "rgb16.png", quads: quads},
		{file: "cmyk.jpg", quads: quads, tol: 8},
		{file: "exif-orientation-6.jpg", quads: quads, tol: 6},
		{file: "exif-orientation-3.jpg", quads: quads, tol: 6},
		{file: "exif-orientation-8.jpg", quads: quads, tol: 6},
		{file: "exif-orientation-6.png", quads: quads},            // eXIf chunk
		{file: "exif-orientation-8-rawprofile.png", quads: quads}, // ImageMagick's zTXt hex profile
		{file: "exif-orientation-3-xmp.png", quads: quads},        // XMP tiff:Orientation
		{file: "exif-orientation-6.webp", quads: quads},           // EXIF chunk
		{file: "exif-orientation-6.tiff", quads: quads},           // tag 274
		{file: "png-bad-idat-crc.png", quads: quads},              // PIL does not check IDAT CRCs
		{file: "png-bad-crc-after-idat.png", quads: quads},        // nor read past the image data
		{file: "png-no-iend.png", quads: quads},                   // so a missing IEND is no error
		{file: "png-extra-data.png", quads: quads},                // PIL stops once the image is complete
		{file: "png-data-after-zlib.png", quads: quads},           // and ignores what follows the stream
		{file: "../refused/png-bad-adler.png", wantErr: "checksum"},
		{file: "../refused/png-bad-crc-before-idat.png", wantErr: "checksum"},                // PIL refuses it too
		{file: "../refused/png-truncated-idat.png", wantErr: "decode png"},                   // PIL refuses it too
		{file: "../refused/bmp-rle8-truncated.bmp", wantErr: "run-length data ends"},         // PIL refuses it too
		{file: "../refused/bmp-rle4-absolute-past-end.bmp", wantErr: "run-length data ends"}, // an RLE4 absolute run read bytes past its own (a panic); PIL: "not enough image data"
		{file: "jpeg.tiff", quads: quads, tol: 6},                                            // JPEG-compressed TIFF (7)
		{file: "jpeg-strips.tiff", quads: quads, tol: 6},                                     // one JPEG per 8 rows
		{file: "jpeg-tiles.tiff", quads: quads, tol: 6},                                      // 32x32 tiles cut at the edge
		{file: "jpeg-ycbcr.tiff", quads: quads, tol: 6},                                      // photometric YCbCr
		{file: "jpeg-orientation-6.tiff", quads: quads, tol: 6},                              // and tag 274
		{file: "jpeg-gray.tiff", quads: [4][3]uint8{{54, 54, 54}, {182, 182, 182}, {18, 18, 18}, {237, 237, 237}}, tol: 6},
		{file: "../refused/jpeg-truncated.tiff", wantErr: "tiff"}, // PIL refuses it too
		{file: "palette-transparent.png", quads: [4][3]uint8{white, green, blue, yellow}},
		{file: "rgba-half.png", quads: [4][3]uint8{{255, 127, 127}, {127, 255, 127}, {127, 127, 255}, {255, 255, 127}}, tol: 1},
		{file: "animated.gif", quads: [4][3]uint8{red, red, red, red}},
		{file: "truncated.jpg", wantErr: "decode jpeg"},
		{file: "empty.jpg", wantErr: "empty input"},
		{file: "not-an-image.jpg", wantErr: "unknown format"},
		{file: "bomb-100000x100000.png", wantErr: "png header claims 100000×100000, more than a 69-byte PNG can hold"},
	}
	var p Preprocess
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/odd", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			img, w, h, err := p.Decode(data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w != 48 || h != 32 || img.Bounds() != image.Rect(0, 0, 48, 32) {
				t.Fatalf("size %dx%d bounds %v, want 48x32", w, h, img.Bounds())
			}
			pts := [4]image.Point{{12, 8}, {36, 8}, {12, 24}, {36, 24}}
			for i, pt := range pts {
				if got := rgbAt(img, pt.X, pt.Y); !near(got, tc.quads[i], tc.tol) {
					t.Errorf("pixel %v = %v, want %v ±%d", pt, got, tc.quads[i], tc.tol)
				}
			}
		})
	}
}

// A PNG of 14000×14000 pixels (196 M, above the default limit; 1-bit,
// 30 KiB) is refused from its header; a 69-byte file whose header claims
// 100000×100000 is corrupt rather than too large: it cannot hold them.
func TestDecodeBombIsRefusedBeforeDecoding(t *testing.T) {
	_, _, _, err := Preprocess{}.Decode(zeroPNG(t, 14000, 14000, 0, 1, false))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	data, err := os.ReadFile("testdata/odd/bomb-100000x100000.png")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err = (Preprocess{}).Decode(data); !errors.Is(err, ErrCorruptHeader) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("69 bytes claiming 100000x100000: err = %v, want ErrCorruptHeader", err)
	}
	// A caller-set limit applies to ordinary images too.
	data, _ = os.ReadFile("testdata/odd/quadrants.png")
	if _, _, _, err := (Preprocess{MaxPixels: 48*32 - 1}).Decode(data); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxPixels 1535 on 48x32: err = %v, want ErrTooLarge", err)
	}
	if _, _, _, err := (Preprocess{MaxPixels: 48 * 32}).Decode(data); err != nil {
		t.Fatalf("MaxPixels 1536 on 48x32: %v", err)
	}
}

func TestTensorErrorStage(t *testing.T) {
	dst := make([]float32, 3*32*32)
	p := Preprocess{Size: 32, Mode: NoResize}
	_, _, err := p.Tensor(dst, []byte("nope"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Stage != "decode" {
		t.Fatalf("err = %#v, want stage decode", err)
	}
	data, _ := os.ReadFile("testdata/odd/quadrants.png")
	_, _, err = p.Tensor(dst, data)
	if !errors.As(err, &pe) || pe.Stage != "resize" || !strings.Contains(err.Error(), "48x32, expected 32x32") {
		t.Fatalf("err = %v, want resize stage naming both sizes", err)
	}
	w, h, err := Preprocess{Size: 32, Mode: Squash}.Tensor(dst, data)
	if err != nil || w != 48 || h != 32 {
		t.Fatalf("squash: %d %d %v", w, h, err)
	}
	// Top-left pixel is red: R channel high, G low.
	if dst[0] < 2 || dst[32*32] > -1.5 {
		t.Fatalf("tensor top-left R=%v G=%v, want red", dst[0], dst[32*32])
	}
}

func TestResizeModes(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	tests := []struct {
		p    Preprocess
		want image.Rectangle
		err  string
	}{
		{Preprocess{Size: 224, Mode: CenterCrop}, image.Rect(0, 0, 224, 224), ""},
		{Preprocess{Size: 64, Mode: Squash}, image.Rect(0, 0, 64, 64), ""},
		{Preprocess{Size: 200, Mode: NoResize}, image.Rectangle{}, "300x200, expected 200x200"},
		{Preprocess{Size: 224, Mode: "stretch"}, image.Rectangle{}, "unknown mode"},
		{Preprocess{Size: 0, Mode: Squash}, image.Rectangle{}, "size 0"},
	}
	for _, tc := range tests {
		out, err := tc.p.Resize(src)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: err = %v, want %q", tc.p, err, tc.err)
			}
			continue
		}
		if err != nil || out.Bounds() != tc.want {
			t.Errorf("%+v: bounds %v err %v, want %v", tc.p, out.Bounds(), err, tc.want)
		}
	}
	if _, err := ParseResizeMode("squash"); err != nil {
		t.Error(err)
	}
	if _, err := ParseResizeMode("bogus"); err == nil {
		t.Error("ParseResizeMode(bogus) succeeded")
	}
}

// TestCenterCropRounding: torchvision uses Python's round (half to even) for
// the crop offset: 257-224 = 33 → round(16.5) = 16, 259-224 = 35 → 18.
func TestCenterCropRounding(t *testing.T) {
	for _, tc := range []struct{ w, wantLeft int }{{257, 16}, {259, 18}, {258, 17}} {
		src := image.NewNRGBA(image.Rect(0, 0, tc.w, 256))
		for x := 0; x < tc.w; x++ {
			for y := 0; y < 256; y++ {
				o := src.PixOffset(x, y)
				src.Pix[o], src.Pix[o+1], src.Pix[o+2], src.Pix[o+3] = uint8(x), uint8(x>>8), 0, 255
			}
		}
		// Shorter side is already 256 → no resampling, pure crop.
		out, err := Preprocess{Size: 224, Mode: CenterCrop}.Resize(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := rgbAt(out, 0, 0); int(got[0])+256*int(got[1]) != tc.wantLeft {
			t.Errorf("width %d: left column %d, want %d", tc.w, int(got[0])+256*int(got[1]), tc.wantLeft)
		}
	}
}

// TestGIFFrameSmallerThanScreen: the first frame is placed on the logical
// screen; the uncovered area is background, rendered white.
func TestGIFFrameSmallerThanScreen(t *testing.T) {
	pal := color.Palette{color.NRGBA{0, 0, 255, 255}, color.NRGBA{0, 0, 0, 0}}
	frame := image.NewPaletted(image.Rect(10, 5, 20, 15), pal) // all index 0: blue
	var buf bytes.Buffer
	err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 40, Height: 30}})
	if err != nil {
		t.Fatal(err)
	}
	img, w, h, err := Preprocess{}.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if w != 40 || h != 30 {
		t.Fatalf("size %dx%d, want the 40x30 screen", w, h)
	}
	if got := rgbAt(img, 12, 7); got != blue {
		t.Errorf("inside frame: %v", got)
	}
	if got := rgbAt(img, 2, 2); got != white {
		t.Errorf("outside frame: %v", got)
	}
}

// The error of an image that fails to decode names the stage once: the
// error row's stage column is "decode" and its message "decode jpeg: …",
// not "decode: decode jpeg: …"; a message without the stage gets it.
func TestDecodeErrorNamesStageOnce(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata/odd", "truncated.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	p := Preprocess{Size: 16, Mode: Squash}
	_, _, err = p.Tensor(make([]float32, 3*16*16), data)
	var se *Error
	if !errors.As(err, &se) || se.Stage != "decode" || !strings.HasPrefix(err.Error(), "decode jpeg: ") || strings.Contains(err.Error(), "decode: decode") {
		t.Errorf("truncated JPEG: %v, want stage decode and \"decode jpeg: …\" once", err)
	}
	_, _, err = p.Tensor(make([]float32, 3*16*16), []byte("not an image"))
	if err == nil || !strings.HasPrefix(err.Error(), "decode: read header: ") {
		t.Errorf("not an image: %v, want \"decode: read header: …\"", err)
	}
}
