package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// HFConfig is the subset of a Hugging Face ViTMAEConfig (config.json) that
// defines the architecture. Keys absent from the file take the ViTMAEConfig
// defaults, as transformers does.
type HFConfig struct {
	ImageSize                int     `json:"image_size"`
	PatchSize                int     `json:"patch_size"`
	NumChannels              int     `json:"num_channels"`
	HiddenSize               int     `json:"hidden_size"`
	NumHiddenLayers          int     `json:"num_hidden_layers"`
	NumAttentionHeads        int     `json:"num_attention_heads"`
	IntermediateSize         int     `json:"intermediate_size"`
	DecoderHiddenSize        int     `json:"decoder_hidden_size"`
	DecoderNumHiddenLayers   int     `json:"decoder_num_hidden_layers"`
	DecoderNumAttentionHeads int     `json:"decoder_num_attention_heads"`
	DecoderIntermediateSize  int     `json:"decoder_intermediate_size"`
	LayerNormEps             float64 `json:"layer_norm_eps"`
	NormPixLoss              bool    `json:"norm_pix_loss"`
	MaskRatio                float64 `json:"mask_ratio"`
	// What the file says it is ("vit_mae" for ViTMAE); informational.
	ModelType string `json:"model_type,omitempty"`
	// Only "gelu" (exact erf) and true are supported; ReadHFConfig checks.
	HiddenAct string `json:"hidden_act,omitempty"`
	QKVBias   bool   `json:"qkv_bias"`
}

// DefaultHFConfig returns transformers' ViTMAEConfig() defaults (vit-mae-base).
func DefaultHFConfig() HFConfig {
	return HFConfig{
		ImageSize: 224, PatchSize: 16, NumChannels: 3,
		HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12, IntermediateSize: 3072,
		DecoderHiddenSize: 512, DecoderNumHiddenLayers: 8, DecoderNumAttentionHeads: 16, DecoderIntermediateSize: 2048,
		LayerNormEps: 1e-12, MaskRatio: 0.75,
		HiddenAct: "gelu", QKVBias: true,
	}
}

// ReadHFConfig reads a config.json, given as the file or its directory.
func ReadHFConfig(path string) (*HFConfig, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, HFConfigFile)
	}
	b, err := readSmall(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg := DefaultHFConfig()
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if cfg.HiddenAct != "gelu" {
		return nil, fmt.Errorf("read config %s: hidden_act %q: only exact gelu is supported", path, cfg.HiddenAct)
	}
	if !cfg.QKVBias {
		return nil, fmt.Errorf("read config %s: qkv_bias false is not supported", path)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"image_size", cfg.ImageSize}, {"patch_size", cfg.PatchSize}, {"num_channels", cfg.NumChannels},
		{"hidden_size", cfg.HiddenSize}, {"num_hidden_layers", cfg.NumHiddenLayers},
		{"num_attention_heads", cfg.NumAttentionHeads}, {"intermediate_size", cfg.IntermediateSize},
		{"decoder_hidden_size", cfg.DecoderHiddenSize}, {"decoder_num_hidden_layers", cfg.DecoderNumHiddenLayers},
		{"decoder_num_attention_heads", cfg.DecoderNumAttentionHeads}, {"decoder_intermediate_size", cfg.DecoderIntermediateSize},
	} {
		if f.v <= 0 {
			return nil, fmt.Errorf("read config %s: %s must be positive, got %d", path, f.key, f.v)
		}
	}
	if cfg.LayerNormEps <= 0 {
		return nil, fmt.Errorf("read config %s: layer_norm_eps must be positive, got %g", path, cfg.LayerNormEps)
	}
	return &cfg, nil
}

