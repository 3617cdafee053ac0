package kernels

import (
	"runtime"
	"testing"
	"unsafe"
)

// TestHugeFloats: the buffer has n zeroed elements and no spare capacity,
// and from one huge page up (on Linux) it starts on a huge-page boundary.
func TestHugeFloats(t *testing.T) {
	for _, n := range []int{1, 1000, 2 << 20 / 4, 3<<20/4 + 5} {
		s := hugeFloats(n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("n=%d: len %d cap %d", n, len(s), cap(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("n=%d: s[%d] = %v", n, i, v)
			}
		}
		s[0], s[n-1] = 1, 2
		if runtime.GOOS == "linux" && n*4 >= 2<<20 {
			if p := uintptr(unsafe.Pointer(&s[0])); p%(2<<20) != 0 {
				t.Errorf("n=%d: starts at %#x, not on a 2 MiB boundary", n, p)
			}
		}
	}
}
