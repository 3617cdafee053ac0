package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/maeembed/maeembed/internal/atomicfile"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
	"github.com/nlpodyssey/spago/mat"
)

// A checkpoint is OUT/checkpoint-NNNNNNNN/ (N = optimiser steps done):
// config.json and model.safetensors in the Hugging Face ViTMAE layout
// (encoder and decoder: --model takes the directory), optimizer.safetensors
// (AdamW's exp_avg.NAME and exp_avg_sq.NAME in the reference layout) and
// trainer_state.json. It is built under a "."-name and renamed into place;
// then OUT/latest (the directory name) is replaced atomically. A run killed
// at any moment leaves the previous checkpoint intact.
const (
	latestFile    = weights.PretrainLatest
	stateFile     = "trainer_state.json"
	optimizerFile = "optimizer.safetensors"
)

// State is what trainer_state.json records besides the tensors.
type State struct {
	Step    int        `json:"step"`  // optimiser steps done
	Epoch   int        `json:"epoch"` // position of the next iteration
	Iter    int        `json:"iter"`
	Loss    float64    `json:"loss"` // of the last step
	Recipe  Recipe     `json:"recipe"`
	Model   mae.Config `json:"model"`
	Dataset string     `json:"dataset"` // Dataset.Fingerprint
	Images  int        `json:"images"`
}

// CheckpointName is the directory name of the checkpoint after step steps.
func CheckpointName(step int) string { return fmt.Sprintf("checkpoint-%08d", step) }

