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

// TestSetHugePages: HugeFloats follows the setting, which SetHugePages
// returns, and the per-setting scratch pools do not mix.
func TestSetHugePages(t *testing.T) {
	defer SetHugePages(SetHugePages(true))
	n := 3<<20/4 + 5
	if !SetHugePages(false) {
		t.Fatal("huge pages were not on by default")
	}
	if s := HugeFloats(n); len(s) != n || cap(s) != n {
		t.Fatalf("off: len %d cap %d", len(s), cap(s))
	}
	var p hugePool
	off := p.get(n)
	p.put(off)
	if SetHugePages(true) {
		t.Fatal("SetHugePages(false) did not stick")
	}
	s := HugeFloats(n)
	if runtime.GOOS == "linux" && uintptr(unsafe.Pointer(&s[0]))%(2<<20) != 0 {
		t.Error("on: not on a 2 MiB boundary")
	}
	on := p.get(n)
	if on == off {
		t.Error("the pool of the huge setting handed out the other setting's buffer")
	}
	if runtime.GOOS == "linux" && uintptr(unsafe.Pointer(&(*on)[0]))%(2<<20) != 0 {
		t.Error("pooled buffer not on a 2 MiB boundary")
	}
}
