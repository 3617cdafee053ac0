package mae

import "math"

// SinCosPosEmbed returns the fixed 2-D sin-cos position embedding
// [1+g·g, dim] of the reference (util/pos_embed.py), with a zero cls row.
// Patch k = row·g + col; the first dim/2 channels encode col, the last dim/2
// encode row, each half [sin(pos·ω_i)…, cos(pos·ω_i)…] with
// ω_i = 1/10000^(i/(dim/4)). Computed in float64 as numpy does, then rounded.
func SinCosPosEmbed(dim, g int) []float32 {
	out := make([]float32, (1+g*g)*dim)
	q := dim / 4
	omega := make([]float64, q)
	for i := range omega {
		omega[i] = 1 / math.Pow(10000, float64(i)/float64(q))
	}
	for row := 0; row < g; row++ {
		for col := 0; col < g; col++ {
			dst := out[(1+row*g+col)*dim:]
			for half, pos := range [2]float64{float64(col), float64(row)} {
				h := dst[half*dim/2:]
				for i, w := range omega {
					h[i] = float32(math.Sin(pos * w))
					h[q+i] = float32(math.Cos(pos * w))
				}
			}
		}
	}
	return out
}
