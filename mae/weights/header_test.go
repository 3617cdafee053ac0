package weights

import (
	"archive/zip"
	"bytes"
	"io"
	"maps"
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

// Hugging Face names that cannot be mapped (a query without its key) are
// refused by LoadHeader with Load's words, naming the same file: a dry
// run says what the run would say. Safetensors and PyTorch directories.
func TestLoadHeaderRefusesHFNamesAsLoad(t *testing.T) {
	const key, broken = "attention.attention.key.weight", "attention.attention.kez.weight"
	dir := t.TempDir()
	st := filepath.Join(dir, "st")
	os.Mkdir(st, 0o755)
	copyFile(t, "testdata/hf_safetensors/"+HFConfigFile, filepath.Join(st, HFConfigFile), -1)
	raw, err := readSafetensorsAs("testdata/hf_safetensors/"+HFSafetensorsFile, false)
	if err != nil {
		t.Fatal(err)
	}
	renamed := false
	for _, n := range slices.Sorted(maps.Keys(raw)) {
		if strings.HasSuffix(n, key) && !renamed {
			raw[strings.TrimSuffix(n, key)+broken] = raw[n]
			delete(raw, n)
			renamed = true
		}
	}
	if err := SaveSafetensors(filepath.Join(st, HFSafetensorsFile), raw, nil); err != nil {
		t.Fatal(err)
	}

	// The same in a pytorch_model.bin: one name's key renamed in data.pkl
	// (same length, so the pickle stays valid), the zip rewritten.
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	copyFile(t, "testdata/hf_bin/"+HFConfigFile, filepath.Join(bin, HFConfigFile), -1)
	zr, err := zip.OpenReader("testdata/hf_bin/" + HFBinFile)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f.Name, "/data.pkl") {
			data = bytes.Replace(data, []byte(key), []byte(broken), 1)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, HFBinFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{st, bin} {
		_, loadErr := Load(path)
		_, headerErr := LoadHeader(path)
		if loadErr == nil || !strings.Contains(loadErr.Error(), "key missing") {
			t.Fatalf("Load(%s) = %v, want the missing key", path, loadErr)
		}
		if headerErr == nil || headerErr.Error() != loadErr.Error() {
			t.Errorf("%s:\nLoadHeader: %v\nLoad:       %v", filepath.Base(path), headerErr, loadErr)
		}
	}
}
