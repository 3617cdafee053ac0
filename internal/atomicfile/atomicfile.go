// Package atomicfile is maeembed's one way to write a file (or a
// directory of files) that readers see either complete or not at all, and
// to remove the temporaries that writers killed meanwhile left behind.
//
// The contract:
//
//   - A file is written under a temporary name in the directory of its
//     final name (the caller's pattern, in os.CreateTemp's form, so each
//     caller keeps its own naming rule), so that the rename that publishes
//     it is atomic. Commit fsyncs the file, renames it onto the final name
//     and fsyncs the directory, so the rename itself survives a crash.
//     MkdirTemp and Dir.Commit do the same for a directory.
//   - From the moment Create or MkdirTemp returns until the temporary is
//     renamed or removed, its writer holds an exclusive flock on it. The
//     kernel drops that lock when the writer exits, however it exits
//     (kill -9 too): the lock is how a cleaner tells a live writer's
//     temporary from a dead one's.
//   - A temporary is stale when its lock can be taken and nothing in it
//     (for a directory: it and its entries) changed for the caller's grace
//     period. RemoveIfStale and RemoveStale remove only stale temporaries,
//     holding the lock while they remove, so they never remove a live
//     writer's. A cleaner that finds a brand-new temporary before its
//     writer locked it does not break that: Create and MkdirTemp check,
//     once they hold the lock, that the name still names their file, and
//     start over with a new name if a cleaner took it away.
//
// Failure modes:
//
//   - A writer killed (or a machine crashing) before the rename leaves the
//     final name as it was (absent, or the old complete file) and a
//     temporary, which a later cleanup removes. After a power loss between
//     the rename and the directory's fsync, the final name may still show
//     the old file; it never shows part of the new one.
//   - Where the file system has no flock, Create and MkdirTemp still work,
//     but a cleaner cannot take the lock either, so it reports such a
//     temporary as an error and leaves it.
//   - The grace period is for writers that take no lock (earlier versions,
//     tools that share the naming rule): with grace 0, a cleaner relies on
//     the lock alone, which is safe when every writer of the names it
//     matches uses this package, or when the caller holds the whole
//     directory (no other writer can be running).
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File is a file that becomes visible under its final name only when
// Commit (or CommitNew) has written, synced and renamed it. Until then it
// lives under its temporary name, locked.
type File struct {
	*os.File
	final string
}

// Create creates a temporary for final in final's directory, named by
// pattern as os.CreateTemp names files (pattern must not contain a path
// separator), locks it and makes it mode 0644 (os.CreateTemp makes 0600;
// published files are meant to be shared like any file). The directory
// must exist.
func Create(final, pattern string) (*File, error) {
	dir := filepath.Dir(final)
	for tries := 0; ; tries++ {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, fmt.Errorf("create temp for %s: %w", final, err)
		}
		// From here on, every way out but success removes the temporary
		// (unless a cleaner already took its name away).
		if err := lock(f); err != nil {
			if errors.Is(err, errTakenAway) {
				f.Close()
				if tries < maxTries {
					continue // a cleaner removed it before we locked it
				}
				return nil, fmt.Errorf("create temp for %s: the temporary vanished %d times before it could be locked", final, maxTries)
			}
			discard(f, f.Name())
			return nil, fmt.Errorf("create temp for %s: %w", final, err)
		}
		if err := f.Chmod(0o644); err != nil {
			discard(f, f.Name())
			return nil, fmt.Errorf("chmod temp for %s: %w", final, err)
		}
		return &File{File: f, final: final}, nil
	}
}

// maxTries bounds Create's and MkdirTemp's new starts: a temporary taken
// away before it was locked, again and again, is no cleaner's doing.
const maxTries = 100

// errTakenAway: the temporary's name no longer names it (a cleaner
// removed it before its writer locked it); it is not the writer's to
// remove.
var errTakenAway = errors.New("temporary taken away before it was locked")

// fstat is (*os.File).Stat; a test makes it fail as an NFS file handle
// gone stale would, to check that the temporary does not stay behind.
var fstat = (*os.File).Stat

// flock is syscall.Flock; a test makes it fail as a lock manager out of
// locks would (ENOLCK), to check that HoldLock leaves a holder's file.
var flock = syscall.Flock

