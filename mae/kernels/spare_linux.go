package kernels

import (
	"runtime"
	"sync"
	"syscall"
)

// loadavg is /proc/loadavg, opened once and read with pread (a proc file
// read from offset 0 is generated afresh), so sampling allocates nothing.
var loadavg struct {
	once sync.Once
	fd   int
	err  error
	ncpu int
}

// sampleSpare tells whether the machine has no more runnable threads than
// CPUs right now: the running-threads field ("R/T") of /proc/loadavg
// counts every runnable thread of the system, this one included. False
// when it cannot tell (no /proc, or a CPU set smaller than the machine,
// where the count includes threads that never run on our CPUs: then it
// is above the CPUs we see and the answer is false too).
func sampleSpare() bool {
	la := &loadavg
	la.once.Do(func() {
		la.fd, la.err = syscall.Open("/proc/loadavg", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		la.ncpu = runtime.NumCPU()
	})
	if la.err != nil {
		return false
	}
	var buf [128]byte
	n, err := syscall.Pread(la.fd, buf[:], 0)
	if err != nil || n <= 0 {
		return false
	}
	running, ok := runningField(buf[:n])
	return ok && running <= la.ncpu
}
