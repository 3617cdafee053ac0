package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	helperEnv = "ATOMICFILE_HELPER"
	pattern   = ".out.bin.tmp-*"
)

func isOurs(e fs.DirEntry) bool {
	return strings.HasPrefix(e.Name(), ".out.bin.tmp-") || strings.HasPrefix(e.Name(), ".d.tmp-")
}

// TestHelper is the child process of the tests below: in the directory
// in helperEnv it writes 1 MiB into out.bin's temporary, says "writing"
// and, told "commit" on stdin, commits; until then (or until stdin
// closes, or it is killed) it holds the temporary open and locked.
func TestHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process")
	}
	a, err := Create(filepath.Join(dir, "out.bin"), pattern)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'n'}, 1<<16)
	for range 16 {
		if _, err := a.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	os.Stdout.WriteString("writing\n")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "commit" {
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			os.Stdout.WriteString("committed\n")
			return
		}
	}
}

// child starts TestHelper writing into dir and waits until it is under
// way; the returned function sends it a line.
func child(t *testing.T, dir string) (*exec.Cmd, func(string), *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "writing" {
		t.Fatalf("helper: %q", out.Text())
	}
	return cmd, func(s string) { stdin.Write([]byte(s + "\n")) }, out
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if isOurs(e) {
			out = append(out, e.Name())
		}
	}
	return out
}

// A writer killed (kill -9) while writing leaves the old complete file
// under the final name, never part of the new one; its temporary is
// stale at once (the kernel dropped its lock) and a cleanup removes it.
func TestKilledWriterLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "out.bin")
	if err := Write(final, pattern, func(f *os.File) error { _, err := f.WriteString("old"); return err }); err != nil {
		t.Fatal(err)
	}
	cmd, _, _ := child(t, dir)
	if tmp := temps(t, dir); len(tmp) != 1 {
		t.Fatalf("temporaries while writing: %v", tmp)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if b, err := os.ReadFile(final); err != nil || string(b) != "old" {
		t.Fatalf("after the kill %s holds %d bytes (%v), want the old file", final, len(b), err)
	}
	removed, err := RemoveStale(dir, isOurs, 0)
	if err != nil || len(removed) != 1 {
		t.Fatalf("cleanup removed %v (%v), want the killed writer's temporary", removed, err)
	}
	if tmp := temps(t, dir); len(tmp) != 0 {
		t.Fatalf("temporaries after cleanup: %v", tmp)
	}
}

// A cleanup beside a live writer in another process leaves its
// temporary, however old, and the writer still publishes it.
func TestCleanupLeavesLiveWriter(t *testing.T) {
	dir := t.TempDir()
	cmd, send, out := child(t, dir)
	tmp := temps(t, dir)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, tmp[0]), old, old)
	for _, grace := range []time.Duration{0, time.Second} {
		if removed, err := RemoveStale(dir, isOurs, grace); err != nil || len(removed) != 0 {
			t.Fatalf("grace %v: cleanup removed %v (%v) beside a live writer", grace, removed, err)
		}
	}
	send("commit")
	if !out.Scan() || out.Text() != "committed" {
		t.Fatalf("helper after cleanup: %q", out.Text())
	}
	cmd.Wait()
	if st, err := os.Stat(filepath.Join(dir, "out.bin")); err != nil || st.Size() != 1<<20 || st.Mode().Perm() != 0o644 {
		t.Fatalf("published file: %v, %v", st, err)
	}
}