// lock takes f's exclusive lock, waiting while a cleaner that found the
// new temporary holds it, and checks that f's name still names f
// afterwards: errTakenAway if not, another error if that cannot be told
// (then the name is most likely still f's, and the caller removes it).
// Without flock on this file system it reports success: the cleaner
// cannot have taken the lock either.
func lock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil
	}
	held, err := fstat(f)
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	now, err := os.Lstat(f.Name())
	if errors.Is(err, fs.ErrNotExist) {
		return errTakenAway
	}
	if err != nil {
		return err
	}
	if !os.SameFile(held, now) {
		return errTakenAway
	}
	return nil
}

// discard removes the temporary at name while f still holds its lock (so
// no cleaner is in the middle of it), then closes f. Errors are dropped:
// it runs on a failure path, whose error the caller returns, and a
// temporary it could not remove is left unlocked, for a cleaner.
func discard(f *os.File, name string) {
	os.Remove(name)
	f.Close()
}

// Final is the name the file is published under.
func (a *File) Final() string { return a.final }

// OnSync, when set (by tests), is called with the final name of each
// File that Sync (Commit, CommitNew) is about to sync.
var OnSync func(final string)

// Sync commits the temporary's data to stable storage (os.File.Sync).
func (a *File) Sync() error {
	if OnSync != nil {
		OnSync(a.final)
	}
	return a.File.Sync()
}

// Commit syncs the data, renames the file onto its final name (replacing
// what was there) and syncs the directory. The file stays open, and so
// locked, until it is renamed. On failure the temporary is removed.
func (a *File) Commit() error {
	if err := a.Sync(); err != nil {
		a.Abort()
		return fmt.Errorf("sync %s: %w", a.final, err)
	}
	return a.CommitSynced()
}

// CommitSynced is Commit for a file its writer synced (Sync) after its
// last write, as a set of files is, each synced before the first is
// renamed: it renames the file onto its final name and syncs the
// directory, without a second sync of the data.
func (a *File) CommitSynced() error {
	if err := os.Rename(a.Name(), a.final); err != nil {
		a.Abort()
		return fmt.Errorf("publish %s: %w", a.final, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("close %s: %w", a.final, err)
	}
	return SyncDir(filepath.Dir(a.final))
}

// CommitNew is Commit that never replaces an existing file. If the final
// name is taken (another process writing into the same directory), it
// asks next for another name and retries, up to 1000 times. A hard link
// gives the no-clobber guarantee; where links are not supported it falls
// back to a rename after checking that the name is free. It returns the
// name the file was published under.
func (a *File) CommitNew(next func() string) (string, error) {
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
	return a.final, SyncDir(filepath.Dir(a.final))
}

// Abort removes and closes the temporary; the final name is untouched.
func (a *File) Abort() error {
	err := os.Remove(a.Name())
	a.Close() // may already be closed
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temp %s: %w", a.Name(), err)
	}
	return nil
}

// Write publishes final with the content write puts in it, through a
// temporary named by pattern (as Create); on any failure final is
// untouched and the temporary removed.
func Write(final, pattern string, write func(*os.File) error) error {
	a, err := Create(final, pattern)
	if err != nil {
		return err
	}
	if err := write(a.File); err != nil {
		a.Abort()
		return fmt.Errorf("write %s: %w", final, err)
	}
	return a.Commit()
}

// SyncDir fsyncs a directory, making creations and renames inside it
// durable.
func SyncDir(dir string) error {
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

// Dir is a temporary directory being filled, locked as a File is, until
// Commit publishes it or Abort removes it.
type Dir struct {
	Path string // the temporary's path, to write into
	lk   *os.File
}

// MkdirTemp creates a locked temporary directory in parent, named by
// pattern as os.MkdirTemp names directories (mode 0700 until Commit).
func MkdirTemp(parent, pattern string) (*Dir, error) {
	for tries := 0; ; tries++ {
		p, err := os.MkdirTemp(parent, pattern)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			os.Remove(p)
			return nil, err
		}
		if err := lock(f); err != nil {
			if errors.Is(err, errTakenAway) {
				f.Close()
				if tries < maxTries {
					continue // a cleaner removed it before we locked it
				}
				return nil, fmt.Errorf("create temp dir in %s: it vanished %d times before it could be locked", parent, maxTries)
			}
			discard(f, p)
			return nil, fmt.Errorf("create temp dir in %s: %w", parent, err)
		}
		return &Dir{Path: p, lk: f}, nil
	}
}

