package kernels

import "testing"

func TestUnpackInvertsPack(t *testing.T) {
	for _, s := range [][2]int{{1, 1}, {33, 7}, {64, 100}, {5, 1000}} {
		n, k := s[0], s[1]
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(i%97) - 48
		}
		got := make([]float32, n*k)
		UnpackLinear(PackLinear(w, n, k), got)
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("%d×%d: element %d is %v, want %v", n, k, i, got[i], w[i])
			}
		}
	}
}
