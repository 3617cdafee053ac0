// Package kernels holds the CPU compute kernels of maeembed: one packed,
// cache-blocked SGEMM (Gemm, Linear) plus the fused ops of a ViT block
// (LayerNorm, Attention, Softmax, GELU). Everything is row-major float32,
// uses every core (GOMAXPROCS) through a persistent worker pool, and
// allocates nothing per call after warm-up.
//
// Three code paths share one driver: AVX-512 and AVX2+FMA assembly
// micro-kernels, chosen at init from CPU features, and a pure-Go twin that
// the tests compare them against. MAEEMBED_KERNEL=avx512|avx2|generic
// forces a path (read at init); SetPath does the same at run time. A
// Linear weight can also be held in bf16 or int8 (Packed.Convert), with
// VDPBF16PS, VPDPBUSD or VPMADDUBSW kernels where the CPU has them.
package kernels

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// Activation selects the element-wise function fused into Linear's epilogue.
type Activation int

const (
	ActNone Activation = iota
	ActGELU
)

// nr is the column width of every micro-kernel (two AVX-512 vectors, four
// AVX2 vectors). It is the same on all paths so that a Packed weight is
// valid whatever path runs.
const nr = 32

// kernelFunc is a micro-kernel (see impl.kernel).
type kernelFunc = func(k int, a *float32, rs, ps int, b *float32, c *float32, ldc int, alpha, beta float32, bias *float32)

// impl is one code path: a micro-kernel and its vector helpers.
type impl struct {
	name string
	mr   int // rows of the micro-kernel tile
	// kc and nb, if set, replace the driver's K chunk (kcMax) and column
	// panels per task (blockNB) on this path; kcLong, if set, replaces kc
	// when K is more than two chunks of kc, whatever the rows (see
	// gemmJob.schedule: a chunk size depends on K alone).
	kc, nb, kcLong int
	// kernel computes, for r < mr and j < nr,
	//   C[r*ldc+j] = alpha·Σ_p A(r,p)·B[p*nr+j] + beta·C[r*ldc+j] + bias[j]
	// where A(r,p) = a[r*rs+p*ps] and B is one packed panel (k×nr). beta == 0
	// means C is not read (BLAS semantics); bias may be nil.
	kernel kernelFunc
	// kernelPF, if set, is kernel with one more argument: pf points at A
	// rows of the task's next micro-panel (stride rs, k stride ps), which
	// it prefetches while computing (nil: none).
	kernelPF func(k int, a *float32, rs, ps int, b *float32, c *float32, ldc int, alpha, beta float32, bias *float32, pf *float32)
	// edge, if set, holds for each rows < mr a kernel with kernel's
	// contract that reads and writes only rows 0..rows-1, summing each
	// element in the same order as kernel (bitwise equal results).
	edge []kernelFunc
	// packRows, if set, packs mr full rows of A (stride lda) into the
	// k×mr interleaved panel layout.
	packRows func(dst, src *float32, lda, k int)
	// packT16, if set, transposes 16 rows of B (stride ldb, k a multiple
	// of 16) into lanes 0..15 of k rows of nr floats at dst.
	packT16 func(dst, src *float32, lda, k int)
	// geluTile, if set, applies GELU to rows×nr floats at c (row stride
	// ldc): the epilogue of one full micro-tile.
	geluTile func(c *float32, ldc, rows int)
	gelu     func(x []float32)        // in place, exact-erf GELU
	add      func(dst, src []float32) // dst[i] += src[i]
	// softmax, if set, does a whole row (max, exp, sum, scale) and returns
	// the max and the sum for the caller's special cases; otherwise maxf,
	// expSub and scale do it in three passes.
	softmax func(x []float32) (m, s float32)
	maxf    func(x []float32) float32
	expSub  func(x []float32, m float32) float32 // x[i] = exp(x[i]-m), returns Σ
	scale   func(x []float32, s float32)
	sum     func(x []float32) float32
	sqdev   func(x []float32, mean float32) float32 // Σ (x[i]-mean)²
	// ln: y = (x-mean)·rstd·gamma + beta
	ln func(y, x []float32, mean, rstd float32, gamma, beta []float32)
	// dequantTile, if set, does the int8 epilogue on rows×nr floats at c
	// (row stride ldc): c[r][j] = c[r][j]·rs[r]·cs[j] + bias[j].
	dequantTile func(c *float32, ldc, rows int, rs, cs, bias *float32)
	// tileAxpy and winoA are the vector passes of Strassen–Winograd (see
	// strassen.go; set by its init on the float32 paths).
	tileAxpy func(c *float32, ldc, rows int, t *float32, alpha, beta float32, bias, pf, src *float32)
	winoA    func(s1, s2, s3, s4, a11, a12, a21, a22 []float32) bool // false: an input is not finite
}

