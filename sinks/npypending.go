package sinks

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/apache/arrow/go/v17/parquet/file"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// The .npy files of an embed set (NewNpy) and of a reconstruct set
// (NewReconNpy), in the order they are published.
var (
	embedNpyNames = []string{embeddingsName}
	reconNpyNames = []string{"pred.npy", "mask.npy", "loss.npy"}
)

// pendingNpySet is an npy set whose publication a killed run began and did
// not end: the run had finished every file of the set (temporaries
// complete, made durable before the first rename) and was renaming them
// into place, the .npy files first and metadata.parquet last, when it
// died. Some .npy files may be in place already, holding more rows than
// the metadata.parquet beside them names, or with none beside them (the
// set's first run).
type pendingNpySet struct {
	metadata string // metadata.parquet's finished temporary
	rows     int64
	names    []string // the set's .npy files, in publication order
	// temps are the finished temporaries of the .npy files not yet
	// renamed, by final name; the others are in place with rows rows.
	temps map[string]string
}

// findPendingNpySet looks in dir for an npy set whose publication was cut
// (pendingNpySet): a finished temporary of metadata.parquet (a complete
// Parquet file with maeembed.* metadata) of N rows, N at least the rows of
// the metadata.parquet in place, and for each .npy file of its set a
// finished temporary of N rows or the file in place with N rows. It
// returns nil when there is none; a temporary that is still being written
// (no Parquet footer, an .npy header not yet patched) makes none. It only
// reads.
func findPendingNpySet(dir string) (*pendingNpySet, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil // the caller's own reading of dir says what is wrong
	}
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	var mds []string
	npyTemps := map[string][]string{}
	for _, e := range ents {
		if !isTemp(e) {
			continue
		}
		switch final := tempFinal(e.Name()); {
		case final == metadataName:
			mds = append(mds, filepath.Join(dir, e.Name()))
		case strings.HasSuffix(final, ".npy"):
			npyTemps[final] = append(npyTemps[final], filepath.Join(dir, e.Name()))
		}
	}
	if len(mds) == 0 {
		return nil, nil
	}
	published := int64(-1)
	if n, ok := parquetRows(filepath.Join(dir, metadataName)); ok {
		published = n
	}
	for _, md := range mds {
		rows, kv, ok := finishedMetadata(md)
		if !ok || rows < published {
			continue
		}
		names := embedNpyNames
		if _, recon := kv["maeembed.mask_ratio"]; recon {
			names = reconNpyNames
		}
		p := &pendingNpySet{metadata: md, rows: rows, names: names, temps: map[string]string{}}
		for _, name := range names {
			if i := slices.IndexFunc(npyTemps[name], func(t string) bool { return npyRows(t) == rows }); i >= 0 {
				p.temps[name] = npyTemps[name][i]
			} else if npyRows(filepath.Join(dir, name)) != rows {
				p = nil
				break
			}
		}
		if p != nil {
			return p, nil
		}
	}
	return nil, nil
}

// npyMetadata is the metadata.parquet of the npy set in dir as the next
// run will find it: the finished temporary of a set whose publication was
// cut (findPendingNpySet), which that run's clean-up publishes, or else
// dir/metadata.parquet. A dry run, which changes nothing, reads what the
// run will resume from.
func npyMetadata(dir string) (string, error) {
	p, err := findPendingNpySet(dir)
	if err != nil || p == nil {
		return filepath.Join(dir, metadataName), err
	}
	return p.metadata, nil
}

// finishedMetadata reads the row count and file metadata of the Parquet
// file at path; ok is false when it is not a complete Parquet file (one
// still being written has no footer) or has no maeembed.* metadata.
func finishedMetadata(path string) (rows int64, kv map[string]string, ok bool) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return 0, nil, false
	}
	defer pf.Close()
	kv = parquetKV(pf)
	for k := range kv {
		if strings.HasPrefix(k, "maeembed.") {
			return pf.NumRows(), kv, true
		}
	}
	return 0, nil, false
}

// parquetRows is the row count of the Parquet file at path (ok false when
// there is none or it cannot be read).
func parquetRows(path string) (rows int64, ok bool) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return 0, false
	}
	defer pf.Close()
	return pf.NumRows(), true
}

// npyRows is the leading dimension of the float32 .npy file at path, when
// its header is complete and its size is exactly what its shape needs; -1
// otherwise (missing, unreadable, a header not yet patched, cut short).
func npyRows(path string) int64 {
	f, h, err := openNpyFloat32(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || len(h.shape) == 0 || st.Size() != h.dataOff+4*int64(h.count()) {
		return -1
	}
	return int64(h.shape[0])
}

// pendingFound, when set (by a test), runs between finding a pending set
// and locking its temporaries, where another run may complete it first.
var pendingFound func()

// pendingFlock is syscall.Flock; a test makes it fail as a file system
// without flock, or a lock manager out of locks (ENOLCK), would.
var pendingFlock = syscall.Flock

// completePendingNpySet finishes, in dir, the publication of an npy set
// that a killed run began (findPendingNpySet): it renames the .npy
// temporaries not yet in place, then metadata.parquet's, as the run would
// have, so none of the set's rows is lost or processed again, and a
// reader never sees metadata.parquet name a row the .npy files lack. A
// temporary whose writer is alive (it holds the file's lock) is left
// alone, and so is the whole set; a temporary gone by the time it is
// opened (another run's clean-up completed the set) leaves nothing to
// complete. Where the lock cannot be taken at all (a file system without
// flock, ENOLCK), the set is completed unlocked, as atomicfile's writers
// go on unlocked there. It reports whether it published the set.
func completePendingNpySet(dir string) (bool, error) {
	p, err := findPendingNpySet(dir)
	if p == nil || err != nil {
		return false, err
	}
	if pendingFound != nil {
		pendingFound()
	}
	paths := []string{p.metadata}
	for _, t := range p.temps {
		paths = append(paths, t)
	}
	// Locked while we rename them, as their writer did: another run's
	// clean-up leaves them alone meanwhile.
	for _, path := range paths {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // renamed into place (or removed) meanwhile: another run finished the set
		}
		if err != nil {
			return false, fmt.Errorf("complete the npy set in %s: %w", dir, err)
		}
		defer f.Close()
		if err := pendingFlock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return false, nil // its writer is alive: the publication is its own
			}
			// No lock to be had here: its writer (atomicfile.Create)
			// could take none either and went on without it, so the lock
			// tells nothing, and the set, every file of it finished
			// (findPendingNpySet), is completed as its writer would.
			slog.Debug("completing an npy set without its files' locks", "path", path, "err", err)
		}
		if err := f.Sync(); err != nil {
			return false, fmt.Errorf("complete the npy set in %s: sync %s: %w", dir, path, err)
		}
	}
	var renamed []string
	for _, name := range p.names {
		if p.temps[name] == "" {
			continue // in place already
		}
		if err := os.Rename(p.temps[name], filepath.Join(dir, name)); err != nil {
			return false, fmt.Errorf("complete the npy set in %s: %w", dir, err)
		}
		renamed = append(renamed, name)
	}
	if err := os.Rename(p.metadata, filepath.Join(dir, metadataName)); err != nil {
		return false, fmt.Errorf("complete the npy set in %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return false, fmt.Errorf("complete the npy set in %s: %w", dir, err)
	}
	slog.Info("completed the publication of an npy set that an interrupted run began: its rows are kept, and the run resumes after them",
		"dir", dir, "rows", p.rows, "renamed", strings.Join(append(renamed, metadataName), ", "))
	return true, nil
}
