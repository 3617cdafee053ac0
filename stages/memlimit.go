package stages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// MachineMemory is the memory this process may use at most, in bytes: the
// smaller of the machine's (MemTotal of /proc/meminfo) and the cgroup v2
// limit (/sys/fs/cgroup/memory.max, when set), with where it comes from;
// 0 when neither can be read (not Linux).
func MachineMemory() (int64, string) {
	return memoryLimit("/proc/meminfo", "/sys/fs/cgroup/memory.max")
}

// memoryLimit is MachineMemory reading the given files.
func memoryLimit(meminfo, cgroupMax string) (int64, string) {
	var limit int64
	from := ""
	if f, err := os.Open(meminfo); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "MemTotal:       24576000 kB"
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				fields := strings.Fields(rest)
				if len(fields) == 2 && fields[1] == "kB" {
					if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil && kb > 0 {
						limit, from = kb<<10, "MemTotal in "+meminfo
					}
				}
				break
			}
		}
		f.Close()
	}
	// "max" when unlimited.
	if b, err := os.ReadFile(cgroupMax); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (limit == 0 || n < limit) {
			limit, from = n, "cgroup limit "+cgroupMax
		}
	}
	return limit, from
}
