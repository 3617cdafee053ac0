// Package weights reads and writes Masked Autoencoder checkpoints: the
// official PyTorch .pth files (zip and legacy pickle formats), safetensors
// files and Hugging Face ViTMAE directories. Whatever the source, tensors are
// returned under the names of the reference implementation (models_mae.py and
// timm's Block), as float32.
package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/internal/filekind"
)

// Tensor is a dense, row-major float32 tensor. After Load the caller owns Data:
// no two tensors returned by Load share memory.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Numel is the number of elements the shape describes.
func (t *Tensor) Numel() int { return numel(t.Shape) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// maxElements bounds the element count of one tensor read from a file: its
// size in bytes (8 per element at most) must fit an int64. Untrusted shapes
// are checked against it before any multiplication is trusted.
const maxElements = math.MaxInt64 / 8

// checkedNumel is numel for a shape read from an untrusted file: negative
// dimensions and products beyond maxElements are errors, not wrapped
// integers that would pass a size check and then panic in make.
func checkedNumel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, maxElements)
		}
		n *= d
	}
	return n, nil
}

// Checkpoint is a loaded set of weights.
type Checkpoint struct {
	// Tensors are always named as in models_mae.py / timm, whatever the source.
	Tensors map[string]*Tensor
	// HF is non-nil when the source was a Hugging Face directory with a config.json.
	HF *HFConfig
	// Format is one of the Format* constants.
	Format string
	Path   string
}

// Source formats reported in Checkpoint.Format.
const (
	FormatPthZip        = "pth-zip"
	FormatPthLegacy     = "pth-legacy"
	FormatHFSafetensors = "hf-safetensors"
	FormatHFBin         = "hf-bin"
	FormatSafetensors   = "safetensors"
)

// File names inside a Hugging Face model directory.
const (
	HFConfigFile      = "config.json"
	HFSafetensorsFile = "model.safetensors"
	HFBinFile         = "pytorch_model.bin"
)

// Load reads a checkpoint: a .pth or .bin (PyTorch zip or legacy pickle; the
// state dict at top level or under "model" / "state_dict"), a .safetensors
// file, or a Hugging Face directory (config.json + model.safetensors or
// pytorch_model.bin). Hugging Face names are mapped to the official ones, with
// query/key/value fused into qkv in [q;k;v] row order. float16, bfloat16 and
// float64 tensors are converted to float32.
func Load(path string) (*Checkpoint, error) { return load(path, false) }

// LoadHeader is Load without the tensor data: it reads what describes the
// tensors (a safetensors header, a PyTorch file's pickles and zip
// directory, config.json) and returns their names and shapes, Data nil.
// It refuses what Load refuses before reading data: another format, an
// unsupported dtype, a tensor outside its storage, unknown or clashing
// Hugging Face names, and a file shorter than its header says (truncated)
// — all from sizes, without reading the tensors. Damage inside the data
// (a zip record's CRC, a legacy storage's own length field) only Load
// finds.
func LoadHeader(path string) (*Checkpoint, error) { return load(path, true) }

func load(path string, header bool) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	var ck *Checkpoint
	if st.IsDir() {
		ck, err = loadHFDir(path, header)
	} else {
		ck, err = loadFile(path, header)
	}
	if err != nil {
		return nil, err
	}
	ck.Path = path
	return ck, nil
}

func loadHFDir(dir string, header bool) (*Checkpoint, error) {
	ck := &Checkpoint{}
	cfgPath := filepath.Join(dir, HFConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		cfg, err := ReadHFConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		ck.HF = cfg
	}
	var raw map[string]*Tensor
	var err error
	stPath := filepath.Join(dir, HFSafetensorsFile)
	binPath := filepath.Join(dir, HFBinFile)
	switch {
	case fileExists(stPath):
		ck.Format = FormatHFSafetensors
		raw, err = readSafetensorsMode(stPath, true, header)
	case fileExists(binPath):
		ck.Format = FormatHFBin
		raw, _, err = readTorchMode(binPath, true, header)
	case fileExists(stPath + ".index.json"):
		ck.Format = FormatHFSafetensors
		raw, err = readShards(stPath+".index.json", func(p string) (map[string]*Tensor, error) {
			return readSafetensorsMode(p, false, header)
		})
	case fileExists(binPath + ".index.json"):
		ck.Format = FormatHFBin
		raw, err = readShards(binPath+".index.json", func(p string) (map[string]*Tensor, error) {
			m, _, err := readTorchMode(p, false, header)
			return m, err
		})
	default:
		return nil, fmt.Errorf("load %s: directory has neither %s nor %s (nor a sharded index)%s", dir, HFSafetensorsFile, HFBinFile, pretrainHint(filepath.Join(dir, PretrainLatest)))
	}
	if err != nil {
		return nil, err
	}
	ck.Tensors, err = normalizeNames(raw, header)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return ck, nil
}

func loadFile(path string, header bool) (*Checkpoint, error) {
	kind, err := sniff(path)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{}
	var raw map[string]*Tensor
	switch kind {
	case FormatPthZip, FormatPthLegacy:
		raw, ck.Format, err = readTorchMode(path, true, header)
	case FormatSafetensors:
		ck.Format = FormatSafetensors
		raw, err = readSafetensorsMode(path, true, header)
	}
	if err != nil {
		return nil, err
	}
	ck.Tensors, err = normalizeNames(raw, header)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return ck, nil
}

