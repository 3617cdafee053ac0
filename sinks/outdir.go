package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Kind locks: every run writing into an output directory holds a shared
// flock on .maeembed-kind-KIND.lock for its lifetime, KIND naming what it
// writes (command, format and shard count of a batch run, format and
// consumer group of a stream worker). Runs of one kind may share the directory (shards,
// the workers of one group); a run of another kind while one is live would
// write overlapping ids (shards 0/2 and 0/3 both take id 0; two groups
// each consume every message) or mix formats, so it is refused. Start-ups
// are serialised by .maeembed-start.lock so two runs starting at once see
// each other.
const (
	kindPrefix = ".maeembed-kind-"
	lockSuffix = ".lock"
)

// TakeOutputKind takes dir's kind lock for kind (a file name's part, no
// '/') and returns its release; it fails, naming the live kinds, when a
// process holds the lock of another kind. It makes dir and its missing
// parents, and returns those it made (makeDirs): a run that ends without
// writing anything gives them to RemoveMadeDirs after release, so it
// leaves no new directory behind. When it fails, it removes them itself.
func TakeOutputKind(dir, kind string) (release func() error, made []string, err error) {
	release, made, err = takeOutputKind(dir, kind)
	if err != nil {
		RemoveMadeDirs(made)
		return nil, nil, err
	}
	return release, made, nil
}

func takeOutputKind(dir, kind string) (release func() error, made []string, err error) {
	var unlockStart func()
	for tries := 0; ; tries++ {
		if made, err = makeDirs(dir, made); err != nil {
			return nil, made, fmt.Errorf("output: %w", err)
		}
		unlockStart, err = lockStart(dir)
		// A run that made dir and ended without writing anything removes
		// it again (an empty directory only, RemoveMadeDirs): between
		// makeDirs and the lock it may have gone, so make it again.
		if err == nil || !errors.Is(err, os.ErrNotExist) || tries == maxMakeTries {
			break
		}
	}
	if err != nil {
		return nil, made, err
	}
	defer unlockStart()
	if err := otherKinds(dir, kind, true); err != nil {
		return nil, made, err
	}
	f, err := os.OpenFile(filepath.Join(dir, kindPrefix+kind+lockSuffix), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, made, fmt.Errorf("output lock: %w", err)
	}
	// The first live run of its kind: what a run of this kind that is
	// gone recorded in the file (LiveRunSettings) is no live run's.
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, made, fmt.Errorf("output lock: %w", err)
		}
	}
	// Only a start-up (which we exclude) holds it exclusively, briefly.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, made, fmt.Errorf("output lock: %w", err)
	}
	return func() error {
		// The last run of its kind removes the lock file, so a finished
		// run leaves no hidden file behind (under the start lock: no one
		// is taking it meanwhile).
		if unlock, err := lockStart(dir); err == nil {
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				os.Remove(f.Name())
			}
			defer unlock()
		}
		return f.Close()
	}, made, nil
}

// maxMakeTries bounds how often a run makes its output directory again
// because another run removed it (or a parent of it) meanwhile: each time,
// that run ended, so many runs starting and ending at once into one new
// directory still get through.
const maxMakeTries = 100

// makeDirs makes dir and those of its parents that do not exist, one at a
// time (not os.MkdirAll, which does not say which it made), and adds to
// made the ones it made (one already in made is not added again): exactly
// the directories that did not exist before. One that another process
// makes meanwhile is not counted (it is that process's). A parent that a
// run that wrote nothing removes meanwhile (RemoveMadeDirs) is made again,
// and then counted.
func makeDirs(dir string, made []string) ([]string, error) {
	dir = filepath.Clean(dir)
	for tries := 0; ; tries++ {
		// The missing directories, the deepest first.
		var missing []string
		for d := dir; ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err == nil {
				if !fi.IsDir() {
					return made, &os.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
				}
				break
			}
			if !errors.Is(err, os.ErrNotExist) {
				return made, err
			}
			missing = append(missing, d)
			if filepath.Dir(d) == d {
				break
			}
		}
		gone := false
		for i := len(missing) - 1; i >= 0 && !gone; i-- {
			d := missing[i]
			switch err := os.Mkdir(d, 0o755); {
			case err == nil:
				if !slices.Contains(made, d) {
					made = append(made, d)
				}
			case errors.Is(err, os.ErrExist):
				// Made by another process meanwhile (not ours to
				// remove, nor counted); a file put there meanwhile is
				// refused with Mkdir's error.
				if fi, serr := os.Stat(d); serr == nil && !fi.IsDir() {
					return made, err
				}
			case errors.Is(err, os.ErrNotExist) && tries < maxMakeTries:
				// Its parent went since the Stat (a run that wrote
				// nothing removed the empty directories it made): start
				// over from the top.
				gone = true
			default:
				return made, err
			}
		}
		if !gone {
			return made, nil
		}
	}
}