// In one process too: the lock is the open file's, not the process's.
func TestCleanupLeavesOwnOpenTemporary(t *testing.T) {
	dir := t.TempDir()
	a, err := Create(filepath.Join(dir, "out.bin"), pattern)
	if err != nil {
		t.Fatal(err)
	}
	d, err := MkdirTemp(dir, ".d.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := RemoveStale(dir, isOurs, 0); err != nil || len(removed) != 0 {
		t.Fatalf("removed %v (%v)", removed, err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	d.Abort() // after Commit: nothing
	for _, n := range []string{"out.bin", "d"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Error(err)
		}
	}
}

// With a grace period, a lockable temporary goes only once nothing in it
// changed for that long: a directory whose entry changed recently stays.
// Names the caller does not match and symbolic links are never touched.
func TestStaleByAge(t *testing.T) {
	dir := t.TempDir()
	old, soon := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	mk := func(name string, isDir bool, inner time.Time) string {
		p := filepath.Join(dir, name)
		file := p
		if isDir {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			file = filepath.Join(p, "model.safetensors")
		}
		if err := os.WriteFile(file, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		if isDir {
			os.Chtimes(p, old, old) // before its entry's time: that is what counts
		}
		os.Chtimes(file, inner, inner)
		return name
	}
	stale := []string{mk(".out.bin.tmp-1", false, old), mk(".d.tmp-1", true, old)}
	young := []string{mk(".out.bin.tmp-2", false, soon), mk(".d.tmp-2", true, soon)}
	other := mk(".other.tmp-1", false, old)
	target := filepath.Join(dir, other)
	if err := os.Symlink(target, filepath.Join(dir, ".out.bin.tmp-3")); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, isOurs, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range removed {
		removed[i] = filepath.Base(removed[i])
	}
	slices.Sort(removed)
	slices.Sort(stale)
	if !slices.Equal(removed, stale) {
		t.Errorf("removed %v, want %v", removed, stale)
	}
	for _, n := range append(young, other, ".out.bin.tmp-3") {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
	if removed, err := RemoveStale(filepath.Join(dir, "missing"), isOurs, 0); err != nil || removed != nil {
		t.Errorf("missing dir: %v, %v", removed, err)
	}
}

// A temporary that a cleaner removed between its creation and its lock
// is noticed once locked, so Create starts over rather than writing into
// a file no one will see.
func TestLockNoticesRemovedTemporary(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Remove(f.Name())
	if err := lock(f); !errors.Is(err, errTakenAway) {
		t.Errorf("lock of a removed temporary: %v, want errTakenAway", err)
	}
	g, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := lock(g); err != nil {
		t.Errorf("lock of a temporary in place: %v", err)
	}
}

// CommitNew never replaces a file: a taken name makes it ask for the next.
// Abort leaves the final name as it was.
func TestCommitNewAndAbort(t *testing.T) {
	dir := t.TempDir()
	p0, p1 := filepath.Join(dir, "part-0"), filepath.Join(dir, "part-1")
	if err := os.WriteFile(p0, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Create(p0, ".part.*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	a.WriteString("second")
	got, err := a.CommitNew(func() string { return p1 })
	if err != nil || got != p1 {
		t.Fatalf("CommitNew: %s, %v; want %s", got, err, p1)
	}
	if b, _ := os.ReadFile(p0); string(b) != "first" {
		t.Errorf("part-0 replaced: %q", b)
	}
	if b, _ := os.ReadFile(p1); string(b) != "second" {
		t.Errorf("part-1: %q", b)
	}
	b, err := Create(p0, ".part.*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("third")
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("after Abort: %v", ents)
	}
	if b, _ := os.ReadFile(p0); string(b) != "first" {
		t.Errorf("part-0 after Abort: %q", b)
	}
}

// A failure inside the lock step, after the temporary was created (here
// the fstat of the locked file, as a stale NFS handle fails it), leaves
// no temporary behind, for Create and MkdirTemp alike.
func TestLockStepFailureRemovesTemporary(t *testing.T) {
	defer func(f func(*os.File) (os.FileInfo, error)) { fstat = f }(fstat)
	fstat = func(*os.File) (os.FileInfo, error) { return nil, syscall.ESTALE }
	dir := t.TempDir()
	if a, err := Create(filepath.Join(dir, "out.bin"), pattern); err == nil || !errors.Is(err, syscall.ESTALE) {
		t.Errorf("Create with a failing stat: %v, %v", a, err)
	}
	if d, err := MkdirTemp(dir, ".d.tmp-*"); err == nil || !errors.Is(err, syscall.ESTALE) {
		t.Errorf("MkdirTemp with a failing stat: %v, %v", d, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// Dir.Commit onto a non-empty directory fails and removes the temporary
// itself, as File.Commit does, without the caller's Abort; final stays
// as it was.
func TestDirCommitFailureRemovesTemporary(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "d")
	if err := os.MkdirAll(filepath.Join(final, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := MkdirTemp(parent, ".d.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = d.Commit(final)
	if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("Commit onto a non-empty directory: %v", err)
	}
	if got := temps(t, parent); len(got) != 0 {
		t.Errorf("temporaries left after a failed Commit: %v", got)
	}
	if _, err := os.Stat(filepath.Join(final, "keep")); err != nil {
		t.Errorf("final changed: %v", err)
	}
	d.Abort() // does nothing now
}

// HoldLock: a second holder is refused with EWOULDBLOCK (or waits, with
// wait), release removes the lock file, and a check that keeps failing
// after the flock (here the fstat) is an error, not an endless retry.
func TestHoldLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	release, err := HoldLock(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := HoldLock(path, false); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("second HoldLock: %v, want EWOULDBLOCK", err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := HoldLock(path, true)
		if err == nil {
			r()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("waiting HoldLock: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file after release: %v", err)
	}

	defer func(f func(*os.File) (os.FileInfo, error)) { fstat = f }(fstat)
	fstat = func(*os.File) (os.FileInfo, error) { return nil, syscall.ESTALE }
	if _, err := HoldLock(path, false); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("HoldLock with a failing stat: %v", err)
	}
}

// HoldLock whose flock fails otherwise than "held" (ENOLCK: the lock
// manager out of locks for this process) removes a lock file it made
// itself (none can be locked: a file system without flock), but never
// one it found: a live holder's, which a third process would otherwise
// lock anew while that holder still works.
func TestHoldLockFailureLeavesAHoldersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	release, err := HoldLock(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	defer func(f func(int, int) error) { flock = f }(flock)
	flock = func(int, int) error { return syscall.ENOLCK }
	if _, err := HoldLock(path, false); !errors.Is(err, syscall.ENOLCK) {
		t.Errorf("HoldLock with a failing flock: %v, want ENOLCK", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the holder's lock file after another's failed flock: %v", err)
	}
	other := filepath.Join(filepath.Dir(path), ".y.lock")
	if _, err := HoldLock(other, true); !errors.Is(err, syscall.ENOLCK) {
		t.Errorf("HoldLock with a failing flock: %v, want ENOLCK", err)
	}
	if _, err := os.Lstat(other); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the lock file HoldLock made and could not lock stayed: %v", err)
	}
}

// Commit syncs the data once; CommitSynced, for a file its writer synced,
// does not sync it again, and publishes it all the same.
func TestCommitSyncsOnce(t *testing.T) {
	dir := t.TempDir()
	synced := map[string]int{}
	OnSync = func(final string) { synced[filepath.Base(final)]++ }
	defer func() { OnSync = nil }()
	for _, name := range []string{"commit", "synced"} {
		a, err := Create(filepath.Join(dir, name), pattern)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.WriteString(name); err != nil {
			t.Fatal(err)
		}
		if name == "commit" {
			err = a.Commit()
		} else if err = a.Sync(); err == nil {
			err = a.CommitSynced()
		}
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != name {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if synced["commit"] != 1 || synced["synced"] != 1 {
		t.Errorf("synced %v, want each once", synced)
	}
}
