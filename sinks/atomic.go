package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempSuffix ends every temporary name; with the leading "." it lets
// CleanTemps recognise leftovers of a killed run without touching other
// hidden files.
const tempSuffix = ".maeembed-tmp"

// atomicFile is a file that becomes visible under its final name only when
// Publish has written, synced and renamed it. Until then it lives under a
// hidden temporary name in the same directory (so the rename is atomic).
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
func (a *atomicFile) Publish() error {
	if err := a.Sync(); err != nil {
		a.Abort()
		return fmt.Errorf("sync %s: %w", a.final, err)
	}
	if err := a.Close(); err != nil {
		a.Abort()
		return fmt.Errorf("close %s: %w", a.final, err)
	}
	if err := os.Rename(a.Name(), a.final); err != nil {
		os.Remove(a.Name())
		return fmt.Errorf("publish %s: %w", a.final, err)
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
	if err := a.Close(); err != nil {
		a.Abort()
		return "", fmt.Errorf("close %s: %w", a.final, err)
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
			os.Remove(a.Name())
			return "", fmt.Errorf("publish %s: %w", a.final, err)
		}
		if err := os.Rename(a.Name(), a.final); err != nil {
			os.Remove(a.Name())
			return "", fmt.Errorf("publish %s: %w", a.final, err)
		}
		break
	}
	return a.final, syncDir(filepath.Dir(a.final))
}

// Abort closes and removes the temporary file; the final name is untouched.
func (a *atomicFile) Abort() error {
	a.Close() // may already be closed
	if err := os.Remove(a.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
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
// dir/errors (names starting with "." and ending in ".maeembed-tmp"). Call it
// before resuming into an existing output directory; never while another
// writer is active in the same directory.
func CleanTemps(dir string) error {
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
				if err := os.Remove(filepath.Join(d, n)); err != nil {
					return fmt.Errorf("clean temps: %w", err)
				}
			}
		}
	}
	return nil
}

func isTempName(n string) bool {
	return strings.HasPrefix(n, ".") && strings.HasSuffix(n, tempSuffix)
}
