// Package busyloop starts a process that spins on one core, for
// benchmarks of how the parallel kernels behave when a core is taken.
package busyloop

import (
	"os/exec"
	"testing"
)

// Start runs a busy-loop shell process until the benchmark ends (it is
// killed in b.Cleanup); the benchmark is skipped if it cannot start.
func Start(b *testing.B) {
	b.Helper()
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		b.Skipf("no busy-loop process: %v", err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}
