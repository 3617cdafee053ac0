// Package stages is the one preprocessing definition every maeembed command
// shares: encoded image bytes → decoded RGB → resized S×S → normalised CHW
// float32 tensor, as MAE's reference transform does it.
package stages

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"  // registers JPEG (baseline, progressive, CMYK/YCCK)
	_ "image/png" // registers PNG (8/16-bit, palette, alpha)
	"io"
	"runtime/debug"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// DefaultMaxPixels is PIL's Image.MAX_IMAGE_PIXELS: larger images are
// treated as decompression bombs.
const DefaultMaxPixels int64 = 178956970

// ResizeMode selects how an image is brought to S×S.
type ResizeMode string

const (
	CenterCrop ResizeMode = "center-crop" // shorter side to round(S/0.875), centre crop S×S
	Squash     ResizeMode = "squash"      // straight to S×S
	NoResize   ResizeMode = "none"        // must already be S×S
)

// ParseResizeMode validates a --resize flag value.
func ParseResizeMode(s string) (ResizeMode, error) {
	switch m := ResizeMode(s); m {
	case CenterCrop, Squash, NoResize:
		return m, nil
	}
	return "", fmt.Errorf("resize mode %q: want center-crop, squash or none", s)
}

// Preprocess is the preprocessing configuration. The zero MaxPixels means
// DefaultMaxPixels.
type Preprocess struct {
	Size      int        `yaml:"size"`
	Mode      ResizeMode `yaml:"resize"`
	MaxPixels int64      `yaml:"max_pixels"`
	// Budget, when set, bounds the decoding memory of all the workers
	// sharing it (TensorContext); nil is unbounded.
	Budget *Budget `yaml:"-"`
}

// String describes the preprocessing for output metadata
// (maeembed.preprocess).
func (p Preprocess) String() string {
	return fmt.Sprintf("resize=%s size=%d interpolation=bicubic-pil normalize=imagenet", p.Mode, p.Size)
}

func (p Preprocess) maxPixels() int64 {
	if p.MaxPixels > 0 {
		return p.MaxPixels
	}
	return DefaultMaxPixels
}

// ErrTooLarge is wrapped by Decode when the header announces more pixels
// than allowed.
var ErrTooLarge = errors.New("image too large")

// Decode decodes an encoded image into opaque 8-bit RGB (*image.NRGBA with
// alpha 255): EXIF orientation applied (JPEG, PNG, WebP, TIFF: see
// orientation), alpha composited on white,
// grayscale/palette/CMYK/16-bit converted. The header is read first and
// images above MaxPixels are refused before any pixel is decoded (with
// ErrTooLarge), and so are headers that claim more pixels than the file
// can hold in its format (ErrCorruptHeader). w and h
// are the size of the returned image (after EXIF orientation). Decode does
// not wait for the Budget: TensorContext does.
func (p Preprocess) Decode(data []byte) (img image.Image, w, h int, err error) {
	hd, err := p.header(data)
	if err != nil {
		return nil, 0, 0, err
	}
	return hd.decode()
}

