package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// SIGTERM while the model loads (after the run took its output directory,
// before it owns the signals) releases the output: no lock file stays and
// the directory the run made is removed, and the process exits 1 as an
// interrupted run does. The signal is sent once the run's lock file
// appears, so it lands in the model's load (or, on a fast machine, in the
// run, which drains and also releases its locks). 400 inputs keep the run
// going for seconds, so that a test process descheduled on a loaded
// machine between seeing the lock and signalling still finds it running.
func TestE2ESIGTERMWhileModelLoadsReleasesTheOutput(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 400)
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "embed", "-m", "builtin", "-o", out, in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	locks := func() []string {
		l, _ := filepath.Glob(filepath.Join(out, ".maeembed-*.lock"))
		return l
	}
	startUntil(t, cmd, "output lock", 30*time.Second, func() bool { return len(locks()) > 0 })
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("after SIGTERM: %v, want exit status 1\n%s", err, stderr.String())
	}
	if l := locks(); len(l) > 0 {
		t.Errorf("lock files left: %v\n%s", l, stderr.String())
	}
	if ents, err := os.ReadDir(out); err == nil && len(ents) == 0 {
		t.Errorf("the run left its empty output directory %s", out)
	}
}
