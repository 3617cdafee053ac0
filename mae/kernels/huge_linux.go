package kernels

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on amd64 and arm64
// Linux (4 KiB base pages).
const hugePage = 2 << 20

// hugeFloats returns n zeroed float32s for a buffer that kernels read over
// and over (packed weights and B, activations, scratch; see HugeFloats).
// From one huge page up it starts on a 2 MiB boundary and its whole 2 MiB
// pages are advised for transparent huge pages (MADV_HUGEPAGE: Linux
// gives them to advised memory under the default "madvise" policy, and
// to none other). A packed B block then spans a few TLB entries instead
// of one per 4 KiB, and is contiguous in physical memory, so its lines
// spread evenly over the L2 sets (the L2 is physically indexed) rather
// than piling up on the sets of whichever 4 KiB pages the kernel handed
// out. The tail past the last whole huge page stays on 4 KiB pages: a
// huge page there would be faulted in whole, up to 2 MiB of memory per
// buffer for nothing (ViT-B's 2.4 MB attention projections, 48 weights
// and their Strassen sums). The advice applies to the pages faulted in
// after it, which for a new large allocation is all of them; where huge
// pages are off it does nothing.
func hugeFloats(n int) []float32 {
	size := n * 4
	if size < hugePage {
		return make([]float32, n)
	}
	s := make([]float32, n+hugePage/4)
	off := (hugePage - int(uintptr(unsafe.Pointer(&s[0])))%hugePage) % hugePage / 4
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Pointer(&s[off])), size&^(hugePage-1)), unix.MADV_HUGEPAGE)
	return s[off : off+n : off+n]
}