// Commit makes the directory mode 0755, syncs it, renames it to final
// and syncs final's parent. final must not exist, or be an empty
// directory: renaming onto a non-empty one fails with an error that
// errors.Is matches to fs.ErrExist or syscall.ENOTEMPTY. On a failure
// before the rename the temporary is removed (as File.Commit removes
// its file), so Abort after it does nothing; after the rename (the
// parent's sync failed) final stays published and the error says so.
func (d *Dir) Commit(final string) error {
	if err := os.Chmod(d.Path, 0o755); err != nil {
		d.Abort()
		return err
	}
	if err := SyncDir(d.Path); err != nil {
		d.Abort()
		return err
	}
	if err := os.Rename(d.Path, final); err != nil {
		d.Abort()
		return err
	}
	d.Path = final
	d.lk.Close()
	d.lk = nil
	if err := SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("%s published, but not yet durable: %w", final, err)
	}
	return nil
}

// Abort removes the temporary directory and all in it, then drops its
// lock. After a successful Commit it does nothing.
func (d *Dir) Abort() {
	if d.lk == nil {
		return
	}
	os.RemoveAll(d.Path)
	d.lk.Close()
	d.lk = nil
}

// RemoveIfStale removes the temporary file or directory at path if it is
// stale: no process holds its lock and nothing in it changed for grace.
// It holds the lock while it removes, so no writer can take the
// temporary up meanwhile. A path that is gone, or is a symbolic link, is
// left alone without an error; one whose lock cannot be tried (a file
// system without flock) is left with one.
func RemoveIfStale(path string, grace time.Duration) (removed bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return false, nil // published or removed meanwhile, or not ours
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil // a live writer's
		}
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	if grace > 0 {
		newest, err := newestChange(f)
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", path, err)
		}
		if time.Since(newest) < grace {
			return false, nil
		}
	}
	if err := os.RemoveAll(path); err != nil {
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
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		if t := info.ModTime(); t.After(newest) {
			newest = t
		}
	}
	return newest, nil
}

// RemoveStale removes, with RemoveIfStale, the stale temporaries among
// the entries of dir that match accepts (the caller's naming rule; it
// should also check the entry's type). It goes on past a temporary it
// cannot remove and returns the paths removed and the errors met, joined.
// A missing dir, or a path that is not a directory, holds nothing to
// remove.
func RemoveStale(dir string, match func(fs.DirEntry) bool, grace time.Duration) (removed []string, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range ents {
		if !match(e) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ok, err := RemoveIfStale(p, grace)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove temporary %s: %w", p, err))
		}
		if ok {
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}

// HoldLock takes the exclusive flock of the lock file at path, creating
// the file if needed: waiting for it if wait, else failing at once with
// an error that errors.Is matches to syscall.EWOULDBLOCK while a live
// process holds it. release removes the file and then drops the lock, so
// a lock file outlives only a killed holder, whose file the next HoldLock
// simply takes over. A holder releasing between another's open and lock
// leaves that other one holding a file nobody sees: it notices and opens
// the file again.
func HoldLock(path string, wait bool) (release func() error, err error) {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for tries := 0; ; tries++ {
		// Made here (created) or found: only a file made here may be
		// removed when it cannot be locked.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		created := err == nil
		if errors.Is(err, fs.ErrExist) {
			f, err = os.OpenFile(path, os.O_RDWR, 0)
			if errors.Is(err, fs.ErrNotExist) && tries < maxTries {
				continue // released and removed between the two opens
			}
		}
		if err != nil {
			return nil, err
		}
		if err := flock(int(f.Fd()), how); err != nil {
			if created && !errors.Is(err, syscall.EWOULDBLOCK) {
				// The file made just now cannot be locked (a file system
				// without flock): it stays nobody's. A file found there
				// stays, whatever the failure: its holder may be alive
				// (an flock failing for this process only, ENOLCK), and
				// removing it would let a third process lock a new file
				// while that holder still works.
				os.Remove(path)
			}
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		held, err := fstat(f)
		if err == nil {
			var now os.FileInfo
			now, err = os.Stat(path)
			if err == nil && os.SameFile(held, now) {
				return func() error {
					os.Remove(path)
					return f.Close()
				}, nil
			}
			if errors.Is(err, fs.ErrNotExist) || err == nil {
				err = nil // released and removed meanwhile (or replaced)
			}
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if tries >= maxTries {
			return nil, fmt.Errorf("lock %s: the lock file was removed %d times before it could be locked", path, maxTries)
		}
	}
}