// RemoveMadeDirs removes the directories made (TakeOutputKind's: the
// output directory and parents of it) that are still empty, the deepest
// first, so a run that wrote nothing leaves none of those it made behind.
// A directory that is not empty (a file or another run's directory in it)
// stays, and so do its parents; one already gone (another run removed it)
// is passed over. A directory that existed before the run is never in
// made, so it always stays. Errors are not reported: what cannot be
// removed stays.
func RemoveMadeDirs(made []string) {
	// All on one path, so the longer name is the deeper directory.
	made = slices.Clone(made)
	slices.SortFunc(made, func(a, b string) int { return len(b) - len(a) })
	for _, d := range made {
		// Rmdir, not os.Remove: a file put in a directory's place is not
		// removed either.
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			return // not empty: nor are its parents
		}
	}
}

// LiveRunSettings keeps the live runs of one kind in dir (shards, the
// workers of a group) to one set of output metadata, keys/vals (every
// maeembed.* key, as a resume compares them): the first to open its
// output records them in its kind's lock file, and a later one whose
// metadata differs is refused, naming the key, as a resume would be. The
// check at a resume only sees published outputs, and two shards started
// together (other --pool, --model, --resize) have none yet. Every writer
// of a run's outputs calls it when it opens dir (Parquet and Arrow parts,
// npy sets, PNG panels); a dry run makes the same comparison without
// recording (checkResume). A directory without a live kind lock is left
// alone.
func LiveRunSettings(dir string, keys, vals []string) error {
	return liveRunSettings(dir, keys, vals, nil, true)
}

// liveRunSettings compares keys/vals with the settings the live runs of
// dir recorded (keys in ignore are not compared) and, with record, records
// them for a live kind that has none yet (LiveRunSettings). A missing dir
// holds no live run.
func liveRunSettings(dir string, keys, vals, ignore []string, record bool) error {
	return existingUnderStartLock(dir, func() error { return compareLiveSettings(dir, keys, vals, ignore, record) })
}

// compareLiveSettings is liveRunSettings under dir's start lock.
func compareLiveSettings(dir string, keys, vals, ignore []string, record bool) error {
	live, err := liveKinds(dir, "", false)
	if err != nil {
		return err
	}
	for _, l := range live {
		data, err := os.ReadFile(l.path)
		if err != nil {
			return fmt.Errorf("output lock: %w", err)
		}
		if len(data) == 0 {
			if !record {
				continue // a live run that has not opened its writers yet
			}
			kv := make(map[string]string, len(keys))
			for i, k := range keys {
				kv[k] = vals[i]
			}
			if data, err = json.Marshal(kv); err == nil {
				err = os.WriteFile(l.path, data, 0o644)
			}
			if err != nil {
				return fmt.Errorf("output lock: %w", err)
			}
			continue
		}
		var kv map[string]string
		if err := json.Unmarshal(data, &kv); err != nil {
			return fmt.Errorf("output lock %s: %w", l.path, err)
		}
		for _, k := range ignore {
			delete(kv, k)
		}
		if err := compatible(fmt.Sprintf("output %s, being written by a live run of this kind,", dir), kv, keys, vals); err != nil {
			return err
		}
	}
	return nil
}

// HasLiveRuns reports whether a live process holds a kind lock in dir (a
// run writing into it now). A missing dir has none.
func HasLiveRuns(dir string) (bool, error) {
	var live []kindLock
	err := existingUnderStartLock(dir, func() (err error) {
		live, err = liveKinds(dir, "", false)
		return err
	})
	return len(live) > 0, err
}

// ProbeOutputKind fails as TakeOutputKind would, when a process holds the
// lock of another kind in dir, but holds no lock afterwards, leaves
// nothing behind (a missing dir is free, stale lock files stay): a dry
// run's check.
func ProbeOutputKind(dir, kind string) error {
	return existingUnderStartLock(dir, func() error { return otherKinds(dir, kind, false) })
}

// beforeStartLock, when set (by tests), runs in existingUnderStartLock
// between its check that dir exists and its taking of the start lock.
var beforeStartLock func()

