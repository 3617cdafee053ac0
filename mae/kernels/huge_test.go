package kernels

import (
	"os"
	"runtime"
	"testing"
)

// TestHugeFloats: the buffer has n zeroed elements and no spare capacity
// (it is not over-allocated to start on a huge-page boundary).
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
	before := hugeAdvised.Load()
	if s := HugeFloats(n); len(s) != n || cap(s) != n {
		t.Fatalf("off: len %d cap %d", len(s), cap(s))
	}
	if hugeAdvised.Load() != before {
		t.Error("off: a buffer was advised for huge pages")
	}
	var p hugePool
	off := p.get(n)
	p.put(off)
	if SetHugePages(true) {
		t.Fatal("SetHugePages(false) did not stick")
	}
	// 2 MiB + 4 MiB: at least two whole huge pages inside, wherever it starts.
	n = (6 << 20) / 4
	before = hugeAdvised.Load()
	if s := HugeFloats(n); len(s) != n || cap(s) != n {
		t.Fatalf("on: len %d cap %d", len(s), cap(s))
	}
	_, thp := os.Stat("/sys/kernel/mm/transparent_hugepage") // a kernel without THP refuses the advice
	if got := hugeAdvised.Load() - before; runtime.GOOS == "linux" && thp == nil && got < 4<<20 {
		t.Errorf("on: %d bytes of a 6 MiB buffer advised, want its whole huge pages (at least 4 MiB)", got)
	}
	on := p.get(n)
	if on == off {
		t.Error("the pool of the huge setting handed out the other setting's buffer")
	}
}
