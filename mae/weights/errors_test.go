package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func copyFile(t *testing.T, src, dst string, n int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		b = b[:n]
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantLoadError(t *testing.T, path string, parts ...string) {
	t.Helper()
	ck, err := Load(path)
	if err == nil {
		t.Fatalf("Load(%s) = %d tensors, want an error", path, len(ck.Tensors))
	}
	t.Log(err)
	for _, p := range append([]string{path}, parts...) {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s) error %q does not mention %q", path, err, p)
		}
	}
}

// stFile builds a safetensors file from a header and a data section.
func stFile(t testing.TB, path string, header map[string]any, data []byte) {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(h)))
	b.Write(h)
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }

	t.Run("missing", func(t *testing.T) {
		wantLoadError(t, p("nope.pth"), "no such file")
	})
	t.Run("empty", func(t *testing.T) {
		os.WriteFile(p("empty.pth"), nil, 0o644)
		wantLoadError(t, p("empty.pth"), "not a PyTorch checkpoint")
	})
	t.Run("random bytes", func(t *testing.T) {
		b := make([]byte, 4096)
		rand.New(rand.NewSource(1)).Read(b)
		b[0] = 'x'
		os.WriteFile(p("random.pth"), b, 0o644)
		wantLoadError(t, p("random.pth"), "not a PyTorch checkpoint")
	})
	t.Run("random bytes after zip magic", func(t *testing.T) {
		b := make([]byte, 4096)
		rand.New(rand.NewSource(2)).Read(b)
		copy(b, "PK\x03\x04")
		os.WriteFile(p("random_zip.pth"), b, 0o644)
		wantLoadError(t, p("random_zip.pth"), "zip")
	})
	t.Run("random bytes after pickle magic", func(t *testing.T) {
		b := make([]byte, 4096)
		rand.New(rand.NewSource(3)).Read(b)
		b[0], b[1] = 0x80, 2
		os.WriteFile(p("random_pickle.pth"), b, 0o644)
		wantLoadError(t, p("random_pickle.pth"))
	})
	t.Run("truncated zip", func(t *testing.T) {
		copyFile(t, "testdata/pretrain_zip.pth", p("trunc_zip.pth"), 30000)
		wantLoadError(t, p("trunc_zip.pth"), "zip")
	})
	// Cut inside the storage data, and at every point of the pickle header.
	st, _ := os.Stat("testdata/pretrain_legacy.pth")
	for _, n := range []int{10, 100, 1000, 5000, int(st.Size()) / 2, int(st.Size()) - 1} {
		copyFile(t, "testdata/pretrain_legacy.pth", p("trunc_legacy.pth"), n)
		wantLoadError(t, p("trunc_legacy.pth"))
	}
	copyFile(t, "testdata/pretrain_legacy.pth", p("trunc_legacy.pth"), int(st.Size())-1)
	wantLoadError(t, p("trunc_legacy.pth"), "truncated")

	t.Run("zip data corrupted", func(t *testing.T) {
		// Flip one byte inside a storage record: the CRC check must catch it.
		b, _ := os.ReadFile("testdata/pretrain_zip.pth")
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		var off int64 = -1
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, "/data/3") {
				off, _ = f.DataOffset()
			}
		}
		if off < 0 {
			t.Fatal("no data/3 record")
		}
		b[off+5] ^= 0x40
		os.WriteFile(p("crc.pth"), b, 0o644)
		wantLoadError(t, p("crc.pth"), "storage 3", "checksum")
	})
	t.Run("optimizer state is not read", func(t *testing.T) {
		// Corrupt the optimizer's storages (the last ones saved): loading the
		// model must not touch them.
		b, _ := os.ReadFile("testdata/finetuned.pth")
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		last := -1
		var offs []int64
		for _, f := range zr.File {
			if _, key, ok := strings.Cut(f.Name, "/data/"); ok {
				k, _ := strconv.Atoi(key)
				if k > last {
					last = k
				}
			}
		}
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, "/data/"+strconv.Itoa(last)) || strings.HasSuffix(f.Name, "/data/"+strconv.Itoa(last-1)) {
				off, _ := f.DataOffset()
				offs = append(offs, off)
			}
		}
		if len(offs) != 2 {
			t.Fatalf("optimizer records at %v", offs)
		}
		for _, off := range offs {
			b[off+3] ^= 0x55
		}
		os.WriteFile(p("opt.pth"), b, 0o644)
		ck, err := Load(p("opt.pth"))
		if err != nil {
			t.Fatal(err)
		}
		checkTensors(t, "finetuned with corrupt optimizer", ck.Tensors, readExpected(t)["finetuned.pth"].Tensors)
	})
	t.Run("integer tensor", func(t *testing.T) {
		copyFile(t, "testdata/int_tensor.pth", p("int.pth"), -1)
		wantLoadError(t, p("int.pth"), "bn.num_batches_tracked", "LongStorage")
	})
	t.Run("not a dict", func(t *testing.T) {
		copyFile(t, "testdata/list.pth", p("list.pth"), -1)
		wantLoadError(t, p("list.pth"), "not a dict")
	})

	f32 := make([]byte, 16)
	cases := []struct {
		name   string
		header map[string]any
		data   []byte
		want   []string
	}{
		{"dtype", map[string]any{"w": map[string]any{"dtype": "I64", "shape": []int{2}, "data_offsets": []int{0, 16}}}, f32, []string{"tensor w", `"I64"`}},
		{"shape vs offsets", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 16}}}, f32, []string{"tensor w", "needs 12"}},
		{"offsets beyond data", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{8}, "data_offsets": []int{0, 32}}}, f32, []string{"tensor w", "outside"}},
		{"reversed offsets", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{0}, "data_offsets": []int{8, 4}}}, f32, []string{"tensor w", "outside"}},
		{"no dtype", map[string]any{"w": map[string]any{"shape": []int{4}, "data_offsets": []int{0, 16}}}, f32, []string{"tensor w", "no dtype"}},
		{"bad entry", map[string]any{"w": []int{1}}, f32, []string{"tensor w"}},
	}
	for _, c := range cases {
		t.Run("safetensors "+c.name, func(t *testing.T) {
			path := p(strings.ReplaceAll(c.name, " ", "_") + ".safetensors")
			stFile(t, path, c.header, c.data)
			wantLoadError(t, path, c.want...)
		})
	}
	t.Run("safetensors header length", func(t *testing.T) {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, 1<<40)
		b[8] = '{'
		os.WriteFile(p("hdr.safetensors"), b, 0o644)
		wantLoadError(t, p("hdr.safetensors"), "header length")
	})
	t.Run("safetensors bad json", func(t *testing.T) {
		b := []byte("\x05\x00\x00\x00\x00\x00\x00\x00{\"a\":")
		os.WriteFile(p("json.safetensors"), b, 0o644)
		wantLoadError(t, p("json.safetensors"), "header")
	})
	t.Run("safetensors truncated", func(t *testing.T) {
		st, _ := os.Stat("testdata/bare_mixed.safetensors")
		copyFile(t, "testdata/bare_mixed.safetensors", p("trunc.safetensors"), int(st.Size())-3)
		wantLoadError(t, p("trunc.safetensors"), "outside the data section")
	})

	t.Run("hf dir without weights", func(t *testing.T) {
		d := p("hf_empty")
		os.Mkdir(d, 0o755)
		copyFile(t, "testdata/hf_bin/config.json", filepath.Join(d, "config.json"), -1)
		wantLoadError(t, d, "model.safetensors", "pytorch_model.bin")
	})
	t.Run("hf missing key projection", func(t *testing.T) {
		tensors, err := readSafetensorsAs("testdata/hf_safetensors/model.safetensors", false)
		if err != nil {
			t.Fatal(err)
		}
		delete(tensors, "vit.encoder.layer.1.attention.attention.key.bias")
		d := p("hf_nokey")
		os.Mkdir(d, 0o755)
		writeTestSafetensors(t, filepath.Join(d, "model.safetensors"), tensors)
		wantLoadError(t, d, "blocks.1.attn.qkv.bias", "key")
	})
	t.Run("hf sharded index", func(t *testing.T) {
		for name, edit := range map[string]func(m map[string]string){
			"missing":   func(m map[string]string) { m["vit.extra.weight"] = "model-00001-of-00002.safetensors" },
			"traversal": func(m map[string]string) { m["vit.layernorm.bias"] = "../model-00002-of-00002.safetensors" },
			"wrong":     func(m map[string]string) { m["vit.layernorm.bias"] = "model-00001-of-00002.safetensors" },
		} {
			d := p("sharded_" + name)
			os.Mkdir(d, 0o755)
			for _, f := range []string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
				copyFile(t, filepath.Join("testdata/hf_sharded", f), filepath.Join(d, f), -1)
			}
			b, _ := os.ReadFile("testdata/hf_sharded/model.safetensors.index.json")
			var idx struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(b, &idx); err != nil {
				t.Fatal(err)
			}
			edit(idx.WeightMap)
			b, _ = json.Marshal(idx)
			os.WriteFile(filepath.Join(d, "model.safetensors.index.json"), b, 0o644)
			want := map[string]string{"missing": "vit.extra.weight", "traversal": "not a file name", "wrong": "vit.layernorm.bias"}[name]
			wantLoadError(t, d, want)
		}
	})
	t.Run("hf bad config", func(t *testing.T) {
		d := p("hf_badcfg")
		os.Mkdir(d, 0o755)
		copyFile(t, "testdata/hf_safetensors/model.safetensors", filepath.Join(d, "model.safetensors"), -1)
		os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"hidden_size": "big"}`), 0o644)
		wantLoadError(t, d, "config.json", "hidden_size")
	})
}

func writeTestSafetensors(t *testing.T, path string, tensors map[string]*Tensor) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeSafetensors(f, sortedKeys(tensors), tensors, nil, false); err != nil {
		t.Fatal(err)
	}
}

// A safetensors file cut in the middle names, on every load, the first
// tensor the cut reaches (in file order), and says the file looks
// truncated; before, the tensor named depended on map iteration order.
func TestSafetensorsTruncatedNamesFirstCutTensor(t *testing.T) {
	src := "testdata/hf_safetensors/model.safetensors"
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	hdr, dataStart, err := readSafetensorsHeader(f, st.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := dataStart + (st.Size()-dataStart)/2
	first, firstEnd := "", int64(-1)
	for name, e := range hdr {
		if dataStart+e.Offsets[1] > cut && (firstEnd < 0 || e.Offsets[0] < hdr[first].Offsets[0] || e.Offsets[0] == hdr[first].Offsets[0] && name < first) {
			first, firstEnd = name, e.Offsets[1]
		}
	}
	if n := len(hdr); n < 10 || first == "" {
		t.Fatalf("want a file of many tensors, half of them cut: %d tensors, first cut %q", n, first)
	}
	path := filepath.Join(t.TempDir(), "trunc.safetensors")
	copyFile(t, src, path, int(cut))
	for i := 0; i < 20; i++ {
		_, err := readSafetensorsAs(path, false)
		if err == nil || !strings.Contains(err.Error(), "tensor "+first+":") || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("load %d: %v; want it to name %s, the first tensor cut, and say truncated", i, err, first)
		}
	}
}

// A pretrain output directory, or its latest file, passed as a model is
// refused with the checkpoint to pass instead (both loaders: the run's and
// the dry run's).
func TestLoadPretrainOutputNamesCheckpoint(t *testing.T) {
	run := t.TempDir()
	ckpt := filepath.Join(run, "checkpoint-00000300")
	if err := os.Mkdir(ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "latest"), []byte("checkpoint-00000300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "pass --model " + ckpt
	for _, path := range []string{run, filepath.Join(run, "latest")} {
		wantLoadError(t, path, want)
		if _, err := LoadHeader(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadHeader(%s) = %v, want an error naming %q", path, err, want)
		}
	}
	// A latest file that names no checkpoint beside it adds nothing.
	if err := os.WriteFile(filepath.Join(run, "latest"), []byte("checkpoint-00000400\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(run); err == nil || strings.Contains(err.Error(), "pretrain") {
		t.Errorf("Load(%s) with a dangling latest = %v", run, err)
	}
}
