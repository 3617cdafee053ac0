package weights

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// LoadHeader gives every fixture's names, shapes, format and config as
// Load does, and no data.
func TestLoadHeaderFixtures(t *testing.T) {
	for name := range readExpected(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			full, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			hd, err := LoadHeader(path)
			if err != nil {
				t.Fatal(err)
			}
			if hd.Format != full.Format || (hd.HF == nil) != (full.HF == nil) || hd.HF != nil && *hd.HF != *full.HF {
				t.Errorf("header: format %q, config %+v; Load: %q, %+v", hd.Format, hd.HF, full.Format, full.HF)
			}
			if len(hd.Tensors) != len(full.Tensors) {
				t.Errorf("header: %d tensors, Load: %d", len(hd.Tensors), len(full.Tensors))
			}
			for n, ft := range full.Tensors {
				ht := hd.Tensors[n]
				if ht == nil || !slices.Equal(ht.Shape, ft.Shape) || ht.Data != nil {
					t.Errorf("tensor %s: header %+v, Load shape %v", n, ht, ft.Shape)
				}
			}
		})
	}
}

// A file shorter than its header says fails LoadHeader too, from the
// sizes alone; what only the data shows (a record's CRC) does not.
func TestLoadHeaderTruncated(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	wantErr := func(path string, parts ...string) {
		t.Helper()
		_, err := LoadHeader(path)
		if err == nil {
			t.Errorf("LoadHeader(%s) succeeded, want an error", path)
			return
		}
		for _, s := range parts {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("LoadHeader(%s): %v; want it to mention %q", path, err, s)
			}
		}
	}
	for _, src := range []string{"testdata/hf_safetensors/model.safetensors", "testdata/bare_mixed.safetensors"} {
		st, _ := os.Stat(src)
		copyFile(t, src, p("trunc.safetensors"), int(st.Size())-1)
		wantErr(p("trunc.safetensors"), "truncated")
	}
	copyFile(t, "testdata/pretrain_zip.pth", p("trunc_zip.pth"), 30000)
	wantErr(p("trunc_zip.pth"), "zip")
	st, _ := os.Stat("testdata/pretrain_legacy.pth")
	for _, n := range []int{10, 1000, int(st.Size()) / 2, int(st.Size()) - 1} {
		copyFile(t, "testdata/pretrain_legacy.pth", p("trunc_legacy.pth"), n)
		t.Logf("cut at %d of %d", n, st.Size())
		wantErr(p("trunc_legacy.pth"))
	}
	dirTrunc := p("hf")
	os.Mkdir(dirTrunc, 0o755)
	copyFile(t, "testdata/hf_bin/config.json", filepath.Join(dirTrunc, HFConfigFile), -1)
	bin, _ := os.Stat("testdata/hf_bin/pytorch_model.bin")
	copyFile(t, "testdata/hf_bin/pytorch_model.bin", filepath.Join(dirTrunc, HFBinFile), int(bin.Size())/2)
	wantErr(dirTrunc)

	// One flipped byte inside a storage: Load's CRC check finds it,
	// LoadHeader reads no data.
	b, _ := os.ReadFile("testdata/pretrain_zip.pth")
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data/3") {
			off, _ := f.DataOffset()
			b[off+5] ^= 0x40
		}
	}
	os.WriteFile(p("crc.pth"), b, 0o644)
	if _, err := Load(p("crc.pth")); err == nil {
		t.Error("Load of a corrupt record succeeded")
	}
	if _, err := LoadHeader(p("crc.pth")); err != nil {
		t.Errorf("LoadHeader read the data: %v", err)
	}
	copyFile(t, "testdata/int_tensor.pth", p("int.pth"), -1)
	wantErr(p("int.pth"), "bn.num_batches_tracked", "LongStorage")
}
