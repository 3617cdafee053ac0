package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: whatever the bytes, Load returns tensors or an error; it never
// panics and never allocates beyond what the file can hold (the test binary
// would be killed). The seeds cover every reader: torch zip and legacy
// pickle files, safetensors, and the hostile shapes of TestLoadHostileSizes.
// Run longer locally with: go test ./mae/weights -run '^$' -fuzz FuzzLoad -fuzztime 5m
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"views.pth", "views_legacy.pth", "list.pth", "int_tensor.pth", "half_module.pth", "bare_mixed.safetensors"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	// Hand-built files: the same builders as the unit tests.
	dir := f.TempDir()
	four := make([]byte, 16)
	torchZip(f, filepath.Join(dir, "zip"), stateDictPickle("0", 4, []int64{2, 2}, []int64{2, 1}, false),
		map[string]*zip.FileHeader{"0": {Method: zip.Store, CompressedSize64: 16, UncompressedSize64: 16}},
		map[string][]byte{"0": four})
	var data bytes.Buffer
	binary.Write(&data, binary.LittleEndian, uint64(4))
	data.Write(four)
	legacyFile(f, filepath.Join(dir, "legacy"), stateDictPickle("0", 4, []int64{2, 2}, []int64{2, 1}, true), []string{"0"}, data.Bytes())
	stFile(f, filepath.Join(dir, "st"), map[string]any{
		"w": map[string]any{"dtype": "F16", "shape": []int{2, 4}, "data_offsets": []int{0, 16}}}, four)
	for _, n := range []string{"zip", "legacy", "st"} {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "ckpt")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ck, err := Load(path)
		if err != nil {
			return
		}
		for name, tn := range ck.Tensors {
			if n, err := checkedNumel(tn.Shape); err != nil || n != len(tn.Data) {
				t.Fatalf("tensor %s: shape %v with %d values", name, tn.Shape, len(tn.Data))
			}
		}
	})
}
