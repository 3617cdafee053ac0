// Package builtin is maeembed's built-in model: a ViT-Tiny MAE (encoder and
// decoder) trained with `maeembed pretrain` on photos that Debian packages
// ship (docs/pretrain.md has the command), stored as float16 in the Hugging
// Face layout and embedded in the binary, so that embed and reconstruct work
// on a machine without network.
package builtin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/maeembed/maeembed/mae/weights"
)

// Name is the --model value that selects the built-in model (the default).
const Name = "builtin"

// Description says what the built-in model is, for the log line of a run.
const Description = "maeembed's built-in ViT-Tiny MAE (D 192, depth 12, patch 16, 224 px; trained on Debian wallpaper photos, docs/pretrain.md)"

//go:embed model/config.json model/model.safetensors
var files embed.FS

// Dir returns a directory holding the built-in model in the Hugging Face
// layout, which every loader takes: the embedded files are written once,
// atomically, under cacheDir/builtin-<content hash>/ ("" = the default
// cache directory), else, if that cannot be written, under a directory of
// this user's own in the system temporary directory (maeembed-<uid>, mode
// 0700: another user's directory there is never used, nor written into).
func Dir(cacheDir string) (string, error) {
	cfg, st, name, err := contents()
	if err != nil {
		return "", err
	}
	var firstErr error
	for _, base := range candidates(cacheDir) {
		if base == userTempDir() {
			if err := ownPrivateDir(base); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
		}
		dir := filepath.Join(base, name)
		if complete(dir, cfg, st) {
			// A first run killed while unpacking leaves its temporaries
			// beside the finished files; later runs take them away.
			weights.RemoveStaleTemps(dir)
			return dir, nil
		}
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = weights.WriteFileAtomic(filepath.Join(dir, weights.HFSafetensorsFile), writeAll(st))
		}
		if err == nil {
			err = weights.WriteFileAtomic(filepath.Join(dir, weights.HFConfigFile), writeAll(cfg))
		}
		if err == nil {
			return dir, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", fmt.Errorf("built-in model: %w", firstErr)
}

// Unpacked is Dir for a dry run, which writes nothing: the directory Dir
// would use, and whether an earlier run already unpacked the model there
// (ok). Like Dir it looks past the cache directory only when that cannot
// be written. Size is the bytes Dir would write.
func Unpacked(cacheDir string) (dir string, size int64, ok bool, err error) {
	cfg, st, name, err := contents()
	if err != nil {
		return "", 0, false, err
	}
	size = int64(len(cfg) + len(st))
	cands := candidates(cacheDir)
	for i, base := range cands {
		d := filepath.Join(base, name)
		if base == userTempDir() && !ownedOrAbsent(base) {
			continue
		}
		if complete(d, cfg, st) {
			return d, size, true, nil
		}
		if i == len(cands)-1 || writable(d) {
			return d, size, false, nil
		}
	}
	return filepath.Join(cands[0], name), size, false, nil
}

// Config is the built-in model's config.json, read from the binary.
func Config() (*weights.HFConfig, error) {
	b, err := files.ReadFile("model/config.json")
	if err != nil {
		return nil, err
	}
	cfg := weights.DefaultHFConfig()
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("built-in model: config.json: %w", err)
	}
	return &cfg, nil
}

// contents are the embedded files and the directory name they go to
// (named by their content hash).
func contents() (cfg, st []byte, name string, err error) {
	if cfg, err = files.ReadFile("model/config.json"); err != nil {
		return nil, nil, "", err
	}
	if st, err = files.ReadFile("model/model.safetensors"); err != nil {
		return nil, nil, "", err
	}
	h := sha256.New()
	h.Write(cfg)
	h.Write(st)
	return cfg, st, "builtin-" + hex.EncodeToString(h.Sum(nil)[:8]), nil
}

func candidates(cacheDir string) []string {
	if cacheDir != "" {
		return []string{cacheDir, userTempDir()}
	}
	if d, err := weights.DefaultCacheDir(); err == nil {
		return []string{d, userTempDir()}
	}
	return []string{userTempDir()}
}

// userTempDir is the fallback for a cache directory that cannot be
// written: one directory per user in the shared temporary directory, so
// that one user's unpacked (or half-unpacked) files never stand in the
// way of another's.
func userTempDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("maeembed-%d", os.Getuid()))
}

// ownPrivateDir makes dir (mode 0700) if it is missing and checks that it
// is a directory of this user's, not a link or another user's directory
// made there first.
func ownPrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if !ownedOrAbsent(dir) {
		return fmt.Errorf("%s is not a directory of this user's (uid %d): not used", dir, os.Getuid())
	}
	return nil
}

// ownedOrAbsent tells whether dir is missing, or is a directory (not a
// link) owned by this process's user.
func ownedOrAbsent(dir string) bool {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil || !fi.IsDir() {
		return false
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid) == os.Getuid()
	}
	return true
}

// writable tells whether dir could be made and written: its nearest
// existing ancestor (itself if it exists) allows this user to write.
func writable(dir string) bool {
	for p := dir; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			return fi.IsDir() && syscall.Access(p, 2 /* W_OK */) == nil
		}
		if filepath.Dir(p) == p {
			return false
		}
	}
}

// complete tells whether dir already holds both files with the embedded
// contents. Files appear only complete, but one damaged since (a flipped
// bit keeps the size) would otherwise be loaded as the built-in model,
// with other weights under the same name; Dir then writes it again.
func complete(dir string, cfg, st []byte) bool {
	return sameContent(filepath.Join(dir, weights.HFConfigFile), cfg) &&
		sameContent(filepath.Join(dir, weights.HFSafetensorsFile), st)
}

// sameContent compares the file at path with want, 64 KiB at a time.
func sameContent(path string, want []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(want)) {
		return false
	}
	buf := make([]byte, 64<<10)
	for off := 0; off < len(want); {
		n, err := io.ReadFull(f, buf[:min(len(buf), len(want)-off)])
		if err != nil || !bytes.Equal(buf[:n], want[off:off+n]) {
			return false
		}
		off += n
	}
	return true
}

func writeAll(b []byte) func(*os.File) error {
	return func(f *os.File) error { _, err := f.Write(b); return err }
}
