package weights

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// ConvertLockPath is the lock file that a convert into dir holds while
// it writes: ".NAME.convert-lock" beside dir (NAME = dir's base name),
// since a new dir is made by renaming a temporary into place. dir is made
// absolute first: "." or ".." has no name of its own to hide the lock
// under, and ".NAME" would then land inside dir, making an empty dir
// non-empty before the convert checks it.
func ConvertLockPath(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	parent, base := filepath.Split(filepath.Clean(dir))
	return filepath.Join(parent, "."+base+".convert-lock")
}

// LockConvert takes the lock of a convert into dir (ConvertLockPath),
// making dir's parent if needed, and holds it until release: a second
// convert into dir meanwhile is refused, with an error naming dir and the
// lock file, instead of both writing its files. release removes the lock
// file, and the parent directories LockConvert made if they are still
// empty (the convert failed), so a failed convert leaves nothing; a lock
// file a killed convert left behind is taken over.
func LockConvert(dir string) (release func(), err error) {
	path := ConvertLockPath(dir)
	var made []string // the parents to make, deepest first
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			break
		}
		made = append(made, p)
	}
	undo := func() {
		for _, p := range made {
			os.Remove(p) // only if empty
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		undo()
		return nil, fmt.Errorf("convert into %s: %w", dir, err)
	}
	unlock, err := atomicfile.HoldLock(path, false)
	if err != nil {
		undo()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("convert into %s: another convert is writing it (it holds the lock %s); wait for it to finish, or convert into another directory", dir, path)
		}
		return nil, fmt.Errorf("convert into %s: %w", dir, err)
	}
	return func() { unlock(); undo() }, nil
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
