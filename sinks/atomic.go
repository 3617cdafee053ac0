package sinks

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// tempSuffix ends every temporary name; with the leading "." it lets
// CleanTemps recognise leftovers of a killed run without touching other
// hidden files.
const tempSuffix = ".maeembed-tmp"

// createAtomic creates final's temporary (a hidden name in the same
// directory, locked while open: atomicfile's contract), making the
// directory first. Its Commit or CommitNew publishes it; until then
// CleanTemps of another process (another shard or stream worker in the
// same directory) leaves it alone.
func createAtomic(final string) (*atomicfile.File, error) {
	dir, base := filepath.Split(final)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir %s: %w", dir, err)
	}
	return atomicfile.Create(final, "."+base+".*"+tempSuffix)
}

// CleanTemps removes temporary files that a killed run left in dir and in
// dir/errors (names starting with "." and ending in ".maeembed-tmp") and,
// in a PNG output (dir holds maeembed-png.json), anywhere below dir, since
// a PNG's temporary lives in its id's subdirectory. The walk lists
// directories only (no stat or open per file), as the resume scan of the
// same tree does anyway. A temporary whose writer is alive (it holds the
// file's flock: another shard or stream worker writing into the same
// directory) is left alone.
//
// An npy set is published only when its run ends, so the temporaries of
// an interrupted npy run cannot be resumed: their inputs are processed
// again. CleanTemps says so in one warning naming the files it removed;
// the set that dir already published (metadata.parquet and its .npy
// files) is not touched, and a resume continues from it. A run killed
// while it was publishing its set (between the renames of its files, all
// of them complete) is the exception: CleanTemps first completes that
// publication (completePendingNpySet), so none of its rows is lost or
// processed again, and says so in an info line.
func CleanTemps(dir string) error {
	_, err := os.Lstat(filepath.Join(dir, pngMetaName))
	if err == nil {
		return cleanTempsTree(dir)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean temps in %s: %w", dir, err)
	}
	if _, err := completePendingNpySet(dir); err != nil {
		return err
	}
	for _, d := range []string{dir, filepath.Join(dir, errorsDir)} {
		removed, err := atomicfile.RemoveStale(d, isTemp, 0)
		if d == dir {
			warnNpyRestart(dir, removed)
		}
		if err != nil {
			return fmt.Errorf("clean temps in %s: %w", d, err)
		}
	}
	return nil
}

// warnNpyRestart logs, once, that CleanTemps removed the unpublished files
// of an interrupted npy run in dir (among removed, the temporaries it
// removed there), and what becomes of the run's work.
func warnNpyRestart(dir string, removed []string) {
	var npy []string
	for _, p := range removed {
		if final := tempFinal(filepath.Base(p)); final == metadataName || strings.HasSuffix(final, ".npy") {
			npy = append(npy, filepath.Base(p))
		}
	}
	if len(npy) == 0 {
		return
	}
	kept := "none (the interrupted run was the first)"
	if _, err := os.Stat(filepath.Join(dir, metadataName)); err == nil {
		kept = metadataName + " and its .npy files, unchanged: the run resumes after their rows"
	}
	slog.Warn("an interrupted npy run cannot be resumed (an npy set is published only when its run ends): removed its unpublished files, and its inputs are processed again",
		"dir", dir, "removed", strings.Join(npy, ", "), "published", kept)
}

// tempFinal is the final name of a temporary that createAtomic names
// ("." + final + "." + digits + tempSuffix), or "" for another name.
func tempFinal(name string) string {
	rest, ok := strings.CutSuffix(strings.TrimPrefix(name, "."), tempSuffix)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 || strings.Trim(rest[i+1:], "0123456789") != "" {
		return ""
	}
	return rest[:i]
}

// cleanTempsTree is CleanTemps for a whole output tree. Symbolic links are
// not followed, so nothing outside dir is touched.
func cleanTempsTree(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && path != dir {
				return nil // removed meanwhile
			}
			return err
		}
		if isTemp(d) {
			_, err := atomicfile.RemoveIfStale(path, 0)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clean temps in %s: %w", dir, err)
	}
	return nil
}

