//go:build !amd64

package kernels

func registerArch() {}

// Never called: bf16Impl stays nil off amd64.
func cvtBF16AVX512(dst *uint16, src *float32, n int) { panic("kernels: no AVX512_BF16 off amd64") }
