package mae

// Patchify turns normalised CHW images [n,3,H,W] into patches
// [n, L, p·p·3] in the reference's (h, w, p, q, c) order, channels fastest.
func Patchify(dst, imgs []float32, n, size, p int) { patchLayout(dst, imgs, n, size, p, true) }

// Unpatchify is the inverse of Patchify.
func Unpatchify(dst, patches []float32, n, size, p int) { patchLayout(dst, patches, n, size, p, false) }

// patchLayout moves pixels between CHW images and patches: toPatches
// reads images and writes patches, else the reverse.
func patchLayout(dst, src []float32, n, size, p int, toPatches bool) {
	g := size / p
	pd := p * p * 3
	plane := size * size
	for b := 0; b < n; b++ {
		img := b * 3 * plane
		for h := 0; h < g; h++ {
			for w := 0; w < g; w++ {
				patch := (b*g*g + h*g + w) * pd
				for i := 0; i < p; i++ {
					for j := 0; j < p; j++ {
						pix := img + (h*p+i)*size + w*p + j
						o := patch + (i*p+j)*3
						for c := 0; c < 3; c++ {
							if toPatches {
								dst[o+c] = src[pix+c*plane]
							} else {
								dst[pix+c*plane] = src[o+c]
							}
						}
					}
				}
			}
		}
	}
}

// MaskPixels spreads a per-patch mask [n, L] (1 = removed) over the pixels
// of n images of size×size: dst [n, size, size], raster order, the one
// channel of the reference's unpatchify(mask repeated over p·p·3).
func MaskPixels(dst, mask []float32, n, size, p int) {
	g := size / p
	for b := 0; b < n; b++ {
		for y := 0; y < size; y++ {
			row := mask[b*g*g+(y/p)*g : b*g*g+(y/p)*g+g]
			out := dst[(b*size+y)*size : (b*size+y+1)*size]
			for x := range out {
				out[x] = row[x/p]
			}
		}
	}
}
