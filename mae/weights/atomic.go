package weights

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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

// writeFileAtomic writes path through a "."-prefixed temporary in the same
// directory, fsyncs it and renames it into place, so readers see either the
// old file or the complete new one.
func writeFileAtomic(path string, write func(*os.File) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	lockTemp(f)
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := write(f); err != nil {
		return fail(fmt.Errorf("write %s: %w", path, err))
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", path, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// lockTemp flocks a temporary while it is written: the kernel drops the
// lock when the writer exits, however it exits (kill -9 too), so
// RemoveStaleTemps can tell a killed writer's leftovers from a live
// writer's. Without flock (some network file systems) only the age test
// of RemoveStaleTemps protects a live writer.
func lockTemp(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// staleTempAge is how long nothing in a temporary must have changed
// before RemoveStaleTemps takes it for a dead writer's. It covers the
// moment between a temporary's creation and its lock, and writers that
// take no lock (earlier versions).
const staleTempAge = 10 * time.Second

// RemoveStaleTemps removes the temporaries that SaveHF and the atomic
// writes left behind when killed while writing the model directory dir:
// ".NAME.tmp-DIGITS" directories beside it (NAME = dir's base name) and
// ".model.safetensors.tmp-DIGITS" and ".config.json.tmp-DIGITS" files in
// it. Nothing else is touched, and a temporary is removed only when no
// live process holds its lock (lockTemp) and nothing in it changed for
// 10 seconds (staleTempAge): a concurrent write's temporaries are left
// alone. It returns the paths removed; failures are only logged.
func RemoveStaleTemps(dir string) []string {
	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	removed := removeStaleTemps(parent, true, "."+base+".tmp-")
	return append(removed, removeStaleTemps(dir, false, "."+HFSafetensorsFile+".tmp-", "."+HFConfigFile+".tmp-")...)
}

// removeStaleTemps removes the dead temporaries in dir named a prefix
// followed by os.CreateTemp's or os.MkdirTemp's digits: directories if
// dirs, else regular files.
func removeStaleTemps(dir string, dirs bool, prefixes ...string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !isTempName(e.Name(), prefixes) || e.IsDir() != dirs || !e.IsDir() && !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		switch ok, err := removeIfDead(p); {
		case err != nil:
			slog.Warn("could not remove a killed run's temporary", "path", p, "err", err)
		case ok:
			slog.Info("removed a killed run's temporary", "path", p)
			removed = append(removed, p)
		}
	}
	return removed
}

// isTempName reports whether name is one of prefixes followed by digits.
func isTempName(name string, prefixes []string) bool {
	for _, pre := range prefixes {
		if rest, ok := strings.CutPrefix(name, pre); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// removeIfDead removes the temporary at p if no process holds its lock
// and nothing in it changed for staleTempAge; it holds the lock while it
// removes, so no writer can take the temporary up meanwhile.
func removeIfDead(p string) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil // gone, or not ours to open: leave it
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil // a live writer's (EWOULDBLOCK), or no flock here to tell: keep it
	}
	newest, err := newestChange(f)
	if err != nil || time.Since(newest) < staleTempAge {
		return false, nil
	}
	if err := os.RemoveAll(p); err != nil {
		return false, err
	}
	return true, nil
}

// newestChange is the latest modification time of f and, for a
// directory, of the entries in it.
func newestChange(f *os.File) (time.Time, error) {
	fi, err := f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	newest := fi.ModTime()
	if !fi.IsDir() {
		return newest, nil
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return time.Time{}, err
		}
		if t := info.ModTime(); t.After(newest) {
			newest = t
		}
	}
	return newest, nil
}
