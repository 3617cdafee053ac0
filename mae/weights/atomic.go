package weights

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// writeNewFile creates path, fills it with write and fsyncs it.
func writeNewFile(path string, write func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// writeFileAtomic writes path through a ".NAME.tmp-DIGITS" temporary in
// the same directory (the name RemoveStaleTemps knows), so readers see
// either the old file or the complete new one (atomicfile.Write).
func writeFileAtomic(path string, write func(*os.File) error) error {
	return atomicfile.Write(path, "."+filepath.Base(path)+".tmp-*", write)
}

// staleTempAge is how long nothing in a temporary must have changed
// before RemoveStaleTemps takes it for a dead writer's: no lock guards a
// convert's destination, and writers of earlier versions took no lock on
// their temporaries.
const staleTempAge = 10 * time.Second

// RemoveStaleTemps removes the temporaries that SaveHF and the atomic
// writes left behind when killed while writing the model directory dir:
// ".NAME.tmp-DIGITS" directories beside it (NAME = dir's base name) and
// ".model.safetensors.tmp-DIGITS" and ".config.json.tmp-DIGITS" files in
// it. Nothing else is touched, and a temporary is removed only when no
// live process holds its lock and nothing in it changed for
// 10 seconds (staleTempAge): a concurrent write's temporaries are left
// alone. It returns the paths removed; failures are only logged.
func RemoveStaleTemps(dir string) []string {
	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	log := slog.Default()
	removed := removeStaleTemps(log, parent, true, "."+base+".tmp-")
	return append(removed, removeStaleTemps(log, dir, false, "."+HFSafetensorsFile+".tmp-", "."+HFConfigFile+".tmp-")...)
}

// removeStaleTemps removes the stale temporaries (atomicfile's sense,
// with staleTempAge) in dir named a prefix followed by os.CreateTemp's or
// os.MkdirTemp's digits: directories if dirs, else regular files. It
// logs what it removed, and what it could not, to log.
func removeStaleTemps(log *slog.Logger, dir string, dirs bool, prefixes ...string) []string {
	removed, err := atomicfile.RemoveStale(dir, func(e fs.DirEntry) bool {
		if e.IsDir() != dirs || !e.IsDir() && !e.Type().IsRegular() {
			return false
		}
		for _, pre := range prefixes {
			if rest, ok := strings.CutPrefix(e.Name(), pre); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
				return true
			}
		}
		return false
	}, staleTempAge)
	for _, p := range removed {
		log.Info("removed a killed run's temporary", "path", p)
	}
	if err != nil {
		log.Warn("could not remove a killed run's temporary", "err", err)
	}
	return removed
}