// reduced is a reduced-precision impl derived from the float32 impl fp32:
// the same driver, packing and vector helpers with kernel (same mr unless
// the caller changes it) in place of fp32's, and dequantTile, if not nil,
// as its int8 epilogue. What belongs to fp32's kernel alone is dropped
// here, once: its per-row edge kernels, its prefetching twin and its K/N
// blocking (tuned for it; other kernels keep the driver's).
func (fp32 impl) reduced(name string, kernel kernelFunc, dequantTile func(c *float32, ldc, rows int, rs, cs, bias *float32)) impl {
	im := fp32
	im.name, im.kernel, im.dequantTile = name, kernel, dequantTile
	im.edge, im.kernelPF = nil, nil
	im.kc, im.nb, im.kcLong = 0, 0, 0
	return im
}

var (
	paths   = map[string]*impl{"generic": &genericImpl}
	current atomic.Pointer[impl]
)

func init() {
	registerArch() // adds the assembly paths the CPU supports
	best := &genericImpl
	for _, name := range []string{"avx512", "avx2"} {
		if p, ok := paths[name]; ok {
			best = p
			break
		}
	}
	current.Store(best)
	if env := strings.TrimSpace(os.Getenv("MAEEMBED_KERNEL")); env != "" {
		if err := SetPath(env); err != nil {
			// A forced path that this CPU cannot run must not silently fall
			// back: tests and benchmarks rely on it meaning what it says. It
			// is kept for EnvError rather than panicking in init, so that a
			// command that runs no model still works.
			envErr = &EnvVarError{Var: "MAEEMBED_KERNEL", Value: env, Err: err}
		}
	}
}

// EnvVarError is an environment setting of the kernels (MAEEMBED_KERNEL,
// MAEEMBED_STRASSEN) that could not be followed.
type EnvVarError struct {
	Var, Value string
	Err        error
}

func (e *EnvVarError) Error() string { return e.Var + "=" + e.Value + ": " + e.Err.Error() }
func (e *EnvVarError) Unwrap() error { return e.Err }

// envErr is why MAEEMBED_KERNEL could not be followed (nil if unset or
// followed).
var envErr error

// EnvError returns why the path MAEEMBED_KERNEL asks for could not be set
// at init (naming the paths this CPU has), or why MAEEMBED_STRASSEN's
// value is not understood, or nil. While it is non-nil the
// fastest available path is in use; a program that runs a model should
// refuse to start.
func EnvError() error { return envErr }

// Paths lists the code paths this CPU can run, fastest first.
func Paths() []string {
	var out []string
	for _, name := range []string{"avx512", "avx2", "generic"} {
		if _, ok := paths[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// SetPath forces a code path ("avx512", "avx2" or "generic", any letter
// case). It is meant for tests and benchmarks; it must not race with
// running kernels. The error names the paths this CPU can run.
func SetPath(name string) error {
	l := strings.ToLower(strings.TrimSpace(name))
	p, ok := paths[l]
	if !ok {
		what := "unknown kernel path"
		if l == "avx512" || l == "avx2" {
			what = "kernel path not supported by this CPU"
		}
		return fmt.Errorf("%s %q: available paths are %s", what, name, strings.Join(Paths(), ", "))
	}
	current.Store(p)
	return nil
}

// Path names the code path in use.
func Path() string { return current.Load().name }
