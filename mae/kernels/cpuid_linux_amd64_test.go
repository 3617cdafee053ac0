package kernels

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestHalfWidth512 checks halfWidth512's CPUID decoding against the
// vendor and family Linux reports in /proc/cpuinfo.
func TestHalfWidth512(t *testing.T) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var vendor string
	family := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() && (vendor == "" || family < 0) {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "vendor_id":
			vendor = strings.TrimSpace(v)
		case "cpu family":
			if family, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				t.Fatalf("cpu family %q: %v", v, err)
			}
		}
	}
	if vendor == "" || family < 0 {
		t.Skip("no vendor_id or cpu family in /proc/cpuinfo")
	}
	want := vendor == "AuthenticAMD" && family == 0x19
	if got := halfWidth512(); got != want {
		t.Errorf("halfWidth512() = %v on %s family %#x, want %v", got, vendor, family, want)
	}
	t.Logf("%s family %#x: halfWidth512 %v", vendor, family, want)
}
