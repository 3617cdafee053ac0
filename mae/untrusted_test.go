package mae

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae/weights"
)

// TestLoadConfigAgainstTensors: a config.json is as untrusted as the weights
// beside it. Block counts beyond what the checkpoint holds are one error
// before anything is built (num_hidden_layers 1e9 used to build a billion
// blocks, one "missing tensor" message each, until memory ran out).
func TestLoadConfigAgainstTensors(t *testing.T) {
	src := "weights/testdata/hf_safetensors"
	model, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(src, ""); err != nil {
		t.Fatalf("the unmodified fixture must load: %v", err)
	}
	for _, c := range []struct{ key, want string }{
		{`"num_hidden_layers": 2`, "num_hidden_layers"},
		{`"decoder_num_hidden_layers": 2`, "decoder_num_hidden_layers"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "model.safetensors"), model, 0o644)
		bad := strings.Replace(string(cfg), c.key, strings.TrimSuffix(c.key, "2")+"1000000000", 1)
		if bad == string(cfg) {
			t.Fatalf("fixture has no %s", c.key)
		}
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(bad), 0o644)
		_, err := Load(dir, "")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "1000000000") {
			t.Fatalf("%s 1e9: err = %v, want one error naming it", c.want, err)
		}
	}
	// A single tensor far out of range makes no billion blocks either, with
	// the config inferred from the tensors.
	ck, err := weights.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	ck.Tensors["blocks.999999999.norm1.weight"] = &weights.Tensor{Shape: []int{16}, Data: make([]float32, 16)}
	c, err := InferConfig(ck.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	c.Heads = 2
	if _, err := FromTensors(c, ck.Tensors, "sparse"); err == nil || !strings.Contains(err.Error(), "1000000000 encoder blocks") {
		t.Fatalf("err = %v", err)
	}
}

// TestPatchEmbedMismatchNamesNoBias: a config whose patch size does not
// match the checkpoint's patch embedding reports the mis-shaped weight; its
// bias, which is there and well-shaped, used to be reported as an
// "unexpected tensor" too, since it was only taken once the weight matched.
func TestPatchEmbedMismatchNamesNoBias(t *testing.T) {
	ck, c := halvedPatchConfig(t)
	for _, check := range []bool{false, true} {
		_, _, err := fromTensors(c, ck.Tensors, "ck", check)
		if err == nil || !strings.Contains(err.Error(), "tensor patch_embed.proj.weight has shape") {
			t.Fatalf("check %v: err = %v, want the patch embedding's shape named", check, err)
		}
		if strings.Contains(err.Error(), "patch_embed.proj.bias") {
			t.Errorf("check %v: err = %v, names the well-shaped bias", check, err)
		}
	}
}

// TestShapeMismatchWantsSameRank: a mis-shaped tensor stored with leading
// 1-sized dimensions ([1 5 16] for pos_embed) is reported against a wanted
// shape of the same form ([1 17 16]), not a squeezed one ([17 16]).
func TestShapeMismatchWantsSameRank(t *testing.T) {
	ck, c := halvedPatchConfig(t)
	_, err := FromTensors(c, ck.Tensors, "ck")
	if err == nil || !strings.Contains(err.Error(), "tensor pos_embed has shape [1 5 16], want [1 17 16]") {
		t.Fatalf("err = %v, want pos_embed's shape [1 5 16] against [1 17 16]", err)
	}
}

// halvedPatchConfig loads the HF fixture and infers its config, with the
// patch size halved: a config that does not match the checkpoint's patch
// embedding (nor, so, its position embedding).
func halvedPatchConfig(t *testing.T) (*weights.Checkpoint, Config) {
	t.Helper()
	ck, err := weights.Load("weights/testdata/hf_safetensors")
	if err != nil {
		t.Fatal(err)
	}
	c, err := InferConfig(ck.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	c.Heads, c.DecHeads = 1, 1
	c.PatchSize /= 2
	return ck, c
}
