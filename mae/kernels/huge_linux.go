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
// The whole 2 MiB pages inside it are advised for transparent huge pages
// (MADV_HUGEPAGE: Linux gives them to advised memory under the default
// "madvise" policy, and to none other). A packed B block then spans a few
// TLB entries instead of one per 4 KiB, and is contiguous in physical
// memory, so its lines spread evenly over the L2 sets (the L2 is
// physically indexed) rather than piling up on the sets of whichever
// 4 KiB pages the kernel handed out. The head before the first 2 MiB
// boundary and the tail after the last stay on 4 KiB pages: a huge page
// there would be faulted in whole, and allocating more to start on a
// boundary costs up to 2 MiB per buffer, which the Go heap zeroes when it
// reuses memory (ViT-B: +76–110 MB peak RSS over 48 weights and their
// Strassen sums, for no speed measurable over the interior pages alone).
// The advice applies to the pages faulted in after it, which for a new
// large allocation is all of them; where huge pages are off it does
// nothing.
func hugeFloats(n int) []float32 {
	size := n * 4
	if size < hugePage {
		return make([]float32, n)
	}
	s := make([]float32, n)
	off := (hugePage - int(uintptr(unsafe.Pointer(&s[0])))%hugePage) % hugePage // bytes to the first boundary
	if whole := (size - off) &^ (hugePage - 1); whole > 0 {
		if unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&s[0]), off)), whole), unix.MADV_HUGEPAGE) == nil {
			hugeAdvised.Add(int64(whole))
		}
	}
	return s
}
