package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"

	"golang.org/x/image/webp"
)

// WebP as libwebp (what PIL uses) decodes it. golang.org/x/image/webp
// decodes the VP8/VP8L bitstreams exactly but (1) returns lossy frames as
// image.YCbCr, whose JFIF full-range conversion is not VP8's: libwebp uses
// BT.601 studio-range coefficients and "fancy" (bilinear) chroma upsampling,
// and the difference reaches 18 levels; and (2) refuses animations, of
// which PIL gives the first frame on the canvas.

// decodeWebP decodes a still or animated WebP into an opaque NRGBA (from
// decodedPool), composited on white where it has alpha.
func decodeWebP(data []byte) (*image.NRGBA, error) {
	if a, ok, err := firstWebPFrame(data); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return a.render()
	}
	return decodeWebPStill(data)
}

func decodeWebPStill(data []byte) (*image.NRGBA, error) {
	src, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	switch m := src.(type) {
	case *image.YCbCr:
		return webpYUV(m, nil, 0), nil
	case *image.NYCbCrA:
		return webpYUV(&m.YCbCr, m.A, m.AStride), nil
	}
	b := src.Bounds()
	return toRGB(src, b.Dx(), b.Dy()), nil
}

// webpAnim is the first frame of an animated WebP, wrapped as a still
// WebP, and where it goes on the canvas.
type webpAnim struct {
	still            []byte
	canvasW, canvasH int
	at               image.Point
	alpha            bool // the canvas has alpha: uncovered pixels are transparent
}

// firstWebPFrame finds the first ANMF frame of an animated WebP (VP8X with
// the animation flag). ok is false for any other file.
func firstWebPFrame(data []byte) (a webpAnim, ok bool, err error) {
	chunks := riffChunks(data)
	if len(chunks) == 0 || chunks[0].id != "VP8X" || len(chunks[0].body) < 10 || chunks[0].body[0]&0x02 == 0 {
		return a, false, nil
	}
	x := chunks[0].body
	a.alpha = x[0]&0x10 != 0
	a.canvasW, a.canvasH = int(u24(x[4:]))+1, int(u24(x[7:]))+1
	for _, c := range chunks[1:] {
		if c.id != "ANMF" {
			continue
		}
		if len(c.body) < 16 {
			return a, true, errors.New("webp: ANMF chunk too short")
		}
		f := c.body
		a.at = image.Pt(2*int(u24(f[0:])), 2*int(u24(f[3:])))
		fw, fh := int(u24(f[6:]))+1, int(u24(f[9:]))+1
		var frame []byte
		hasAlpha := false
		for _, s := range riffChunksFrom(f[16:]) {
			switch s.id {
			case "ALPH":
				hasAlpha = true
				fallthrough
			case "VP8 ", "VP8L":
				frame = appendChunk(frame, s.id, s.body)
			}
		}
		if frame == nil {
			return a, true, errors.New("webp: first animation frame has no image data")
		}
		body := []byte("WEBP")
		if hasAlpha { // ALPH is only read behind a VP8X that announces it
			var vp8x [10]byte
			vp8x[0] = 0x10
			putU24(vp8x[4:], uint32(fw-1))
			putU24(vp8x[7:], uint32(fh-1))
			body = appendChunk(body, "VP8X", vp8x[:])
		}
		body = append(body, frame...)
		a.still = appendChunk(nil, "RIFF", body)
		return a, true, nil
	}
	return a, true, errors.New("webp: animation without frames")
}

// render decodes the frame and places it on the canvas, as libwebp's
// WebPAnimDecoder does for the first frame: the canvas starts transparent
// black (white once composited; black where the canvas has no alpha).
func (a webpAnim) render() (*image.NRGBA, error) {
	f, err := decodeWebPStill(a.still)
	if err != nil {
		return nil, fmt.Errorf("first animation frame: %w", err)
	}
	canvas := decodedPool.get(a.canvasW, a.canvasH)
	fill := uint8(0)
	if a.alpha {
		fill = 255
	}
	for i := range canvas.Pix {
		canvas.Pix[i] = fill
	}
	for i := 3; i < len(canvas.Pix); i += 4 {
		canvas.Pix[i] = 255
	}
	r := f.Rect.Add(a.at).Intersect(canvas.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(canvas.Pix[canvas.PixOffset(r.Min.X, y):canvas.PixOffset(r.Max.X, y)], f.Pix[f.PixOffset(r.Min.X-a.at.X, y-a.at.Y):])
	}
	decodedPool.put(f)
	return canvas, nil
}

type riffChunk struct {
	id   string
	body []byte
}

// riffChunks lists the chunks of a RIFF WEBP file, stopping at the first
// one that does not fit.
func riffChunks(data []byte) []riffChunk {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil
	}
	return riffChunksFrom(data[12:])
}

func riffChunksFrom(b []byte) []riffChunk {
	var out []riffChunk
	for len(b) >= 8 {
		n := uint64(binary.LittleEndian.Uint32(b[4:]))
		if n > uint64(len(b)-8) {
			break
		}
		out = append(out, riffChunk{string(b[:4]), b[8 : 8+n]})
		n += n & 1 // padded to an even size
		if n > uint64(len(b)-8) {
			break
		}
		b = b[8+n:]
	}
	return out
}

