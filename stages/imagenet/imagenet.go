// Package imagenet holds the ImageNet normalisation (MAE's reference transform) and its
// inverse: the one home of the mean and std, shared by the preprocessing
// (package stages) and whatever turns model values back into pixels (the
// PNG panels of package sinks). It imports nothing, so both may use it.
package imagenet

// Mean and Std are the ImageNet statistics of torchvision and MAE, per RGB
// channel.
var (
	Mean = [3]float32{0.485, 0.456, 0.406}
	Std  = [3]float32{0.229, 0.224, 0.225}
)

// ToByte is the inverse of the normalisation for one value of channel c,
// as the MAE demo shows an image: de-normalise (v·std + mean), scale by
// 255, clip to [0, 255] and truncate (its .int()). Each step is rounded to
// float32 like PyTorch's ops (the explicit conversions also forbid FMA
// fusion), so pixels match the demo exactly. NaN gives 0.
func ToByte(v float32, c int) uint8 {
	x := float32(float32(v*Std[c])+Mean[c]) * 255
	if !(x > 0) { // also NaN
		return 0
	}
	if x >= 255 {
		return 255
	}
	return uint8(x)
}
