package kernels

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns n float32 that end where an inaccessible page begins, so
// that a kernel reading or writing past them faults instead of touching
// other data unseen (the assembly has no bounds checks).
func guarded(t *testing.T, n int) []float32 {
	t.Helper()
	ps := syscall.Getpagesize()
	pages := (n*4+ps-1)/ps + 1
	mem, err := syscall.Mmap(-1, 0, pages*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[(pages-1)*ps:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[(pages-1)*ps-n*4])), n)
}

// TestLinearGuardPages: Linear and NormLinear (plain GEMM and, from 2
// rows, Strassen–Winograd) on 1..13 rows read x and write y only within
// their m rows, with x, h and y each ending at an inaccessible page: the
// edge-row kernels (1..11 rows) address A and C in place.
func TestLinearGuardPages(t *testing.T) {
	withStrassenAt(t, 2, 64, 2)
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, k := range []int{2, 17, 64, 100} {
			for _, n := range []int{40, 64, 96, 128} {
				w, bias := randSlice(r, n*k), randSlice(r, n)
				p := PackLinear(w, n, k)
				norm := Norm{randSlice(r, k), randSlice(r, k), 1e-6}
				for m := 1; m <= 13; m++ {
					x, h, y := guarded(t, m*k), guarded(t, m*k), guarded(t, m*n)
					copy(x, randSlice(r, m*k))
					what := fmt.Sprintf("k=%d n=%d m=%d", k, n, m)
					Linear(y, x, m, p, bias, ActGELU, nil)
					want := refGemm(false, true, m, n, k, 1, x, k, w, k, 0, make([]float32, m*n), n)
					for i := range want {
						want[i] = geluExact(want[i] + float64(bias[i%n]))
					}
					within(t, what, y, want, strassenTol(k))
					All.NormLinear(y, h, x, m, norm, p, bias, ActGELU)
					want = refGemm(false, true, m, n, k, 1, h, k, w, k, 0, make([]float32, m*n), n)
					for i := range want {
						want[i] = geluExact(want[i] + float64(bias[i%n]))
					}
					within(t, what+" NormLinear", y, want, strassenTol(k))
				}
			}
		}
	})
}