func appendChunk(dst []byte, id string, body []byte) []byte {
	dst = append(dst, id...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	if len(body)&1 == 1 {
		dst = append(dst, 0)
	}
	return dst
}

func u24(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 }

func putU24(b []byte, v uint32) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }

// webpYUV converts a decoded VP8 frame (4:2:0) to opaque NRGBA exactly as
// libwebp's default output path does (src/dsp/upsampling.c UPSAMPLE_FUNC,
// src/dec/io_dec.c EmitFancyRGB, src/dsp/yuv.h VP8YUVToRGB), then
// composites the optional alpha plane on white.
func webpYUV(m *image.YCbCr, alpha []byte, astride int) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dst := decodedPool.get(w, h)
	yRow := func(y int) []byte { return m.Y[y*m.YStride : y*m.YStride+w] }
	uvw := (w + 1) / 2
	uRow := func(y int) []byte { return m.Cb[y*m.CStride : y*m.CStride+uvw] }
	vRow := func(y int) []byte { return m.Cr[y*m.CStride : y*m.CStride+uvw] }
	dRow := func(y int) []byte { return dst.Pix[y*dst.Stride : y*dst.Stride+4*w] }
	// The first row mirrors its chroma; then rows pair up between chroma
	// rows (y-1)/2 and (y+1)/2; an even height ends with a lone row.
	upsamplePair(yRow(0), nil, uRow(0), vRow(0), uRow(0), vRow(0), dRow(0), nil, w)
	for y := 1; y+1 < h; y += 2 {
		upsamplePair(yRow(y), yRow(y+1), uRow((y-1)/2), vRow((y-1)/2), uRow((y+1)/2), vRow((y+1)/2), dRow(y), dRow(y+1), w)
	}
	if h > 1 && h%2 == 0 {
		c := (h - 1) / 2
		upsamplePair(yRow(h-1), nil, uRow(c), vRow(c), uRow(c), vRow(c), dRow(h-1), nil, w)
	}
	if alpha != nil {
		for y := 0; y < h; y++ {
			row, a := dRow(y), alpha[y*astride:y*astride+w]
			for x, av := range a {
				row[4*x] = overWhite(row[4*x], av)
				row[4*x+1] = overWhite(row[4*x+1], av)
				row[4*x+2] = overWhite(row[4*x+2], av)
			}
		}
	}
	return dst
}

// upsamplePair is libwebp's UPSAMPLE_FUNC: chroma interpolated with weights
// 9/16, 3/16, 3/16, 1/16 from the two chroma rows around the pair of luma
// rows, u and v packed in one uint32 as libwebp does (so the rounding is
// the same).
func upsamplePair(topY, botY, topU, topV, curU, curV, topDst, botDst []byte, n int) {
	load := func(u, v byte) uint32 { return uint32(u) | uint32(v)<<16 }
	put := func(dst []byte, x int, y byte, uv uint32) {
		yuvToRGB(dst[4*x:4*x+4], int(y), int(uv&0xff), int(uv>>16))
	}
	last := (n - 1) >> 1
	tl := load(topU[0], topV[0])
	l := load(curU[0], curV[0])
	put(topDst, 0, topY[0], (3*tl+l+0x00020002)>>2)
	if botY != nil {
		put(botDst, 0, botY[0], (3*l+tl+0x00020002)>>2)
	}
	for x := 1; x <= last; x++ {
		t := load(topU[x], topV[x])
		uv := load(curU[x], curV[x])
		avg := tl + t + l + uv + 0x00080008
		d12 := (avg + 2*(t+l)) >> 3
		d03 := (avg + 2*(tl+uv)) >> 3
		put(topDst, 2*x-1, topY[2*x-1], (d12+tl)>>1)
		put(topDst, 2*x, topY[2*x], (d03+t)>>1)
		if botY != nil {
			put(botDst, 2*x-1, botY[2*x-1], (d03+l)>>1)
			put(botDst, 2*x, botY[2*x], (d12+uv)>>1)
		}
		tl, l = t, uv
	}
	if n&1 == 0 {
		put(topDst, n-1, topY[n-1], (3*tl+l+0x00020002)>>2)
		if botY != nil {
			put(botDst, n-1, botY[n-1], (3*l+tl+0x00020002)>>2)
		}
	}
}

// yuvToRGB is libwebp's VP8YUVToR/G/B: 14-bit fixed point, BT.601 studio
// range.
func yuvToRGB(dst []byte, y, u, v int) {
	mulHi := func(v, c int) int { return (v * c) >> 8 }
	clip := func(v int) byte {
		if v&^16383 == 0 {
			return byte(v >> 6)
		}
		if v < 0 {
			return 0
		}
		return 255
	}
	yy := mulHi(y, 19077)
	dst[0] = clip(yy + mulHi(v, 26149) - 14234)
	dst[1] = clip(yy - mulHi(u, 6419) - mulHi(v, 13320) + 8708)
	dst[2] = clip(yy + mulHi(u, 33050) - 17685)
	dst[3] = 255
}
