package stages

import (
	"context"
	"fmt"
	"image"
	"strings"

	"github.com/maeembed/maeembed/stages/imagenet"
)

// ImageNet normalisation constants (torchvision / MAE); package imagenet
// holds them with their inverse.
var (
	Mean = imagenet.Mean
	Std  = imagenet.Std
)

// normLUT[c][v] = (float32(v)/255 - Mean[c]) / Std[c], each step rounded to
// float32 exactly as torchvision's ToTensor (div 255) + Normalize
// (sub_ mean, div_ std) compute it.
var normLUT = func() (t [3][256]float32) {
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			x = x - Mean[c]
			t[c][v] = x / Std[c]
		}
	}
	return t
}()

// Normalize writes img as a CHW float32 tensor into dst (len 3·H·W),
// RGB/255 normalised with the ImageNet mean and std. It panics if dst has
// the wrong length (a programming error).
func Normalize(dst []float32, img image.Image) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	plane := w * h
	if len(dst) != 3*plane {
		panic(fmt.Sprintf("stages.Normalize: dst has %d floats, want 3·%d·%d = %d", len(dst), w, h, 3*plane))
	}
	r, g, bl := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	if n, ok := img.(*image.NRGBA); ok {
		for y := 0; y < h; y++ {
			row := n.Pix[y*n.Stride : y*n.Stride+4*w]
			o := y * w
			for x := 0; x < w; x++ {
				// Opaque by construction (Decode/Resize output); alpha is ignored.
				r[o+x] = normLUT[0][row[4*x]]
				g[o+x] = normLUT[1][row[4*x+1]]
				bl[o+x] = normLUT[2][row[4*x+2]]
			}
		}
		return
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			cr, cg, cb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := y*w + x
			r[i] = normLUT[0][cr>>8]
			g[i] = normLUT[1][cg>>8]
			bl[i] = normLUT[2][cb>>8]
		}
	}
}

// Error is a preprocessing failure tagged with the stage that failed
// ("decode" or "resize"), which becomes the `stage` column of error rows.
// Its message is Err's prefixed with the stage, unless Err's already
// starts with it (Decode's "decode jpeg: …"): never "decode: decode jpeg".
type Error struct {
	Stage string
	Err   error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if rest, ok := strings.CutPrefix(msg, e.Stage); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, ":")) {
		return msg
	}
	return e.Stage + ": " + msg
}
func (e *Error) Unwrap() error { return e.Err }

// Tensor runs Decode, Resize and Normalize, writing the Size×Size CHW tensor
// into dst (len 3·Size·Size). w and h are the decoded image's size.
// With a Budget it is TensorContext without cancellation.
func (p Preprocess) Tensor(dst []float32, data []byte) (w, h int, err error) {
	return p.TensorContext(context.Background(), dst, data)
}

// TensorContext is Tensor under the Budget: once the header is read, it
// waits for the memory the decoding will hold (or until ctx ends) and
// gives it back when the tensor is written. An image that needs more than
// the whole decoding budget fails with ErrOverBudget, stage "decode".
func (p Preprocess) TensorContext(ctx context.Context, dst []float32, data []byte) (w, h int, err error) {
	if want := 3 * p.Size * p.Size; len(dst) != want {
		return 0, 0, &Error{Stage: "resize", Err: fmt.Errorf("destination has %d floats, want %d", len(dst), want)}
	}
	hd, err := p.header(data)
	if err != nil {
		return 0, 0, &Error{Stage: "decode", Err: err}
	}
	giveBack, err := p.Budget.acquireDecode(ctx, p.decodeCost(hd, 0))
	if err != nil {
		return 0, 0, &Error{Stage: "decode", Err: fmt.Errorf("%s %dx%d: %w", hd.format, hd.cfg.Width, hd.cfg.Height, err)}
	}
	defer giveBack()
	img, w, h, err := hd.decode()
	if err != nil {
		return 0, 0, &Error{Stage: "decode", Err: err}
	}
	out, err := p.Resize(img)
	if err != nil {
		return w, h, &Error{Stage: "resize", Err: err}
	}
	Normalize(dst, out)
	release(img, out)
	return w, h, nil
}

// DecodeContext is Decode under the Budget: once the header is read, it
// waits for the memory decoding holds and Resize of the decoded image
// allocates (or until ctx ends); the caller gives it back with release
// once done with img and what it made of it. An image that needs more
// than the decoding budget fails with ErrOverBudget.
func (p Preprocess) DecodeContext(ctx context.Context, data []byte) (img image.Image, w, h int, release func(), err error) {
	return p.decodeContext(ctx, data, 0)
}

// DecodeShrinkContext is Decode and ShrinkTo(img, s) under the Budget:
// once the header is read, it waits for the memory both hold at their
// peak (or until ctx ends), and gives it back before it returns the
// shrunk image (the decoded one when its shorter side is at most s),
// which the caller keeps outside the budget (or in it: Budget.Keep). An
// image that needs more than the decoding budget fails with
// ErrOverBudget. w and h are the decoded image's size. A training set
// with augmentation is decoded so.
func (p Preprocess) DecodeShrinkContext(ctx context.Context, data []byte, s int) (img *image.NRGBA, w, h int, err error) {
	dec, w, h, release, err := p.decodeContext(ctx, data, s)
	if err != nil {
		return nil, 0, 0, err
	}
	defer release()
	return ShrinkTo(dec, s), w, h, nil
}

// decodeContext is DecodeContext for a consumer that shrinks the image
// (shrink > 0: decodeCost).
func (p Preprocess) decodeContext(ctx context.Context, data []byte, shrink int) (img image.Image, w, h int, release func(), err error) {
	hd, err := p.header(data)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	release, err = p.Budget.acquireDecode(ctx, p.decodeCost(hd, shrink))
	if err != nil {
		return nil, 0, 0, nil, fmt.Errorf("%s %dx%d: %w", hd.format, hd.cfg.Width, hd.cfg.Height, err)
	}
	if img, w, h, err = hd.decode(); err != nil {
		release()
		return nil, 0, 0, nil, err
	}
	return img, w, h, release, nil
}

// release returns Tensor's dead intermediates to their pools. out came from
// outPool, or it is img itself (resize none): each buffer goes back once.
func release(img, out image.Image) {
	d, _ := img.(*image.NRGBA)
	o, _ := out.(*image.NRGBA)
	if d != nil && d != o {
		decodedPool.put(d)
	}
	if o != nil {
		outPool.put(o)
	}
}
