//go:build unix

package weights

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A latest file that is a FIFO is not read for the hint (the read would
// wait for a writer for ever): loading the directory fails at once, as a
// directory without a model.
func TestLoadPretrainHintSkipsFIFO(t *testing.T) {
	run := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(run, "latest"), 0o644); err != nil {
		t.Skip("no FIFO here:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(run); done <- err }()
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "pretrain") {
			t.Errorf("Load(%s) with a FIFO latest = %v, want the plain no-model error", run, err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Load waits on the FIFO named latest")
	}
}
