package weights

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

func assertSameTensors(t *testing.T, what string, got, want map[string]*Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			t.Errorf("%s: %s missing", what, name)
			continue
		}
		if !equalInts(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			t.Errorf("%s: %s shape %v, want %v", what, name, g.Shape, w.Shape)
			continue
		}
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Errorf("%s: %s[%d] = %g, want %g", what, name, i, g.Data[i], w.Data[i])
				break
			}
		}
	}
}

func noTempLeft(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}

func TestSaveHFRoundTrip(t *testing.T) {
	for _, src := range []string{"pretrain_zip.pth", "finetuned.pth", "bare_mixed.safetensors"} {
		t.Run(src, func(t *testing.T) {
			ck, err := Load(filepath.Join("testdata", src))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ReadHFConfig("testdata/hf_safetensors")
			if err != nil {
				t.Fatal(err)
			}
			cfg.LayerNormEps = 1e-6
			parent := t.TempDir()
			out := filepath.Join(parent, "converted")
			if err := SaveHF(out, ck.Tensors, cfg); err != nil {
				t.Fatal(err)
			}
			noTempLeft(t, parent)
			back, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if back.Format != FormatHFSafetensors || back.HF == nil || *back.HF != *cfg {
				t.Errorf("format %s, config %+v, want %+v", back.Format, back.HF, cfg)
			}
			assertSameTensors(t, src, back.Tensors, ck.Tensors)

			// Saving again into the existing directory replaces its files.
			cfg.MaskRatio = 0.5
			if err := SaveHF(out, ck.Tensors, cfg); err != nil {
				t.Fatal(err)
			}
			noTempLeft(t, out)
			back, err = Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if back.HF.MaskRatio != 0.5 {
				t.Errorf("mask_ratio %g after overwrite", back.HF.MaskRatio)
			}
			assertSameTensors(t, src+" overwritten", back.Tensors, ck.Tensors)
		})
	}
}

// SaveHF's names and values must be exactly those gen.py wrote with its own,
// independent mapping, i.e. those of transformers' ViTMAEForPreTraining.
func TestSaveHFMatchesReferenceLayout(t *testing.T) {
	ck, err := Load("testdata/pretrain_zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadHFConfig("testdata/hf_safetensors")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	if err := SaveHF(out, ck.Tensors, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := readSafetensorsAs(filepath.Join(out, HFSafetensorsFile), false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readSafetensorsAs("testdata/hf_safetensors/model.safetensors", false)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, "saved vs gen.py", got, want)

	// transformers rejects safetensors without {"format": "pt"} metadata.
	f, err := os.Open(filepath.Join(out, HFSafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	buf := make([]byte, 256)
	f.ReadAt(buf, 8)
	if !strings.Contains(string(buf), `"__metadata__":{"format":"pt"}`) {
		t.Errorf("header lacks format metadata: %.100s", buf)
	}
	if _, start, err := readSafetensorsHeader(f, st.Size()); err != nil || start%8 != 0 {
		t.Errorf("data section starts at %d (%v), want 8-byte alignment", start, err)
	}
	cj, _ := os.ReadFile(filepath.Join(out, HFConfigFile))
	for _, key := range []string{`"architectures": [`, `"ViTMAEForPreTraining"`, `"model_type": "vit_mae"`, `"hidden_act": "gelu"`, `"qkv_bias": true`, `"decoder_intermediate_size": 32`} {
		if !strings.Contains(string(cj), key) {
			t.Errorf("config.json lacks %s:\n%s", key, cj)
		}
	}
}

func TestSaveHFErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultHFConfig()
	cases := []struct {
		name    string
		tensors map[string]*Tensor
		want    string
	}{
		{"unknown name", map[string]*Tensor{"blocks.0.foo.weight": {Shape: []int{1}, Data: []float32{1}}}, "blocks.0.foo.weight"},
		{"bad qkv", map[string]*Tensor{"blocks.0.attn.qkv.weight": {Shape: []int{4, 2}, Data: make([]float32, 8)}}, "blocks.0.attn.qkv.weight"},
		{"data vs shape", map[string]*Tensor{"norm.weight": {Shape: []int{3}, Data: make([]float32, 2)}}, "norm.weight"},
		{"empty", map[string]*Tensor{}, "no tensors"},
	}
	for _, c := range cases {
		out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		err := SaveHF(out, c.tensors, &cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %s exists after a failed save", c.name, out)
		}
	}
	if err := SaveHF(filepath.Join(dir, "x"), map[string]*Tensor{}, nil); err == nil {
		t.Error("nil config accepted")
	}
	noTempLeft(t, dir)
}

// A single safetensors file with metadata reads back bit-exactly through
// Load, and its metadata through SafetensorsMetadata.
func TestSaveSafetensorsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "head.safetensors")
	want := map[string]*Tensor{
		"weight": {Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-30, -7}},
		"bias":   {Shape: []int{2}, Data: []float32{0.25, -0.5}},
	}
	meta := map[string]string{"format": "pt", "classes": `["a","b"]`}
	if err := SaveSafetensors(path, want, meta); err != nil {
		t.Fatal(err)
	}
	noTempLeft(t, dir)
	ck, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, "read back", ck.Tensors, want)
	got, err := SafetensorsMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(meta) || got["classes"] != meta["classes"] || got["format"] != "pt" {
		t.Errorf("metadata %v, want %v", got, meta)
	}
	if err := SaveSafetensors(filepath.Join(dir, "none.safetensors"), nil, nil); err == nil {
		t.Error("saving no tensors: no error")
	}
}