// PanicError is a recovered panic. The errors of Decode, Tensor and the
// other decoding functions wrap one when a decoder (this package's own
// BMP, TIFF, WebP and lenient JPEG/PNG code, or a library's) panicked on
// an image: data malformed in a way the decoder does not guard against.
// The panic is that image's error (stage "decode"), never the process's
// end: one bad input must not stop a run or crash-loop a stream worker.
type PanicError struct {
	Value any    // what was panicked with
	Stack []byte // the stack of the panicking goroutine, for the log
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// recoverDecoder, deferred by the functions that run decoders, turns a
// panic into *err, "what format: decoder failed on malformed data (panic:
// …)". It allocates only when there was a panic.
func recoverDecoder(err *error, what, format string) {
	v := recover()
	if v == nil {
		return
	}
	pe := &PanicError{Value: v, Stack: debug.Stack()}
	if format != "" {
		what += " " + format
	}
	*err = fmt.Errorf("%s: decoder failed on malformed data (%w)", what, pe)
}

// header is what is known of an image before its pixels are decoded.
type header struct {
	data   []byte // as the standard decoder will read it (gifRepair)
	format string
	cfg    image.Config
	orient int // EXIF orientation, 0 or 1 when none applies
}

// header reads and checks the header: size (ErrCorruptHeader when the
// file cannot hold it: checkClaim), pixel limit, orientation.
func (p Preprocess) header(data []byte) (_ header, err error) {
	// The header readers are decoders too (DecodeConfig, bmpFallback, the
	// TIFF and EXIF parsers).
	defer recoverDecoder(&err, "read header", "")
	if len(data) == 0 {
		return header{}, errors.New("empty input")
	}
	// Before the header check, so that the pixel limit sees the real size.
	data = gifRepair(data)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if b, ok := bmpFallback(data); err != nil && ok {
		cfg, format, err = b.config(), "bmp", nil
	}
	if rgba, ok := tiffCMYKAsRGBA(data); err != nil && ok {
		// x/image/tiff never reports CMYK itself: the model marks the rewrite.
		if c, _, err2 := image.DecodeConfig(bytes.NewReader(rgba)); err2 == nil {
			data, cfg, format, err = rgba, c, "tiff", nil
			cfg.ColorModel = color.CMYKModel
		}
	}
	if isTIFFJPEG(data) {
		// golang.org/x/image/tiff refuses them (YCbCr in the header,
		// JPEG in the strips): decodeTIFFJPEG reads them.
		cfg, err = tiffJPEGConfig(data)
		format = "tiff"
	}
	if err != nil {
		return header{}, fmt.Errorf("read header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return header{}, fmt.Errorf("%s header: invalid size %dx%d", format, cfg.Width, cfg.Height)
	}
	// Before the pixel limit: a size the file cannot hold is corrupt
	// data, whatever the limit.
	if err := checkClaim(format, data, cfg.Width, cfg.Height); err != nil {
		return header{}, err
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > p.maxPixels() {
		return header{}, fmt.Errorf("%s %dx%d = %d pixels > limit %d: %w", format, cfg.Width, cfg.Height, px, p.maxPixels(), ErrTooLarge)
	}
	return header{data: data, format: format, cfg: cfg, orient: orientation(format, data)}, nil
}

func (hd header) decode() (img image.Image, w, h int, err error) {
	// A panic leaves the results zero (nil image), as an error does.
	defer recoverDecoder(&err, "decode", hd.format)
	rgb, err := decodeRGB(hd.data, hd.format, hd.cfg)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode %s: %w", hd.format, err)
	}
	if hd.orient > 1 {
		oriented := orient(rgb, hd.orient)
		decodedPool.put(rgb)
		rgb = oriented
	}
	b := rgb.Bounds()
	return rgb, b.Dx(), b.Dy(), nil
}

// decodeRGB decodes pixels whose header (format, cfg) was read already.
func decodeRGB(data []byte, format string, cfg image.Config) (*image.NRGBA, error) {
	rgb, err := decodeRGBFrom(data, nil, format, cfg)
	if err == nil || format != "jpeg" {
		return rgb, err
	}
	// image/jpeg needs the EOI marker; PIL decodes some JPEGs without it.
	if tail, ok := jpegMissingEOI(data); ok {
		return decodeRGBFrom(data, tail, format, cfg)
	}
	if (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, jpeg.FormatError("short Huffman data"))) && !bytes.HasSuffix(data, []byte{0xff, 0xd9}) {
		return nil, fmt.Errorf("truncated: the file ends before its EOI marker (%w)", err)
	}
	return nil, err
}

// decodeRGBFrom is decodeRGB of data followed by tail: a JPEG's missing
// EOI marker (jpegMissingEOI), or nil.
func decodeRGBFrom(data, tail []byte, format string, cfg image.Config) (*image.NRGBA, error) {
	if format == "webp" {
		return decodeWebP(data)
	}
	var src image.Image
	var err error
	if b, ok := bmpFallback(data); ok && format == "bmp" {
		src, err = b.decode()
	} else if format == "tiff" && cfg.ColorModel == color.CMYKModel {
		// tiffCMYKAsRGBA's rewrite: C, M, Y, K arrive as R, G, B, A.
		if src, _, err = image.Decode(bytes.NewReader(data)); err == nil {
			m, ok := src.(*image.NRGBA)
			if !ok || m.Rect.Min != (image.Point{}) {
				return nil, fmt.Errorf("tiff: CMYK decoded as %T", src)
			}
			rgb := decodedPool.get(cfg.Width, cfg.Height)
			copy(rgb.Pix, m.Pix)
			cmykToRGB(rgb)
			return rgb, nil
		}
	} else if format == "tiff" && isTIFFJPEG(data) {
		return decodeTIFFJPEG(data, cfg.Width, cfg.Height)
	} else if format == "jpeg" && cfg.ColorModel == color.CMYKModel {
		if tail != nil {
			// A copy, which CMYK's decoding estimate leaves room for.
			data = append(bytes.Clone(data), tail...)
		}
		if rgb, ok, err := decodeJPEG4(data, cfg.Width, cfg.Height); ok {
			return rgb, err
		}
		src, _, err = image.Decode(bytes.NewReader(data))
	} else if format == "jpeg" && tail != nil {
		// Read through, not copied: the budget does not count a copy.
		src, err = jpeg.Decode(io.MultiReader(bytes.NewReader(data), bytes.NewReader(tail)))
	} else if format == "gif" {
		// First frame only, placed on the logical screen like PIL does.
		src, err = gif.Decode(bytes.NewReader(data))
	} else {
		src, _, err = image.Decode(bytes.NewReader(data))
	}
	if err != nil && format == "png" {
		if fixed, err2 := decodePNGLenient(data); err2 == nil {
			src, err = fixed, nil
		}
	}
	if err != nil {
		return nil, err
	}
	rgb := toRGB(src, cfg.Width, cfg.Height)
	if format == "tiff" && ccittBlackIsZero(data) {
		for i := 0; i < len(rgb.Pix); i += 4 {
			rgb.Pix[i], rgb.Pix[i+1], rgb.Pix[i+2] = 255-rgb.Pix[i], 255-rgb.Pix[i+1], 255-rgb.Pix[i+2]
		}
	}
	return rgb, nil
}

// ccittBlackIsZero tells a fax-compressed (CCITT) TIFF with
// PhotometricInterpretation BlackIsZero. libtiff (PIL) decodes a CCITT
// "white" run as 0 bits whatever the photometric tag, so there it is
// black; golang.org/x/image/tiff always makes it white: inverted.
func ccittBlackIsZero(data []byte) bool {
	c, _ := tiffTag(data, 259)
	p, ok := tiffTag(data, 262)
	return c >= 2 && c <= 4 && ok && p == 1
}

// toRGB converts any decoded image to an opaque NRGBA with origin (0,0),
// compositing alpha on white. Common decoder outputs take fast paths.
func toRGB(src image.Image, cw, ch int) *image.NRGBA {
	sb := src.Bounds()
	w, h := sb.Dx(), sb.Dy()
	off := image.Point{}
	if _, ok := src.(*image.Paletted); ok && (sb.Min.X != 0 || sb.Min.Y != 0 || w != cw || h != ch) {
		// A GIF frame smaller than its logical screen: the rest is filled
		// below, as PIL does.
		w, h = cw, ch
		off = sb.Min
	}
	dst := decodedPool.get(w, h)
	switch s := src.(type) {
	case *image.YCbCr:
		if sb.Min == (image.Point{}) {
			ycbcrToNRGBA(s, dst)
			break
		}
		for y := 0; y < h; y++ {
			row := dst.Pix[y*dst.Stride:]
			for x := 0; x < w; x++ {
				yi := s.YOffset(sb.Min.X+x, sb.Min.Y+y)
				ci := s.COffset(sb.Min.X+x, sb.Min.Y+y)
				r, g, b := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = r, g, b, 255
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := dst.Pix[y*dst.Stride:]
			srow := s.Pix[y*s.Stride:]
			for x := 0; x < w; x++ {
				v := srow[x]
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = v, v, v, 255
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := dst.Pix[y*dst.Stride:]
			srow := s.Pix[y*s.Stride:]
			for x := 0; x < w; x++ {
				a := srow[4*x+3]
				row[4*x] = overWhite(srow[4*x], a)
				row[4*x+1] = overWhite(srow[4*x+1], a)
				row[4*x+2] = overWhite(srow[4*x+2], a)
				row[4*x+3] = 255
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := dst.Pix[y*dst.Stride:]
			srow := s.Pix[y*s.Stride:]
			for x := 0; x < w; x++ {
				bg := 255 - srow[4*x+3] // premultiplied: c + (1-a)·white
				row[4*x] = srow[4*x] + bg
				row[4*x+1] = srow[4*x+1] + bg
				row[4*x+2] = srow[4*x+2] + bg
				row[4*x+3] = 255
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range s.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{overWhite(n.R, n.A), overWhite(n.G, n.A), overWhite(n.B, n.A)}
		}
		for i := len(s.Palette); i < 256; i++ {
			lut[i] = [3]uint8{0, 0, 0} // out-of-palette index: black, as image/color would
		}
		if off != (image.Point{}) || w != sb.Dx() || h != sb.Dy() {
			// Outside the frame PIL's first frame holds the transparent
			// index (white once composited) if the frame has one, else 0.
			fill := lut[0]
			for i, c := range s.Palette {
				if _, _, _, a := c.RGBA(); a == 0 {
					fill = lut[i]
					break
				}
			}
			for i := 0; i < len(dst.Pix); i += 4 {
				dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = fill[0], fill[1], fill[2], 255
			}
		}
		for y := 0; y < sb.Dy(); y++ {
			row := dst.Pix[(y+off.Y)*dst.Stride+4*off.X:]
			srow := s.Pix[y*s.Stride:]
			for x := 0; x < sb.Dx(); x++ {
				c := lut[srow[x]]
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c[0], c[1], c[2], 255
			}
		}
	default:
		// 16-bit, CMYK, Gray16, NYCbCrA…: through color.Color. RGBA() is
		// premultiplied 16-bit; keep the high byte after compositing.
		for y := 0; y < h; y++ {
			row := dst.Pix[y*dst.Stride:]
			for x := 0; x < w; x++ {
				r, g, b, a := src.At(sb.Min.X+x, sb.Min.Y+y).RGBA()
				bg := 0xffff - a
				row[4*x] = uint8((r + bg) >> 8)
				row[4*x+1] = uint8((g + bg) >> 8)
				row[4*x+2] = uint8((b + bg) >> 8)
				row[4*x+3] = 255
			}
		}
	}
	return dst
}

// overWhite composites a straight-alpha channel value on white, rounded.
func overWhite(c, a uint8) uint8 {
	if a == 255 {
		return c
	}
	return uint8((uint32(c)*uint32(a) + 255*uint32(255-a) + 127) / 255)
}
