package mae

import "math"

// Loss writes into dst [n] the per-image reconstruction loss of the
// reference's forward_loss: per-patch mean squared error between pred and the
// target patches, averaged over removed patches (mask = 1). With normPix the
// target patch is normalised by its mean and unbiased variance
// ((var+1e-6)^0.5). Sums run in float64. An image with no removed patch
// (mask ratio 0) gets NaN, as the reference's (loss·mask).sum()/mask.sum() =
// 0/0 does: nothing was reconstructed, so there is no loss, and 0 would read
// as a perfect reconstruction.
func Loss(dst, pred, target, mask []float32, n, l, pd int, normPix bool) {
	for b := 0; b < n; b++ {
		var num, den float64
		for i := 0; i < l; i++ {
			k := b*l + i
			if mask[k] == 0 {
				continue
			}
			pp := pred[k*pd : (k+1)*pd]
			tt := target[k*pd : (k+1)*pd]
			mean, inv := 0.0, 1.0
			if normPix {
				mean, inv = patchNorm(tt)
			}
			var se float64
			for j, v := range tt {
				e := float64(pp[j]) - (float64(v)-mean)*inv
				se += e * e
			}
			num += se / float64(pd) * float64(mask[k])
			den += float64(mask[k])
		}
		if den > 0 {
			dst[b] = float32(num / den)
		} else {
			dst[b] = float32(math.NaN())
		}
	}
}

// patchNorm returns the mean of t and 1/sqrt(unbiased var + 1e-6), the
// statistics norm_pix_loss normalises a target patch with.
func patchNorm(t []float32) (mean, inv float64) {
	var s float64
	for _, v := range t {
		s += float64(v)
	}
	mean = s / float64(len(t))
	var v2 float64
	for _, v := range t {
		dv := float64(v) - mean
		v2 += dv * dv
	}
	return mean, 1 / math.Sqrt(v2/float64(len(t)-1)+1e-6)
}
