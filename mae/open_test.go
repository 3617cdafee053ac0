package mae

import (
	"context"
	"encoding/json"
	"github.com/maeembed/maeembed/mae/builtin"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A model name that is neither a file nor a preset lists every name that
// works, the built-in model's first.
func TestResolveNamesTheChoices(t *testing.T) {
	_, err := Resolve(context.Background(), Source{Name: "vit_tiny", CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `not builtin (the built-in model) nor a preset (presets: `) || !strings.Contains(err.Error(), "mae_vit_base_patch16") {
		t.Errorf("err = %v", err)
	}
}

// The dry run's check of the built-in model not unpacked yet (from its
// embedded config) says what the check of the unpacked files says.
func TestCheckPendingBuiltinMatchesUnpacked(t *testing.T) {
	cache := t.TempDir()
	for _, dec := range []bool{false, true} {
		s := Source{Name: builtin.Name, CacheDir: cache, NeedDecoder: dec}
		p, err := Check(context.Background(), s)
		if err != nil || p.Pending == nil {
			t.Fatalf("Check before unpacking: %+v, %v", p, err)
		}
		if _, err := builtin.Dir(cache); err != nil {
			t.Fatal(err)
		}
		u, err := Check(context.Background(), s)
		if err != nil || u.Pending != nil {
			t.Fatalf("Check after unpacking: %+v, %v", u, err)
		}
		if p.Config != u.Config || p.has != u.has || p.Path != u.Path {
			t.Errorf("pending %+v %+v %s\nunpacked %+v %+v %s", p.Config, p.has, p.Path, u.Config, u.has, u.Path)
		}
		cache = t.TempDir()
	}
}

// A --config of another architecture than the model's is refused by the
// dry run's check of a model not on this machine yet, with the run's
// error (here the built-in model, whose files can be compared), not passed
// on to fail the run.
func TestCheckPendingRefusesOtherConfig(t *testing.T) {
	cfg := filepath.Join("testdata", "fixtures", "tiny32", "hf", "config.json")
	s := Source{Name: builtin.Name, CacheDir: t.TempDir(), Config: cfg}
	_, perr := Check(context.Background(), s)
	if _, err := builtin.Dir(s.CacheDir); err != nil {
		t.Fatal(err)
	}
	_, uerr := Check(context.Background(), s)
	if uerr == nil || perr == nil || perr.Error() != uerr.Error() {
		t.Errorf("--config of another architecture:\nnot unpacked: %v\nunpacked:     %v", perr, uerr)
	}

	// A preset not in the cache: ViT-B's file with a tiny --config is
	// refused; with ViT-B's shapes and other head counts it is not (the
	// shapes do not depend on them).
	// A server that does not take HEAD: the size is unknown (one that
	// cannot be reached would fail the check, as the run's download would).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMethodNotAllowed)
	}))
	defer srv.Close()
	t.Setenv("MAEEMBED_HUB_URL", srv.URL)
	s = Source{Name: "mae_vit_base_patch16", CacheDir: t.TempDir(), Config: cfg}
	if _, err := Check(context.Background(), s); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("ViT-B preset with a tiny --config: %v", err)
	}
	var h map[string]any
	if b, err := os.ReadFile(cfg); err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("%s: %v", cfg, err)
	}
	b := Presets["mae_vit_base_patch16"]
	for k, v := range map[string]int{"image_size": b.ImageSize, "patch_size": b.PatchSize, "hidden_size": b.Dim, "num_hidden_layers": b.Depth,
		"num_attention_heads": 8, "intermediate_size": b.MLPDim, "decoder_hidden_size": b.DecDim, "decoder_num_hidden_layers": b.DecDepth,
		"decoder_num_attention_heads": 8, "decoder_intermediate_size": b.DecMLPDim} {
		h[k] = v
	}
	s.Config = filepath.Join(t.TempDir(), "config.json")
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Config, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if spec, err := Check(context.Background(), s); err != nil || spec.Pending == nil || spec.Config.Heads != 8 {
		t.Errorf("ViT-B preset with ViT-B's shapes in --config: %+v, %v", spec, err)
	}
}
