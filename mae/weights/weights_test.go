package weights

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unsafe"
)

// Fixtures come from testdata/gen.py (see its docstring to regenerate).

type tensorStats struct {
	Shape []int     `json:"shape"`
	Sum   float64   `json:"sum"`
	WSum  float64   `json:"wsum"`
	Abs   float64   `json:"abs"`
	Head  []float64 `json:"head"`
}

type fixture struct {
	Format  string                 `json:"format"`
	Tensors map[string]tensorStats `json:"tensors"`
}

func readExpected(t *testing.T) map[string]fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]fixture
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func statsOf(t *Tensor) tensorStats {
	s := tensorStats{Shape: t.Shape}
	for i, v := range t.Data {
		x := float64(v)
		s.Sum += x
		s.WSum += x * float64(i%7+1)
		s.Abs += math.Abs(x)
		if i < 4 {
			s.Head = append(s.Head, x)
		}
	}
	return s
}

func checkTensors(t *testing.T, what string, got map[string]*Tensor, want map[string]tensorStats) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		w := want[name]
		g := got[name]
		if g == nil {
			t.Errorf("%s: tensor %s missing", what, name)
			continue
		}
		if len(g.Data) != numel(g.Shape) {
			t.Errorf("%s: %s: %d values for shape %v", what, name, len(g.Data), g.Shape)
			continue
		}
		s := statsOf(g)
		if !equalInts(s.Shape, w.Shape) {
			t.Errorf("%s: %s: shape %v, want %v", what, name, s.Shape, w.Shape)
			continue
		}
		tol := 1e-9 * (w.Abs*7 + 1)
		if math.Abs(s.Sum-w.Sum) > tol || math.Abs(s.WSum-w.WSum) > tol || math.Abs(s.Abs-w.Abs) > tol {
			t.Errorf("%s: %s: sum/wsum/abs %g/%g/%g, want %g/%g/%g", what, name, s.Sum, s.WSum, s.Abs, w.Sum, w.WSum, w.Abs)
		}
		for i := range w.Head {
			if s.Head[i] != w.Head[i] {
				t.Errorf("%s: %s[%d] = %g, want %g", what, name, i, s.Head[i], w.Head[i])
			}
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected tensor %s", what, name)
		}
	}
}

func TestLoadFixtures(t *testing.T) {
	exp := readExpected(t)
	if len(exp) < 9 {
		t.Fatalf("expected.json lists %d fixtures", len(exp))
	}
	for name, fx := range exp {
		t.Run(name, func(t *testing.T) {
			ck, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if ck.Format != fx.Format {
				t.Errorf("format %q, want %q", ck.Format, fx.Format)
			}
			if (ck.HF != nil) != strings.HasPrefix(name, "hf_") {
				t.Errorf("HF config %+v", ck.HF)
			}
			checkTensors(t, name, ck.Tensors, fx.Tensors)
		})
	}
}

// No two loaded tensors may share memory: the model keeps and may modify them.
func TestLoadNoAliasing(t *testing.T) {
	for _, name := range []string{"views.pth", "views_legacy.pth", "pretrain_zip.pth", "hf_safetensors"} {
		ck, err := Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		type span struct {
			name   string
			lo, hi uintptr
		}
		var spans []span
		for k, v := range ck.Tensors {
			if len(v.Data) == 0 {
				continue
			}
			lo := uintptr(unsafe.Pointer(&v.Data[0]))
			spans = append(spans, span{k, lo, lo + uintptr(4*len(v.Data))})
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
		for i := 1; i < len(spans); i++ {
			if spans[i].lo < spans[i-1].hi {
				t.Errorf("%s: %s and %s share memory", name, spans[i-1].name, spans[i].name)
			}
		}
	}
}

func TestReadHFConfig(t *testing.T) {
	cfg, err := ReadHFConfig("testdata/hf_safetensors")
	if err != nil {
		t.Fatal(err)
	}
	want := HFConfig{ImageSize: 8, PatchSize: 4, NumChannels: 3, HiddenSize: 16, NumHiddenLayers: 2,
		NumAttentionHeads: 2, IntermediateSize: 64, DecoderHiddenSize: 8, DecoderNumHiddenLayers: 2,
		DecoderNumAttentionHeads: 2, DecoderIntermediateSize: 32, LayerNormEps: 1e-12, NormPixLoss: true, MaskRatio: 0.75}
	want.ModelType, want.HiddenAct, want.QKVBias = "vit_mae", "gelu", true
	if *cfg != want {
		t.Errorf("config\n got %+v\nwant %+v", *cfg, want)
	}

	// Absent keys take ViTMAEConfig's defaults.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"hidden_size": 1024, "num_hidden_layers": 24}`), 0o644)
	cfg, err = ReadHFConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultHFConfig()
	d.HiddenSize, d.NumHiddenLayers = 1024, 24
	if *cfg != d {
		t.Errorf("defaults\n got %+v\nwant %+v", *cfg, d)
	}

	for body, wantErr := range map[string]string{
		`{"hidden_size": 0}`:     "hidden_size must be positive",
		`{"hidden_act": "relu"}`: "hidden_act",
		`{"patch_size": "16"}`:   "patch_size",
		`{"layer_norm_eps": -1}`: "layer_norm_eps",
		`{"qkv_bias": false}`:    "qkv_bias",
		`{"image_size": 224`:     "unexpected end",
	} {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(body), 0o644)
		_, err := ReadHFConfig(p)
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming the file and %q", body, err, wantErr)
		}
	}
}

func TestFloat16To32(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float64
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 1.0 / 16384},
		{0x0001, math.Ldexp(1, -24)}, {0x03ff, math.Ldexp(1023, -24)}, {0x8001, -math.Ldexp(1, -24)},
		{0x7c00, math.Inf(1)}, {0xfc00, math.Inf(-1)}, {0x3555, 0.333251953125},
	} {
		if got := float16To32(c.h); float64(got) != c.want {
			t.Errorf("float16To32(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if got := float16To32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("float16To32(0x8000) = %g, want -0", got)
	}
	if got := float16To32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("float16To32(0x7e00) = %g, want NaN", got)
	}
	if got := bfloat16To32(0x3f80); got != 1 {
		t.Errorf("bfloat16To32(0x3f80) = %g", got)
	}
}