// SaveHFFloat16 writes F16 tensors and torch_dtype float16; loading gives
// every value rounded to half precision, upcast to float32.
func TestSaveHFFloat16RoundTrip(t *testing.T) {
	ck, err := Load(filepath.Join("testdata", "pretrain_zip.pth"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadHFConfig("testdata/hf_safetensors")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Tensor{}
	for name, tt := range ck.Tensors {
		r := make([]float32, len(tt.Data))
		for i, v := range tt.Data {
			r[i] = float16To32(float32To16(v))
		}
		want[name] = &Tensor{Shape: tt.Shape, Data: r}
	}
	out := filepath.Join(t.TempDir(), "half")
	if err := SaveHFFloat16(out, ck.Tensors, cfg); err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, "float16 round trip", back.Tensors, want)
	b, err := os.ReadFile(filepath.Join(out, HFConfigFile))
	if err != nil || !strings.Contains(string(b), `"torch_dtype": "float16"`) {
		t.Errorf("config.json does not say float16 (%v):\n%s", err, b)
	}
	st, _ := os.Stat(filepath.Join(out, HFSafetensorsFile))
	full := filepath.Join(t.TempDir(), "full")
	if err := SaveHF(full, ck.Tensors, cfg); err != nil {
		t.Fatal(err)
	}
	st32, _ := os.Stat(filepath.Join(full, HFSafetensorsFile))
	if st == nil || st32 == nil || st.Size() >= st32.Size()*6/10 {
		t.Errorf("float16 file is not about half the float32 one")
	}
}

// Two converts into one new directory: the second to finish finds it
// there. Its error says so in words (not "rename ...: file exists"), the
// first one's directory is left as it is, and the second one's temporary
// is gone.
func TestPublishDirOntoConcurrentResult(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	tmp, err := atomicfile.MkdirTemp(parent, ".m.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Abort()
	for _, d := range []string{dir, tmp.Path} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, HFConfigFile), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = publishDir(tmp, dir)
	if err == nil || !strings.Contains(err.Error(), "another convert") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("publish onto a directory another write made: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, HFConfigFile)); string(b) != dir {
		t.Errorf("the existing directory was changed: config.json %q", b)
	}
	if _, err := os.Stat(tmp.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused write's temporary %s stayed: %v", tmp.Path, err)
	}
}
