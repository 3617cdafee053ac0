package stages

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The memory limit is the smaller of MemTotal and a set cgroup limit.
func TestMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	meminfo, cg := filepath.Join(dir, "meminfo"), filepath.Join(dir, "memory.max")
	os.WriteFile(meminfo, []byte("MemFree:  100 kB\nMemTotal:       24576000 kB\nSwapTotal: 0 kB\n"), 0o644)
	os.WriteFile(cg, []byte("max\n"), 0o644)
	if n, from := memoryLimit(meminfo, cg); n != 24576000<<10 || !strings.Contains(from, "MemTotal") {
		t.Errorf("no cgroup limit: %d from %q", n, from)
	}
	os.WriteFile(cg, []byte("4294967296\n"), 0o644)
	if n, from := memoryLimit(meminfo, cg); n != 4<<30 || !strings.Contains(from, "cgroup") {
		t.Errorf("cgroup limit 4 GiB: %d from %q", n, from)
	}
	if n, _ := memoryLimit(filepath.Join(dir, "none"), filepath.Join(dir, "none")); n != 0 {
		t.Errorf("nothing to read: %d, want 0", n)
	}
}

// A budget larger than the machine is refused naming the flag, so that
// one decode can never take more memory than there is.
func TestBudgetOverMachineMemory(t *testing.T) {
	limit, _ := MachineMemory()
	if limit == 0 {
		t.Skip("no /proc/meminfo")
	}
	for _, b := range []string{"1000000GiB", strconv.FormatInt(limit+1<<30, 10)} {
		_, err := PreprocessOptions{Resize: "center-crop", MemBudget: b}.Preprocess()
		if err == nil || !strings.Contains(err.Error(), "--memory-budget") || !strings.Contains(err.Error(), "memory") {
			t.Errorf("--memory-budget %s on a %d-byte machine: %v", b, limit, err)
		}
	}
	if _, err := (PreprocessOptions{Resize: "center-crop", MemBudget: "1.5GiB"}).Preprocess(); err != nil && limit > 2<<30 {
		t.Errorf("--memory-budget 1.5GiB: %v", err)
	}
	if _, err := (PreprocessOptions{Resize: "center-crop", MaxPixels: -1}).Preprocess(); err == nil || !strings.Contains(err.Error(), "--max-pixels -1") {
		t.Errorf("--max-pixels -1: %v", err)
	}
}

// 0 is not the default budget but an error, so the error for a negative
// budget must not suggest it.
func TestBudgetNotPositive(t *testing.T) {
	for _, b := range []string{"0", "-1", " -1GiB", "0MiB"} {
		_, err := PreprocessOptions{Resize: "center-crop", MemBudget: b}.Preprocess()
		if err == nil || !strings.Contains(err.Error(), "must be positive") || strings.Contains(err.Error(), "0 = the default") {
			t.Errorf("--memory-budget %q: %v", b, err)
		}
	}
}
