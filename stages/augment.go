package stages

import (
	"image"
	"math"
	"math/rand/v2"
)

// The training augmentation of MAE pretraining (main_pretrain.py):
// RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=bicubic) then
// RandomHorizontalFlip. The crop is drawn with torchvision's algorithm from
// a Go random source, so a seed gives the same crops on every machine, not
// the crops PyTorch would draw; the resize is the PIL-exact bicubic of Resize.

// CropScale and CropRatio are the bounds of main_pretrain.py's crop: area
// fraction 0.2–1 and torchvision's default aspect ratios 3/4–4/3.
var (
	CropScale = [2]float64{0.2, 1.0}
	CropRatio = [2]float64{3.0 / 4.0, 4.0 / 3.0}
)

// RandomResizedCropRect is torchvision's RandomResizedCrop.get_params for
// a w×h image: up to ten draws of an area fraction in scale and a log-uniform
// aspect ratio in ratio, the first crop that fits wins, placed uniformly;
// else the centre crop clamped to the ratio bounds.
func RandomResizedCropRect(w, h int, scale, ratio [2]float64, r *rand.Rand) image.Rectangle {
	area := float64(w * h)
	lr0, lr1 := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * (scale[0] + (scale[1]-scale[0])*r.Float64())
		ar := math.Exp(lr0 + (lr1-lr0)*r.Float64())
		cw := int(math.RoundToEven(math.Sqrt(target * ar)))
		ch := int(math.RoundToEven(math.Sqrt(target / ar)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top := r.IntN(h - ch + 1)
			left := r.IntN(w - cw + 1)
			return image.Rect(left, top, left+cw, top+ch)
		}
	}
	in := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case in < ratio[0]:
		ch = int(math.RoundToEven(float64(cw) / ratio[0]))
	case in > ratio[1]:
		cw = int(math.RoundToEven(float64(ch) * ratio[1]))
	}
	top, left := (h-ch)/2, (w-cw)/2
	return image.Rect(left, top, left+cw, top+ch)
}

// ResizedCrop cuts crop out of src (opaque RGB from Decode), resizes it to
// size×size with the PIL bicubic of Resize, and mirrors it left–right when
// flip is set: torchvision's resized_crop then hflip.
func ResizedCrop(src *image.NRGBA, crop image.Rectangle, size int, flip bool) *image.NRGBA {
	crop = crop.Add(src.Rect.Min).Intersect(src.Rect)
	// A view of the crop with origin (0,0), which is what resampleWindow
	// indexes from: the same pixels without copying them.
	c := image.NRGBA{Pix: src.Pix[src.PixOffset(crop.Min.X, crop.Min.Y):], Stride: src.Stride, Rect: image.Rect(0, 0, crop.Dx(), crop.Dy())}
	out := resampleWindow(&c, size, size, image.Rect(0, 0, size, size))
	if flip {
		for y := 0; y < size; y++ {
			row := out.Pix[y*out.Stride : y*out.Stride+4*size]
			for i, j := 0, size-1; i < j; i, j = i+1, j-1 {
				a, b := row[4*i:4*i+4], row[4*j:4*j+4]
				for k := 0; k < 4; k++ {
					a[k], b[k] = b[k], a[k]
				}
			}
		}
	}
	return out
}

// ResizedCropTensor writes Normalize of ResizedCrop(src, crop, size, flip)
// into dst (float32 [3,size,size]). The resized image comes from the
// preprocessing's buffer pool and goes back to it, so a training step
// allocates no image per crop once warm.
func ResizedCropTensor(dst []float32, src *image.NRGBA, crop image.Rectangle, size int, flip bool) {
	out := ResizedCrop(src, crop, size, flip)
	Normalize(dst, out)
	outPool.put(out)
}

// ShrinkTo returns img resized (PIL bicubic) so that its shorter side is at
// most s, keeping the aspect ratio; smaller images come back as they are.
// Training keeps its images in memory this way: a crop of at least 20% of
// the area, resized to S, loses nothing visible when taken from a copy
// whose shorter side is 2·S.
func ShrinkTo(img image.Image, s int) *image.NRGBA {
	src := asNRGBA(img)
	w, h := src.Rect.Dx(), src.Rect.Dy()
	if min(w, h) <= s {
		return src
	}
	nw, nh := shorterSideTo(w, h, s)
	return resampleWindow(src, nw, nh, image.Rect(0, 0, nw, nh))
}
