//go:build !linux

package kernels

// sampleSpare tells whether the machine has a CPU to spare; without
// /proc/loadavg it cannot tell, so helpers never poll (see spareCPU).
func sampleSpare() bool { return false }