// sniff tells the container format from the first bytes, not the file name:
// .bin, .pt, .pth and .ckpt are all used for the same PyTorch formats.
func sniff(path string) (string, error) {
	f, err := openRegular(path)
	if err != nil {
		return "", fmt.Errorf("load checkpoint: %w", err)
	}
	defer f.Close()
	var head [9]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("load %s: %w", path, err)
	}
	b := head[:n]
	switch {
	case len(b) >= 4 && string(b[:4]) == "PK\x03\x04":
		return FormatPthZip, nil
	case len(b) >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5: // pickle PROTO opcode
		return FormatPthLegacy, nil
	case len(b) == 9 && b[8] == '{': // safetensors: u64 header length, then JSON
		return FormatSafetensors, nil
	}
	hint := ""
	if filepath.Base(path) == PretrainLatest {
		hint = pretrainHint(path)
	}
	return "", fmt.Errorf("load %s: not a PyTorch checkpoint (zip or pickle) nor a safetensors file (first bytes %q)%s", path, b, hint)
}

// PretrainLatest is the file in a pretrain output directory that names its
// newest complete checkpoint, a directory beside it (train writes both).
const PretrainLatest = "latest"

// LatestName is the checkpoint directory name a PretrainLatest file's
// contents b give ("checkpoint-N", N its optimiser steps); ok is false
// when b holds no such name.
func LatestName(b []byte) (name string, ok bool) {
	name = strings.TrimSpace(string(b))
	n, isCkpt := strings.CutPrefix(name, "checkpoint-")
	_, err := strconv.Atoi(n) // digits: never a path
	return name, isCkpt && err == nil
}

// pretrainHint tells a user who passed a pretrain output directory, or
// its latest file, as a model which checkpoint to pass instead; "" when
// latest does not name a checkpoint directory beside it.
func pretrainHint(latest string) string {
	if st, err := os.Stat(latest); err != nil || !st.Mode().IsRegular() || st.Size() > 256 {
		return "" // never wait on a FIFO nor read a large file for a hint
	}
	b, err := os.ReadFile(latest)
	if err != nil {
		return ""
	}
	name, ok := LatestName(b)
	if !ok {
		return ""
	}
	ckpt := filepath.Join(filepath.Dir(latest), name)
	if st, err := os.Stat(ckpt); err != nil || !st.IsDir() {
		return ""
	}
	return fmt.Sprintf(": %s is a pretrain output, whose newest checkpoint is %s: pass --model %s", filepath.Dir(latest), ckpt, ckpt)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// openRegular opens a checkpoint file, refusing anything but a regular file:
// opening a FIFO blocks until a writer comes, and a device such as
// /dev/zero never ends.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, filekind.Of(st.Mode()))
	}
	return os.Open(path)
}

// readSmall reads a small metadata file (config.json, a shard index),
// refusing one that is not a regular file or is larger than limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a model's metadata", path, limit)
	}
	return b, nil
}

// normalizeNames strips a DataParallel "module." prefix and maps Hugging Face
// names to the official ones. Unknown names pass through unchanged so that the
// model's strict check can name them. With header, the tensors are a
// header's (Data nil).
func normalizeNames(in map[string]*Tensor, header bool) (map[string]*Tensor, error) {
	allModule := len(in) > 0
	for k := range in {
		if !strings.HasPrefix(k, "module.") {
			allModule = false
			break
		}
	}
	if allModule {
		out := make(map[string]*Tensor, len(in))
		for k, v := range in {
			out[strings.TrimPrefix(k, "module.")] = v
		}
		in = out
	}
	shapes := make(map[string][]int, len(in))
	for k, v := range in {
		shapes[k] = v.Shape
	}
	if isHFNames(shapes) {
		return fromHF(in, header)
	}
	return in, nil
}

// readShards reads a sharded Hugging Face checkpoint: an index
// {"weight_map": {tensor: shard file}} beside the shards. Names are mapped
// after all shards are read, as query/key/value may sit in different shards.
func readShards(index string, read func(string) (map[string]*Tensor, error)) (map[string]*Tensor, error) {
	b, err := readSmall(index, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("load %s: %w", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("load %s: empty weight_map", index)
	}
	shards := map[string]bool{}
	for name, f := range idx.WeightMap {
		if f == "" || filepath.Base(f) != f {
			return nil, fmt.Errorf("load %s: tensor %s: shard %q is not a file name in the same directory", index, name, f)
		}
		shards[f] = true
	}
	out := make(map[string]*Tensor, len(idx.WeightMap))
	for _, f := range sortedKeys(shards) {
		m, err := read(filepath.Join(filepath.Dir(index), f))
		if err != nil {
			return nil, err
		}
		for name, t := range m {
			if want := idx.WeightMap[name]; want != f {
				return nil, fmt.Errorf("load %s: tensor %s is in shard %s, the index says %q", index, name, f, want)
			}
			out[name] = t
		}
	}
	for _, name := range sortedKeys(idx.WeightMap) {
		if out[name] == nil {
			return nil, fmt.Errorf("load %s: tensor %s missing from shard %s", index, name, idx.WeightMap[name])
		}
	}
	return out, nil
}