// LockOutput takes the lock called name in dir (a hidden lock file,
// removed again by release) until release or the end of the process: two
// runs that would write the same ids into one directory (the same shard of
// the same inputs; any two npy runs, which share their files) take the
// same lock, so the second one is refused, with why, instead of both
// succeeding with duplicates. A lock file a killed run left behind is
// simply taken over.
func LockOutput(dir, name, why string) (release func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	path := filepath.Join(dir, ".maeembed-"+name+".lock")
	// Under the start lock, as ProbeOutput tests: a dry run's momentary
	// test lock is then never taken for a live run's.
	unlockStart, err := lockStart(dir)
	if err != nil {
		return nil, err
	}
	release, err = holdLock(path, syscall.LOCK_EX|syscall.LOCK_NB)
	unlockStart()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, lockedError(dir, name, why)
	}
	if err != nil {
		return nil, fmt.Errorf("output lock %s: %w", name, err)
	}
	return release, nil
}

// RemoveStaleLocks removes the lock files in dir named
// .maeembed-PREFIX*.lock (LockOutput's, e.g. prefix "worker-") that no
// live process holds: those of killed runs, which would otherwise pile up
// (a run that ends removes its own). Each is tested with a non-blocking
// exclusive flock and removed while so held, under dir's start lock as
// LockOutput takes them: a run taking the same name meanwhile waits for
// the start lock, then makes a new file, and one that opened the old
// file before its removal finds on locking it that the path is gone and
// retries (atomicfile.HoldLock). A lock file that cannot be tested (no
// flock on the file system) stays. It returns the names removed.
func RemoveStaleLocks(dir, prefix string) (removed []string, err error) {
	unlockStart, err := lockStart(dir)
	if err != nil {
		return nil, err
	}
	defer unlockStart()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, ".maeembed-"+prefix) || !strings.HasSuffix(n, ".lock") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, n), os.O_RDWR, 0)
		if err != nil {
			continue // gone meanwhile, or not ours to test
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if os.Remove(filepath.Join(dir, n)) == nil {
				removed = append(removed, n)
			}
		}
		f.Close()
	}
	return removed, nil
}

// ProbeOutput fails as LockOutput would, when a live process holds the
// lock called name in dir, but takes no lock and creates nothing: a dry
// run's check.
func ProbeOutput(dir, name, why string) error {
	path := filepath.Join(dir, ".maeembed-"+name+".lock")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Under the start lock, as LockOutput takes it, so a run starting now
	// does not see the test lock as a live run; a dir gone since (a run
	// that wrote nothing removes the empty directories it made) holds none.
	unlockStart, err := lockStart(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlockStart()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output lock %s: %w", name, err)
	}
	defer f.Close()
	// Shared: it conflicts with a holder's exclusive lock only.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return lockedError(dir, name, why)
		}
		return fmt.Errorf("output lock %s: %w", name, err)
	}
	return nil
}

func lockedError(dir, name, why string) error {
	return fmt.Errorf("output %s is being written by another running process (%s): %s", dir, name, why)
}

// holdLock takes the flock how (syscall.LOCK_EX, with LOCK_NB not to
// wait) of a lock file of its own (atomicfile.HoldLock): release removes
// the file again, before unlocking, so no one locks a file on its way
// out.
func holdLock(path string, how int) (release func() error, err error) {
	return atomicfile.HoldLock(path, how&syscall.LOCK_NB == 0)
}

// isTemp is the naming rule of createAtomic's temporaries: regular files
// named "." + the final name + "." + digits + tempSuffix.
func isTemp(e fs.DirEntry) bool {
	n := e.Name()
	return e.Type().IsRegular() && strings.HasPrefix(n, ".") && strings.HasSuffix(n, tempSuffix)
}
