package imagenet

import "testing"

// ToByte inverts the normalisation of every byte value (v/255 − mean)/std,
// up to the truncation of the demo, and clips what lies outside.
func TestToByteInvertsNormalisation(t *testing.T) {
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			n := (float32(v)/255 - Mean[c]) / Std[c]
			if got := int(ToByte(n, c)); got != v && got != v-1 { // float32 rounding may land just below
				t.Errorf("channel %d value %d: back to %d", c, v, got)
			}
		}
		if ToByte(100, c) != 255 || ToByte(-100, c) != 0 {
			t.Errorf("channel %d: no clipping", c)
		}
	}
}
