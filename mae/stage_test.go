package mae

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Images is unpatchify: patchifying its images gives the predictions back,
// and each pixel carries the mask of its patch.
func TestReconstructionImages(t *testing.T) {
	const n, size, p = 2, 12, 4
	l := (size / p) * (size / p)
	rng := rand.New(rand.NewPCG(1, 1))
	r := &Reconstruction{N: n, L: l, Pred: make([]float32, n*l*p*p*3), Masking: &Masking{Mask: make([]float32, n*l)}}
	for i := range r.Pred {
		r.Pred[i] = rng.Float32()
	}
	for i := range r.Masking.Mask {
		r.Masking.Mask[i] = float32(rng.IntN(2))
	}
	pred, mask := r.Images(nil, nil)
	back := make([]float32, len(r.Pred))
	Patchify(back, pred, n, size, p)
	if !slices.Equal(back, r.Pred) {
		t.Error("patchify(Images) differs from the predictions")
	}
	for b := 0; b < n; b++ {
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				if got, want := mask[(b*size+y)*size+x], r.Masking.Mask[b*l+(y/p)*(size/p)+x/p]; got != want {
					t.Fatalf("image %d pixel (%d,%d): mask %v, want %v", b, x, y, got, want)
				}
			}
		}
	}
}