// existingUnderStartLock runs f, which reads dir's kind locks, while it
// holds dir's start lock, as a start-up does, so that a run starting now
// does not see f's test locks as a live run. A missing dir holds no lock:
// f is not run (nil), also when dir goes between the check and the lock
// (a run that wrote nothing removes the empty directories it made).
func existingUnderStartLock(dir string, f func() error) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if beforeStartLock != nil {
		beforeStartLock()
	}
	unlock, err := lockStart(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// kindLock is a kind lock in an output directory that a live run holds.
type kindLock struct{ kind, path string }

// liveKinds walks dir's kind lock files, under the start lock, and returns
// those a live process holds, in name order; the lock of except (a kind,
// or "" for none) is passed over unchecked, and removeStale removes the
// lock files of runs that are gone.
func liveKinds(dir, except string, removeStale bool) ([]kindLock, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	var live []kindLock
	for _, e := range ents {
		kind, ok := strings.CutPrefix(e.Name(), kindPrefix)
		kind, ok2 := strings.CutSuffix(kind, lockSuffix)
		if !ok || !ok2 || (except != "" && kind == except) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		held, err := kindHeld(path, removeStale)
		if err != nil {
			return nil, err
		}
		if held {
			live = append(live, kindLock{kind, path})
		}
	}
	return live, nil
}

// otherKinds fails, naming them, when live processes hold kind locks of
// kinds other than kind in dir (under the start lock); removeStale removes
// the lock files of runs that are gone.
func otherKinds(dir, kind string, removeStale bool) error {
	locks, err := liveKinds(dir, kind, removeStale)
	if err != nil {
		return err
	}
	var live []string
	for _, l := range locks {
		live = append(live, l.kind)
	}
	if len(live) > 0 {
		return fmt.Errorf("output %s is being written by a running process of another kind (%s; this run: %s): processes sharing a directory must be of one kind, "+
			"batch runs of one command, format and shard count or stream workers of one consumer group, or their outputs would mix and their ids overlap: "+
			"wait for it, or use another output directory", dir, strings.Join(live, ", "), kind)
	}
	return nil
}

// lockStart takes dir's start-up lock; unlock removes its file again.
func lockStart(dir string) (unlock func(), err error) {
	release, err := holdLock(filepath.Join(dir, ".maeembed-start"+lockSuffix), syscall.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("output lock: %w", err)
	}
	return func() { release() }, nil
}

// kindHeld reports whether a live process holds the kind lock at path; a
// stale one (its run is gone) is removed with removeStale.
func kindHeld(path string, removeStale bool) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("output lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil
		}
		return false, fmt.Errorf("output lock %s: %w", path, err)
	}
	if removeStale {
		os.Remove(path) // under the start lock: no run is taking it now
	}
	return false, nil
}

// PublishedFormats lists the formats of the outputs published in dir, in
// sorted order: "arrow" (part-NNNNN.arrow), "npy" (metadata.parquet of an
// npy set, or the finished temporaries of a set whose publication was cut,
// which the next run's clean-up publishes), "parquet" (part-NNNNN.parquet)
// and "png" (maeembed-png.json of reconstruct's panels), plus "errors"
// when dir/errors holds error parts. A missing dir holds nothing.
func PublishedFormats(dir string) ([]string, error) {
	var formats []string
	pendingNpy := false
	for _, d := range []string{dir, filepath.Join(dir, errorsDir)} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		for _, e := range ents {
			name := e.Name()
			switch m := partRe.FindStringSubmatch(name); {
			case d != dir && m != nil:
				formats = append(formats, "errors")
			case d == dir && name == metadataName:
				formats = append(formats, "npy")
			case d == dir && tempFinal(name) == metadataName:
				pendingNpy = true
			case d == dir && name == pngMetaName:
				formats = append(formats, "png")
			case d == dir && m != nil && (m[3] == "parquet" || m[3] == "arrow"):
				formats = append(formats, m[3])
			}
		}
	}
	if pendingNpy && !slices.Contains(formats, "npy") {
		// A set whose publication was cut, which the next run's clean-up
		// publishes (CleanTemps): npy output already.
		p, err := findPendingNpySet(dir)
		if err != nil {
			return nil, err
		}
		if p != nil {
			formats = append(formats, "npy")
		}
	}
	slices.Sort(formats)
	return slices.Compact(formats), nil
}

// OutputOf says whether dir, whose entry names are names (one os.ReadDir),
// is recognisably a maeembed output directory, and what marks it ("" when
// it is not): reconstruct's PNG settings file (maeembed-png.json), a kind
// lock file of a run (.maeembed-kind-*.lock), or a published part
// (part-NNNNN.parquet / .arrow, metadata.parquet of an npy set, or an
// error part under errors/) whose file metadata has maeembed.* keys. A
// part named so without such keys (another tool's part-00000.parquet)
// does not mark it. Only the candidates' metadata is read: a directory
// of images costs no extra I/O.
func OutputOf(dir string, names []string) string {
	for _, n := range names {
		if n == pngMetaName || strings.HasPrefix(n, kindPrefix) && strings.HasSuffix(n, lockSuffix) {
			return n
		}
	}
	for _, n := range names {
		if m := partRe.FindStringSubmatch(n); n == metadataName || m != nil && (m[3] == "parquet" || m[3] == "arrow") {
			if hasOutputMeta(filepath.Join(dir, n)) {
				return n
			}
		}
		if n == errorsDir {
			ents, _ := os.ReadDir(filepath.Join(dir, n))
			for _, e := range ents {
				if m := partRe.FindStringSubmatch(e.Name()); m != nil && m[3] == "parquet" && hasOutputMeta(filepath.Join(dir, n, e.Name())) {
					return filepath.Join(n, e.Name())
				}
			}
		}
	}
	return ""
}

// hasOutputMeta reports whether the Parquet or Arrow file at path carries
// maeembed.* file metadata (a file that cannot be read does not).
func hasOutputMeta(path string) bool {
	kv, err := fileMetadata(path)
	if err != nil {
		return false
	}
	for k := range kv {
		if strings.HasPrefix(k, "maeembed.") {
			return true
		}
	}
	return false
}
