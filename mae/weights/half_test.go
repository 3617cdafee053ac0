package weights

import (
	"math"
	"testing"
)

// Every half value survives float16 → float32 → float16, and float32 values
// between two halves round to the nearer one (ties to the even one).
func TestFloat32To16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := float16To32(uint16(h))
		if math.IsNaN(float64(f)) {
			if g := float16To32(float32To16(f)); !math.IsNaN(float64(g)) {
				t.Fatalf("NaN %#04x came back as %v", h, g)
			}
			continue
		}
		if got := float32To16(f); got != uint16(h) {
			t.Fatalf("half %#04x = %v came back as %#04x", h, f, got)
		}
		// The midpoint to the next half (same sign) rounds to the even one.
		if h&0x7fff >= 0x7bff {
			continue
		}
		next := float16To32(uint16(h + 1))
		mid := float32((float64(f) + float64(next)) / 2)
		want := uint16(h)
		if h&1 == 1 {
			want = uint16(h + 1)
		}
		if got := float32To16(mid); got != want {
			t.Fatalf("midpoint of %#04x and %#04x rounded to %#04x, want %#04x", h, h+1, got, want)
		}
		above := math.Nextafter32(mid, next)
		if got := float32To16(above); got != uint16(h+1) && above != next {
			t.Fatalf("just above the midpoint of %#04x: got %#04x", h, got)
		}
	}
	if got := float32To16(70000); got != 0x7c00 {
		t.Errorf("70000 -> %#04x, want +inf", got)
	}
}