// isHFNaming tells Hugging Face names (ViTMAEForPreTraining with "vit.",
// bare ViTMAEModel without) from the official ones, which never use these
// prefixes.
func isHFNames(m map[string][]int) bool {
	for k := range m {
		for _, p := range []string{"vit.", "embeddings.", "encoder.layer.", "layernorm.", "decoder.decoder_", "decoder.mask_token"} {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
	}
	return false
}

// Per-block renames, HF → official, for both encoder and decoder layers.
var hfBlockNames = [][2]string{
	{"layernorm_before.", "norm1."},
	{"attention.output.dense.", "attn.proj."},
	{"layernorm_after.", "norm2."},
	{"intermediate.dense.", "mlp.fc1."},
	{"output.dense.", "mlp.fc2."},
}

// Top-level renames, HF (without "vit.") → official; a trailing "." maps a prefix.
var hfTopNames = [][2]string{
	{"embeddings.cls_token", "cls_token"},
	{"embeddings.position_embeddings", "pos_embed"},
	{"embeddings.patch_embeddings.projection.", "patch_embed.proj."},
	{"layernorm.", "norm."},
	{"decoder.mask_token", "mask_token"},
	{"decoder.decoder_pos_embed", "decoder_pos_embed"},
	{"decoder.decoder_embed.", "decoder_embed."},
	{"decoder.decoder_norm.", "decoder_norm."},
	{"decoder.decoder_pred.", "decoder_pred."},
}

var qkvParts = []string{"query", "key", "value"}

// hfSlot says where the data of one Hugging Face tensor goes: a whole
// official tensor (off -1, Data still to be set) or rows of a fused qkv
// tensor (Data allocated, the part starts at element off).
type hfSlot struct {
	t   *Tensor
	off int
}

// planHF maps Hugging Face names (given with their shapes) to official ones:
// query/key/value become one qkv tensor ([q;k;v] rows), allocated here
// (with alloc) so that readers can fill the parts in place. Names it does
// not know pass through unchanged.
func planHF(shapes map[string][]int, alloc bool) (map[string]hfSlot, map[string]*Tensor, error) {
	slots := make(map[string]hfSlot, len(shapes))
	out := make(map[string]*Tensor, len(shapes))
	from := make(map[string]string, len(shapes)) // official → source, for errors
	put := func(name, src string, t *Tensor) error {
		if prev, dup := from[name]; dup {
			return fmt.Errorf("tensors %s and %s both map to %s", prev, src, name)
		}
		from[name] = src
		out[name] = t
		return nil
	}
	fused := map[string]*[3]string{} // official qkv name → source names
	for _, name := range sortedKeys(shapes) {
		official, part, ok := hfToOfficial(strings.TrimPrefix(name, "vit."))
		if !ok {
			official, part = name, -1
		}
		if part < 0 {
			t := &Tensor{Shape: append([]int{}, shapes[name]...)}
			if err := put(official, name, t); err != nil {
				return nil, nil, err
			}
			slots[name] = hfSlot{t: t, off: -1}
			continue
		}
		g := fused[official]
		if g == nil {
			g = &[3]string{}
			fused[official] = g
		}
		g[part] = name
	}
	for _, name := range sortedKeys(fused) {
		g := fused[name]
		for i, src := range g {
			if src == "" {
				return nil, nil, fmt.Errorf("tensor %s: Hugging Face attention %s missing (query, key and value are needed)", name, qkvParts[i])
			}
		}
		q := shapes[g[0]]
		rows := 0
		for i, src := range g {
			p := shapes[src]
			if len(p) == 0 || len(p) != len(q) || !equalInts(p[1:], q[1:]) {
				return nil, nil, fmt.Errorf("tensor %s: attention %s shape %v does not match query %v", name, qkvParts[i], p, q)
			}
			rows += p[0]
		}
		shape := append([]int{rows}, q[1:]...)
		t := &Tensor{Shape: shape}
		if alloc {
			t.Data = make([]float32, numel(shape))
		}
		if err := put(name, g[0], t); err != nil {
			return nil, nil, err
		}
		off := 0
		for _, src := range g {
			slots[src] = hfSlot{t: t, off: off}
			off += numel(shapes[src])
		}
	}
	return slots, out, nil
}

// fromHF maps loaded Hugging Face tensors to official names; only the
// query/key/value parts are copied (into their fused qkv). With header, the
// tensors are a header's (Data nil) and so are the results.
func fromHF(in map[string]*Tensor, header bool) (map[string]*Tensor, error) {
	shapes := make(map[string][]int, len(in))
	for k, v := range in {
		shapes[k] = v.Shape
	}
	slots, out, err := planHF(shapes, !header)
	if err != nil || header {
		return out, err
	}
	for name, s := range slots {
		src := in[name]
		if s.off < 0 {
			s.t.Data = src.Data
		} else {
			copy(s.t.Data[s.off:s.off+len(src.Data)], src.Data)
		}
	}
	return out, nil
}

// hfToOfficial maps one HF name (without "vit."). part is 0/1/2 for
// query/key/value (to be fused into the returned qkv name), else -1.
func hfToOfficial(n string) (name string, part int, ok bool) {
	for _, m := range hfTopNames {
		if strings.HasSuffix(m[0], ".") && strings.HasPrefix(n, m[0]) {
			return m[1] + n[len(m[0]):], -1, true
		}
		if n == m[0] {
			return m[1], -1, true
		}
	}
	for _, l := range [][2]string{{"encoder.layer.", "blocks."}, {"decoder.decoder_layers.", "decoder_blocks."}} {
		if !strings.HasPrefix(n, l[0]) {
			continue
		}
		rest := n[len(l[0]):]
		idx, tail, found := strings.Cut(rest, ".")
		if !found || !isDigits(idx) {
			return "", 0, false
		}
		prefix := l[1] + idx + "."
		for _, b := range hfBlockNames {
			if strings.HasPrefix(tail, b[0]) {
				return prefix + b[1] + tail[len(b[0]):], -1, true
			}
		}
		for i, p := range qkvParts {
			if pfx := "attention.attention." + p + "."; strings.HasPrefix(tail, pfx) {
				return prefix + "attn.qkv." + tail[len(pfx):], i, true
			}
		}
		return "", 0, false
	}
	return "", 0, false
}

// officialToHF maps an official name to its ViTMAEForPreTraining name. For a
// fused qkv name it returns the query/key/value names. Fine-tuning tensors
// (fc_norm, head) have no ViTMAE counterpart and keep their names.
func officialToHF(n string) (names []string, ok bool) {
	if strings.HasPrefix(n, "fc_norm.") || strings.HasPrefix(n, "head.") {
		return []string{n}, true
	}
	for _, m := range hfTopNames {
		hf := m[0]
		if !strings.HasPrefix(hf, "decoder.") {
			hf = "vit." + hf
		}
		if strings.HasSuffix(m[1], ".") && strings.HasPrefix(n, m[1]) {
			return []string{hf + n[len(m[1]):]}, true
		}
		if n == m[1] {
			return []string{hf}, true
		}
	}
	for _, l := range [][2]string{{"vit.encoder.layer.", "blocks."}, {"decoder.decoder_layers.", "decoder_blocks."}} {
		if !strings.HasPrefix(n, l[1]) {
			continue
		}
		idx, tail, found := strings.Cut(n[len(l[1]):], ".")
		if !found || !isDigits(idx) {
			return nil, false
		}
		prefix := l[0] + idx + "."
		for _, b := range hfBlockNames {
			if strings.HasPrefix(tail, b[1]) {
				return []string{prefix + b[0] + tail[len(b[1]):]}, true
			}
		}
		if suffix, ok := strings.CutPrefix(tail, "attn.qkv."); ok {
			out := make([]string, 3)
			for i, p := range qkvParts {
				out[i] = prefix + "attention.attention." + p + "." + suffix
			}
			return out, true
		}
	}
	return nil, false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// toHF renames official tensors to ViTMAEForPreTraining names, splitting each
// qkv into query/key/value. The split tensors share memory with the input.
func toHF(in map[string]*Tensor) (map[string]*Tensor, error) {
	out := make(map[string]*Tensor, len(in)+len(in)/4)
	for _, name := range sortedKeys(in) {
		t := in[name]
		names, ok := officialToHF(name)
		if !ok {
			return nil, fmt.Errorf("tensor %s: no Hugging Face ViTMAE name for it", name)
		}
		if len(t.Data) != numel(t.Shape) {
			return nil, fmt.Errorf("tensor %s: %d values for shape %v", name, len(t.Data), t.Shape)
		}
		if len(names) == 1 {
			out[names[0]] = t
			continue
		}
		if len(t.Shape) == 0 || t.Shape[0]%3 != 0 {
			return nil, fmt.Errorf("tensor %s: shape %v cannot be split into query, key and value", name, t.Shape)
		}
		shape := append([]int{t.Shape[0] / 3}, t.Shape[1:]...)
		n := numel(shape)
		for i, hf := range names {
			out[hf] = &Tensor{Shape: shape, Data: t.Data[i*n : (i+1)*n : (i+1)*n]}
		}
	}
	return out, nil
}

// hfConfigFile is what SaveHF writes: the architecture keys plus the fixed
// keys transformers needs to instantiate ViTMAEForPreTraining.
type hfConfigFile struct {
	Architectures []string `json:"architectures"`
	HFConfig
	HiddenDropoutProb         float64 `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64 `json:"attention_probs_dropout_prob"`
	InitializerRange          float64 `json:"initializer_range"`
	TorchDtype                string  `json:"torch_dtype"`
}

// SaveHF writes dir/config.json and dir/model.safetensors in the Hugging Face
// ViTMAEForPreTraining layout ("vit." prefix, qkv split into query/key/value,
// decoder under "decoder."), so transformers can load the result. A new
// directory is built under a temporary "."-name and renamed into place; into
// an existing directory each file is written to a "."-temporary and renamed.
// Everything is fsynced before the rename.
func SaveHF(dir string, tensors map[string]*Tensor, cfg *HFConfig) error {
	return saveHF(dir, tensors, cfg, false)
}

// SaveHFFloat16 is SaveHF with the tensors rounded to float16 (to nearest,
// ties to even; torch_dtype "float16"): half the size, for shipping a model.
// Loading upcasts them to float32.
func SaveHFFloat16(dir string, tensors map[string]*Tensor, cfg *HFConfig) error {
	return saveHF(dir, tensors, cfg, true)
}

func saveHF(dir string, tensors map[string]*Tensor, cfg *HFConfig, half bool) error {
	if cfg == nil {
		return fmt.Errorf("save %s: no config", dir)
	}
	hf, err := toHF(tensors)
	if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if len(hf) == 0 {
		return fmt.Errorf("save %s: no tensors", dir)
	}
	c := *cfg
	c.ModelType, c.HiddenAct, c.QKVBias = "vit_mae", "gelu", true
	cj, err := json.MarshalIndent(hfConfigFile{
		Architectures:    []string{"ViTMAEForPreTraining"},
		HFConfig:         c,
		InitializerRange: 0.02,
		TorchDtype:       dtypeName(half),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: config: %w", dir, err)
	}
	cj = append(cj, '\n')
	names := make([]string, 0, len(hf))
	for k := range hf {
		names = append(names, k)
	}
	sort.Strings(names)
	// transformers refuses safetensors files without format metadata.
	meta := map[string]string{"format": "pt"}
	writeModel := func(f *os.File) error { return writeSafetensors(f, names, hf, meta, half) }
	writeConfig := func(f *os.File) error { _, err := f.Write(cj); return err }

	if _, err := os.Stat(dir); os.IsNotExist(err) {
		parent, base := filepath.Split(filepath.Clean(dir))
		if parent == "" {
			parent = "."
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		tmp, err := atomicfile.MkdirTemp(parent, "."+base+".tmp-*")
		if err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		defer tmp.Abort() // after Commit: nothing
		if err := writeNewFile(filepath.Join(tmp.Path, HFSafetensorsFile), writeModel); err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		if err := writeNewFile(filepath.Join(tmp.Path, HFConfigFile), writeConfig); err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		if err := publishDir(tmp, dir); err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, HFSafetensorsFile), writeModel); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, HFConfigFile), writeConfig); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	return nil
}

// publishDir publishes the written temporary directory tmp as dir, which
// did not exist when the write began. If dir appeared meanwhile (another
// convert into it finished first), Linux answers "file exists" or
// "directory not empty"; that is said in words, and dir is left alone.
func publishDir(tmp *atomicfile.Dir, dir string) error {
	err := tmp.Commit(dir)
	if err != nil && (errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)) {
		return fmt.Errorf("%s appeared while this write was under way (another convert into it?); it was left as it is: rerun with --force to replace its checkpoint files", dir)
	}
	return err
}

func dtypeName(half bool) string {
	if half {
		return "float16"
	}
	return "float32"
}
