package stages

import (
	"context"
	"errors"
	"image"
	"image/color"
	"io"
	"os"
	"strings"
	"testing"
)

// Two test-only formats, each with a magic no real image starts with: the
// first panics in its pixel decoder (its header is a fine 8×6), the second
// already in its header reader. They stand for any decoder, ours or a
// library's, meeting malformed data it does not guard against.
const (
	panicPixelsMagic = "\x00maeembed-test-panic-pixels\x00"
	panicHeaderMagic = "\x00maeembed-test-panic-header\x00"
)

func init() {
	image.RegisterFormat("panicpixels", panicPixelsMagic,
		func(io.Reader) (image.Image, error) {
			var idx []int
			return nil, errors.New("unreachable: " + string(rune(idx[3]))) // index out of range
		},
		func(io.Reader) (image.Config, error) {
			return image.Config{ColorModel: color.NRGBAModel, Width: 8, Height: 6}, nil
		})
	image.RegisterFormat("panicheader", panicHeaderMagic,
		func(io.Reader) (image.Image, error) { return nil, errors.New("unreachable") },
		func(io.Reader) (image.Config, error) { panic("header reader gave up") })
}

// A decoder's panic is the image's error, stage "decode", saying the
// decoder failed on malformed data and what it panicked with, through
// every decoding entry point; the memory budget it held is given back and
// the next image decodes.
func TestDecoderPanicIsTheImagesError(t *testing.T) {
	budget := NewBudget(64 << 20)
	p := Preprocess{Size: 16, Mode: CenterCrop, Budget: budget}
	good, err := os.ReadFile("testdata/odd/quadrants.png")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, data, want string
	}{
		{"pixels", panicPixelsMagic + "rest", "decode panicpixels: decoder failed on malformed data (panic: runtime error: index out of range [3] with length 0)"},
		{"header", panicHeaderMagic + "rest", "decode: read header: decoder failed on malformed data (panic: header reader gave up)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.data)
			check := func(fn string, err error) {
				t.Helper()
				var pe *PanicError
				if !errors.As(err, &pe) || len(pe.Stack) == 0 {
					t.Fatalf("%s: %v (%T), want a *PanicError with the stack", fn, err, err)
				}
				if !strings.Contains(err.Error(), "decoder failed on malformed data (panic: ") {
					t.Errorf("%s: %q does not say the decoder failed on malformed data", fn, err)
				}
				if in := budget.InUse(); in != 0 {
					t.Errorf("%s: budget holds %d bytes after the panic, want 0", fn, in)
				}
			}

			dst := make([]float32, 3*16*16)
			_, _, err := p.TensorContext(context.Background(), dst, data)
			check("TensorContext", err)
			var se *Error
			if !errors.As(err, &se) || se.Stage != "decode" {
				t.Errorf("TensorContext: %v, want a *stages.Error of stage decode", err)
			}
			if err.Error() != c.want {
				t.Errorf("TensorContext: %q\nwant %q", err, c.want)
			}

			_, _, _, err = p.Decode(data)
			check("Decode", err)
			img, _, _, release, err := p.DecodeContext(context.Background(), data)
			check("DecodeContext", err)
			if img != nil || release != nil {
				t.Errorf("DecodeContext: an image or a release with the error")
			}
			_, _, _, err = p.DecodeShrinkContext(context.Background(), data, 16)
			check("DecodeShrinkContext", err)

			// The worker goes on: the next image decodes.
			if w, h, err := p.TensorContext(context.Background(), dst, good); err != nil || w != 48 || h != 32 {
				t.Errorf("good image after the panic: %dx%d, %v", w, h, err)
			}
		})
	}
}