// SaveCheckpoint publishes the trainer's model and optimiser with st under
// out, then points OUT/latest at it and removes all but the keep newest
// checkpoints. It returns the checkpoint's path.
func SaveCheckpoint(out string, t *Trainer, st State, keep int) (string, error) {
	name := CheckpointName(st.Step)
	final := filepath.Join(out, name)
	tmp, err := atomicfile.MkdirTemp(out, "."+name+tempInfix+"*")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer tmp.Abort() // after Commit: nothing
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	m := t.Model
	if err := weights.SaveHF(tmp.Path, m.Tensors(), m.Config.HF()); err != nil {
		return fail(err)
	}
	opt := map[string]*weights.Tensor{}
	for i, p := range t.Params {
		for kind, v := range map[string][]float32{"exp_avg.": t.Opt.ExpAvg[i], "exp_avg_sq.": t.Opt.ExpAvgSq[i]} {
			ref := make([]float32, len(v))
			p.ToReference(ref, v)
			opt[kind+p.Name] = &weights.Tensor{Shape: p.Shape, Data: ref}
		}
	}
	if err := weights.SaveSafetensors(filepath.Join(tmp.Path, optimizerFile), opt, nil); err != nil {
		return fail(err)
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeAtomic(filepath.Join(tmp.Path, stateFile), append(js, '\n')); err != nil {
		return fail(err)
	}
	// A rerun after a crash may reach a step whose directory was published
	// but not yet made latest; its content is the same, replace it.
	if err := os.RemoveAll(final); err != nil {
		return fail(err)
	}
	if err := tmp.Commit(final); err != nil {
		return fail(err)
	}
	if err := writeAtomic(filepath.Join(out, latestFile), []byte(name+"\n")); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	return final, prune(out, name, keep)
}

// tempInfix joins a final name and os.CreateTemp's digits in the names
// of pretrain's temporaries: ".NAME.tmp-DIGITS".
const tempInfix = ".tmp-"

// removeStaleTemps removes from out the temporaries a run killed while
// writing left behind: SaveCheckpoint's ".checkpoint-NNNNNNNN.tmp-*"
// directories and writeAtomic's ".latest.tmp-*", ".metrics.csv.tmp-*" and
// ".loss.png.tmp-*". Call it only while holding out: then no other run
// writes there, so every temporary whose lock can be taken is a killed
// run's (grace 0), however recent. Anything else in out is left alone.
func removeStaleTemps(out string) {
	removed, err := atomicfile.RemoveStale(out, func(e fs.DirEntry) bool {
		hidden, ok := strings.CutPrefix(e.Name(), ".")
		base, _, isTemp := strings.Cut(hidden, tempInfix)
		if !ok || !isTemp {
			return false
		}
		step, isCkpt := strings.CutPrefix(base, "checkpoint-")
		_, err := strconv.ParseUint(step, 10, 64)
		return isCkpt && err == nil || base == latestFile || base == "metrics.csv" || base == "loss.png"
	}, 0)
	for _, p := range removed {
		slog.Info("removed a killed run's temporary", "path", p)
	}
	if err != nil {
		slog.Warn("could not remove a killed run's temporary", "err", err)
	}
}

// prune removes checkpoints older than the keep newest (never current).
func prune(out, current string, keep int) error {
	if keep < 1 {
		return nil
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // zero-padded steps sort numerically
	for len(names) > keep {
		if names[0] != current {
			if err := os.RemoveAll(filepath.Join(out, names[0])); err != nil {
				return err
			}
		}
		names = names[1:]
	}
	return nil
}

// LatestCheckpoint returns the directory OUT/latest names, or "" when out
// has no checkpoint.
func LatestCheckpoint(out string) (string, error) {
	b, err := os.ReadFile(filepath.Join(out, latestFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	name, ok := weights.LatestName(b)
	if !ok {
		return "", fmt.Errorf("%s: %q is not a checkpoint name", filepath.Join(out, latestFile), name)
	}
	return filepath.Join(out, name), nil
}

// fieldDiffs lists the fields in which two values of one struct type
// differ, as "name: checkpoint X, this run Y". A field's name is its JSON
// key, with prefix "--" as the flag that sets it (underscores as dashes).
func fieldDiffs(ckpt, run any, prefix string) []string {
	a, b := reflect.ValueOf(ckpt), reflect.ValueOf(run)
	var out []string
	for i := range a.NumField() {
		x, y := a.Field(i).Interface(), b.Field(i).Interface()
		if x == y {
			continue
		}
		name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
		if prefix == "--" {
			name = "--" + strings.ReplaceAll(name, "_", "-")
		}
		if name == "--augment" { // the flag's values, not the bool
			aug := map[bool]string{true: "random-resized-crop", false: "none"}
			x, y = aug[x.(bool)], aug[y.(bool)]
		}
		out = append(out, fmt.Sprintf("%s: checkpoint %v, this run %v", name, x, y))
	}
	return out
}

// LoadCheckpoint restores the trainer's weights and optimiser from dir and
// returns its state. The checkpoint must be of the same architecture and
// dataset; on any error the trainer is left unchanged.
func LoadCheckpoint(dir string, t *Trainer, dataset string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, fmt.Errorf("resume from %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("resume from %s: %s is corrupt: %w", dir, stateFile, err)
	}
	want := t.Model.Config
	got := st.Model
	got.Name, want.Name = "", ""
	if got != want {
		return st, fmt.Errorf("resume from %s: it holds a different model (config.json %s)", dir, strings.Join(fieldDiffs(got, want, ""), "; "))
	}
	if st.Dataset != dataset {
		return st, fmt.Errorf("resume from %s: it was trained on a different image list (fingerprint %s, now %s): pass the same inputs", dir, st.Dataset, dataset)
	}
	if st.Recipe != t.Recipe {
		return st, fmt.Errorf("resume from %s: it was trained with another recipe (%s): pass the checkpoint's values, or another --output to start over",
			dir, strings.Join(fieldDiffs(st.Recipe, t.Recipe, "--"), "; "))
	}
	ck, err := weights.Load(dir)
	if err != nil {
		return st, fmt.Errorf("resume from %s: %w", dir, err)
	}
	opt, err := weights.ReadSafetensorsFile(filepath.Join(dir, optimizerFile))
	if err != nil {
		return st, fmt.Errorf("resume from %s: optimizer state: %w", dir, err)
	}
	// Check everything before touching the trainer.
	cur := t.Model.Tensors()
	for name, dst := range cur {
		src, ok := ck.Tensors[name]
		if !ok || len(src.Data) != len(dst.Data) {
			return st, fmt.Errorf("resume from %s: tensor %s missing or mis-shaped: not a checkpoint of this model", dir, name)
		}
	}
	if len(ck.Tensors) != len(cur) {
		return st, fmt.Errorf("resume from %s: %d tensors, this model has %d", dir, len(ck.Tensors), len(cur))
	}
	for _, p := range t.Params {
		for _, kind := range []string{"exp_avg.", "exp_avg_sq."} {
			v, ok := opt[kind+p.Name]
			if !ok || !slices.Equal(v.Shape, p.Shape) {
				return st, fmt.Errorf("resume from %s: optimizer state lacks %s%s %v or is mis-shaped", dir, kind, p.Name, p.Shape)
			}
		}
	}
	if len(opt) != 2*len(t.Params) {
		return st, fmt.Errorf("resume from %s: optimizer state has %d tensors, want %d", dir, len(opt), 2*len(t.Params))
	}
	for name, dst := range cur {
		if name == "patch_embed.proj.weight" {
			continue // Tensors gave a reordered copy; set below through Params
		}
		copy(dst.Data, ck.Tensors[name].Data)
	}
	for i, p := range t.Params {
		if p.PatchLayout {
			p.FromReference(mat.Data[float32](p.Param.Value()), ck.Tensors[p.Name].Data)
		}
		p.FromReference(t.Opt.ExpAvg[i], opt["exp_avg."+p.Name].Data)
		p.FromReference(t.Opt.ExpAvgSq[i], opt["exp_avg_sq."+p.Name].Data)
	}
	t.Opt.Step = st.Step
	t.ZeroGrad()
	return st, nil
}

// writeAtomic publishes path with data through a ".NAME.tmp-*" temporary
// (atomicfile.Write), which removeStaleTemps knows.
func writeAtomic(path string, data []byte) error {
	return atomicfile.Write(path, "."+filepath.Base(path)+tempInfix+"*", func(f *os.File) error { _, err := f.Write(data); return err })
}
