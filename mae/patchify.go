package mae

// Patchify turns normalised CHW images [n,3,H,W] into patches
// [n, L, p·p·3] in the reference's (h, w, p, q, c) order, channels fastest.
func Patchify(dst, imgs []float32, n, size, p int) {
	g := size / p
	pd := p * p * 3
	plane := size * size
	for b := 0; b < n; b++ {
		img := imgs[b*3*plane:]
		out := dst[b*g*g*pd:]
		for h := 0; h < g; h++ {
			for w := 0; w < g; w++ {
				patch := out[(h*g+w)*pd:]
				for i := 0; i < p; i++ {
					for j := 0; j < p; j++ {
						pix := (h*p+i)*size + w*p + j
						o := (i*p + j) * 3
						patch[o] = img[pix]
						patch[o+1] = img[plane+pix]
						patch[o+2] = img[2*plane+pix]
					}
				}
			}
		}
	}
}

// Unpatchify is the inverse of Patchify.
func Unpatchify(dst, patches []float32, n, size, p int) {
	g := size / p
	pd := p * p * 3
	plane := size * size
	for b := 0; b < n; b++ {
		img := dst[b*3*plane:]
		in := patches[b*g*g*pd:]
		for h := 0; h < g; h++ {
			for w := 0; w < g; w++ {
				patch := in[(h*g+w)*pd:]
				for i := 0; i < p; i++ {
					for j := 0; j < p; j++ {
						pix := (h*p+i)*size + w*p + j
						o := (i*p + j) * 3
						img[pix] = patch[o]
						img[plane+pix] = patch[o+1]
						img[2*plane+pix] = patch[o+2]
					}
				}
			}
		}
	}
}
