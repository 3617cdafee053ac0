package builtin_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/builtin"
)

// The embedded model loads (float16 upcast), has its decoder, and embeds
// and reconstructs an image; a second Dir reuses the written files.
func TestBuiltinLoadsAndRuns(t *testing.T) {
	cache := t.TempDir()
	dir, err := builtin.Dir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != cache {
		t.Errorf("written to %s, not under the cache %s", dir, cache)
	}
	again, err := builtin.Dir(cache)
	if err != nil || again != dir {
		t.Fatalf("second Dir: %s, %v; want %s", again, err, dir)
	}
	m, err := mae.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Dim != 192 || c.Depth != 12 || c.Heads != 3 || c.PatchSize != 16 || c.ImageSize != 224 || !m.HasDecoder() {
		t.Fatalf("unexpected built-in model %+v (decoder %v)", c, m.HasDecoder())
	}
	n := 1
	patches := make([]float32, n*c.NumPatches()*c.PatchDim())
	for i := range patches {
		patches[i] = float32(math.Sin(float64(i) / 97))
	}
	out := make([]float32, n*c.Dim)
	if err := m.Embed(out, patches, n, mae.PoolMean); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("embedding[%d] = %v", i, v)
		}
	}
	noise := make([]float32, c.NumPatches())
	mae.NoiseRow(noise, 1, 0)
	r, err := m.Reconstruct(patches, noise, n, 0.75, c.NormPixLoss)
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Loss[0]; !(l >= 0) || math.IsInf(float64(l), 0) {
		t.Fatalf("reconstruction loss %v", l)
	}
}

// A temporary left by a first run killed while unpacking (no live writer
// holds its lock, unchanged for long) is removed by the next Dir; the
// finished files stay.
func TestBuiltinRemovesKilledUnpackTemps(t *testing.T) {
	cache := t.TempDir()
	dir, err := builtin.Dir(cache)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".model.safetensors.tmp-123456")
	if err := os.WriteFile(stale, []byte("half a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if again, err := builtin.Dir(cache); err != nil || again != dir {
		t.Fatalf("second Dir: %s, %v; want %s", again, err, dir)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("killed unpack's temporary still there (stat: %v)", err)
	}
	if _, err := mae.Load(dir, ""); err != nil {
		t.Errorf("finished files damaged: %v", err)
	}
}

// An unpacked file damaged in place (same size, a flipped byte) is not
// taken as the built-in model: Dir writes it again, and a dry run
// (Unpacked) reports that it would.
func TestBuiltinRewritesDamagedUnpack(t *testing.T) {
	cache := t.TempDir()
	dir, err := builtin.Dir(cache)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1000] ^= 0xff
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if d, _, ok, err := builtin.Unpacked(cache); err != nil || ok || d != dir {
		t.Errorf("Unpacked with a damaged file = %s, %v, %v; want %s, not unpacked", d, ok, err, dir)
	}
	if again, err := builtin.Dir(cache); err != nil || again != dir {
		t.Fatalf("Dir after damage: %s, %v; want %s", again, err, dir)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, good) {
		t.Errorf("damaged model.safetensors not rewritten (read: %v)", err)
	}
	if _, _, ok, err := builtin.Unpacked(cache); err != nil || !ok {
		t.Errorf("Unpacked after the rewrite: %v, %v; want unpacked", ok, err)
	}
}

// The temporary-directory fallback is this user's own directory, used
// only when the cache directory cannot be written; a dry run's Unpacked
// names the directory Dir uses, whatever the fallback holds.
func TestBuiltinTempFallback(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	blocked := filepath.Join(t.TempDir(), "cache-is-a-file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := builtin.Dir(blocked)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(dir)
	if filepath.Dir(base) != tmp || filepath.Base(base) != fmt.Sprintf("maeembed-%d", os.Getuid()) {
		t.Fatalf("fallback %s, want %s/maeembed-<uid>/…", dir, tmp)
	}
	if fi, err := os.Stat(base); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("fallback directory %s: %v, %v; want mode 0700", base, fi.Mode(), err)
	}
	if d, _, ok, err := builtin.Unpacked(blocked); err != nil || !ok || d != dir {
		t.Errorf("Unpacked with the cache blocked = %s, %v, %v; want %s, unpacked", d, ok, err, dir)
	}
	// A writable cache is where Dir writes, so a dry run must not report
	// the copy in the fallback as the one in use.
	cache := t.TempDir()
	if d, _, ok, err := builtin.Unpacked(cache); err != nil || ok || filepath.Dir(d) != cache {
		t.Errorf("Unpacked with a writable cache = %s, %v, %v; want not yet unpacked under %s", d, ok, err, cache)
	}

	// Another user's directory in its place is neither used nor written.
	if os.Getuid() != 0 {
		t.Skip("needs root to make a directory of another user's")
	}
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if d, err := builtin.Dir(blocked); err == nil {
		t.Errorf("Dir used %s, in another user's directory", d)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Errorf("wrote %d entries into another user's directory", len(ents))
	}
}
