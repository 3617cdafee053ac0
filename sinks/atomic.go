package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempSuffix ends every temporary name; with the leading "." it lets
// CleanTemps recognise leftovers of a killed run without touching other
// hidden files.
const tempSuffix = ".maeembed-tmp"

// atomicFile is a file that becomes visible under its final name only when
// Publish has written, synced and renamed it. Until then it lives under a
// hidden temporary name in the same directory (so the rename is atomic),
// with an exclusive flock held on it for as long as it is open: that is how
// CleanTemps tells a live writer's temporary (another shard or stream
// worker in the same directory) from a killed one's.
type atomicFile struct {
	*os.File
	final string
}

func createAtomic(final string) (*atomicFile, error) {
	dir, base := filepath.Split(final)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+base+".*"+tempSuffix)
	if err != nil {
		return nil, fmt.Errorf("create temp for %s: %w", final, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock temp for %s: %w", final, err)
	}
	// CreateTemp makes 0600; outputs are meant to be shared like any file.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("chmod temp for %s: %w", final, err)
	}
	return &atomicFile{File: f, final: final}, nil
}

// Publish syncs the data, renames the file to its final name and syncs the
// directory so the rename itself survives a crash.
// The file stays open (and locked) until it is renamed, so no CleanTemps
// of another process can take it for a dead writer's.
func (a *atomicFile) Publish() error {
	if err := a.Sync(); err != nil {
		a.Abort()
		return fmt.Errorf("sync %s: %w", a.final, err)
	}
	if err := os.Rename(a.Name(), a.final); err != nil {
		a.Abort()
		return fmt.Errorf("publish %s: %w", a.final, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("close %s: %w", a.final, err)
	}
	return syncDir(filepath.Dir(a.final))
}

// PublishNew is Publish for part files: it never replaces an existing file.
// If the name is taken (another process writing into the same directory,
// e.g. shards of one job) it asks next for another name and retries. A hard
// link gives the no-clobber guarantee; where links are not supported it falls
// back to a rename after checking the name is free.
func (a *atomicFile) PublishNew(next func() string) (string, error) {
	if err := a.Sync(); err != nil {
		a.Abort()
		return "", fmt.Errorf("sync %s: %w", a.final, err)
	}
	for tries := 0; ; tries++ {
		err := os.Link(a.Name(), a.final)
		if err == nil {
			os.Remove(a.Name())
			break
		}
		if errors.Is(err, os.ErrExist) && tries < 1000 {
			a.final = next()
			continue
		}
		if _, serr := os.Lstat(a.final); !errors.Is(serr, os.ErrNotExist) || tries >= 1000 {
			a.Abort()
			return "", fmt.Errorf("publish %s: %w", a.final, err)
		}
		if err := os.Rename(a.Name(), a.final); err != nil {
			a.Abort()
			return "", fmt.Errorf("publish %s: %w", a.final, err)
		}
		break
	}
	if err := a.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", a.final, err)
	}
	return a.final, syncDir(filepath.Dir(a.final))
}

// Abort removes and closes the temporary file; the final name is untouched.
func (a *atomicFile) Abort() error {
	err := os.Remove(a.Name())
	a.Close() // may already be closed
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temp %s: %w", a.Name(), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// CleanTemps removes temporary files that a killed run left in dir and in
// dir/errors (names starting with "." and ending in ".maeembed-tmp") and,
// in a PNG output (dir holds maeembed-png.json), anywhere below dir, since
// a PNG's temporary lives in its id's subdirectory. The walk lists
// directories only (no stat or open per file), as the resume scan of the
// same tree does anyway. A temporary whose writer is alive (it holds the
// file's flock: another shard or stream worker writing into the same
// directory) is left alone.
func CleanTemps(dir string) error {
	_, err := os.Lstat(filepath.Join(dir, pngMetaName))
	if err == nil {
		return cleanTempsTree(dir)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean temps in %s: %w", dir, err)
	}
	for _, d := range []string{dir, filepath.Join(dir, errorsDir)} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clean temps in %s: %w", d, err)
		}
		for _, e := range ents {
			if n := e.Name(); isTempName(n) {
				if err := removeIfDead(filepath.Join(d, n)); err != nil {
					return fmt.Errorf("clean temps: %w", err)
				}
			}
		}
	}
	return nil
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
		if d.Type().IsRegular() && isTempName(d.Name()) {
			return removeIfDead(path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clean temps in %s: %w", dir, err)
	}
	return nil
}

// removeIfDead removes a temporary unless its writer still holds its lock.
func removeIfDead(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // published or removed meanwhile
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil // a live writer's
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
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

// ProbeOutput fails as LockOutput would, when a live process holds the
// lock called name in dir, but takes no lock and creates nothing: a dry
// run's check.
func ProbeOutput(dir, name, why string) error {
	path := filepath.Join(dir, ".maeembed-"+name+".lock")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Under the start lock, as LockOutput takes it, so a run starting now
	// does not see the test lock as a live run.
	unlockStart, err := lockStart(dir)
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

// holdLock is lockFile for a lock file of its own: release removes the
// file again, before unlocking, so no one locks a file on its way out.
func holdLock(path string, how int) (release func() error, err error) {
	f, err := lockFile(path, how)
	if err != nil {
		return nil, err
	}
	return func() error {
		os.Remove(path)
		return f.Close()
	}, nil
}

// lockFile creates (or opens) the lock file at path and flocks it with
// how. The holder before us may have removed the file between our open
// and our lock (a release removes it): then the lock is on a file nobody
// else sees, and it tries again.
func lockFile(path string, how int) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
	}
}

func isTempName(n string) bool {
	return strings.HasPrefix(n, ".") && strings.HasSuffix(n, tempSuffix)
}
